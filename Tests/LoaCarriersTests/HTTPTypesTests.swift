import Foundation
import LoaCarriers
import Testing

@Suite struct HTTPTypesTests {
    /// Header names compare case-insensitively in ASCII letters only, whatever the strings' storage.
    @Test func headerNamesCompareCaseInsensitivelyInASCIILettersOnly() {
        let r = HTTPResponse(status: 429, headers: [HTTPHeader("Retry-After", "7"), HTTPHeader("X-@Id", "a"),
                                                     HTTPHeader("X-Café", "b"), HTTPHeader("retry-after", "9")])
        #expect(r.header("retry-after") == "7", "the first of the two, found in either case")
        #expect(r.header("RETRY-AFTER") == "7")
        #expect(r.header("Retry-Afte") == nil && r.header("Retry-After ") == nil, "lengths differ")
        // '@' and '`' differ by the ASCII case bit only; they are not letters.
        #expect(r.header("x-@id") == "a" && r.header("x-`id") == nil)
        // Non-ASCII letters are compared as they are.
        #expect(r.header("x-café") == "b" && r.header("X-CAFÉ") == nil)
        // Strings made other ways (from an NSString, from Characters) compare the same.
        let bridged = NSString(string: "RETRY-after") as String
        #expect(r.header(bridged) == "7")
        let built = String(["r", "e", "t", "r", "y", "-", "A", "F", "T", "E", "R"] as [Character])
        #expect(r.header(built) == "7")
    }
}
