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

/// A request libcurl cannot build from a message is that message's failure, never a trap of the engine.
@Suite struct UnbuildableRequestTests {
    /// libcurl refuses a URL over `CURL_MAX_INPUT_LENGTH` (8,000,000 bytes) with `CURLE_BAD_FUNCTION_ARGUMENT`,
    /// which the engine once took for misuse and trapped on (a 3 MB Vietnamese slogan in a GET query is 9 MB).
    /// Nothing is sent: the URL names the discard port, and the request fails before any connection.
    @Test func aURLTooLongForLibcurlFailsThatRequestOnly() async throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        let url = "http://127.0.0.1:9/send?text=" + String(repeating: "%E1%BB%9D", count: 1_000_000)
        do {
            _ = try await engine.perform(HTTPRequest(url: url, timeout: 5))
            Issue.record("a 9 MB URL was sent")
        } catch {
            #expect(error == .other(code: TransportError.badArgumentCode, message: error.description.replacingOccurrences(of: "curl error 43: ", with: "")))
            guard case .permanent(let d) = GatewayOutcome.transport(error) else { Issue.record("\(error) is not permanent"); return }
            #expect(d.contains("nothing sent"))
        }
        // The engine goes on.
        do {
            _ = try await engine.perform(HTTPRequest(url: "http://127.0.0.1:9/", timeout: 2))
        } catch {
            guard case .couldNotConnect = error else { Issue.record("\(error)"); return }
        }
    }
}
