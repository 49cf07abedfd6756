import Foundation
import LoaCarriers
import Testing

/// `Deploy/openapi.json` and the daemon agree: every documented path and method is routed (no "no such endpoint"),
/// and every route that answers without a token is documented as public.
@Suite(.ownThreads) struct OpenAPITests {
    @Test(.timeLimit(.minutes(2))) func everyDocumentedOperationExists() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("Deploy/openapi.json"))
        let spec = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let paths = try #require(spec["paths"] as? [String: [String: Any]])
        #expect(paths.count >= 15)
        let work = WorkDir("openapi")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p")
        try await loa.start()
        defer { _ = loa.stop() }
        var checked = 0
        for (path, item) in paths.sorted(by: { $0.key < $1.key }) {
            // A campaign that does not exist: nothing changes, and a routed request says so by name.
            var concrete = path.replacingOccurrences(of: "{id}", with: "nosuch").replacingOccurrences(of: "{name}", with: "x.csv")
            // A stream (the live log) would not end: it is asked about a campaign that does not exist, as it documents.
            if ((item["get"] as? [String: Any])?["parameters"] as? [[String: Any]])?.contains(where: { $0["name"] as? String == "campaign" }) == true {
                concrete += "?campaign=nosuch"
            }
            for method in ["get", "post", "put", "delete"] where item[method] != nil {
                let r = try await loa.engine.perform(HTTPRequest(method: method.uppercased(), url: loa.base + concrete,
                                                                 headers: [HTTPHeader("Authorization", "Bearer \(loa.token)")], timeout: 10))
                #expect(!r.bodyText.contains("no such endpoint"), "\(method.uppercased()) \(path) is documented but not routed")
                let operation = item[method] as? [String: Any] ?? [:]
                let isPublic = (operation["security"] as? [Any])?.isEmpty == true
                // A public operation that documents a 401 of its own (the console's session read) may answer it.
                let owns401 = isPublic && (operation["responses"] as? [String: Any])?["401"] != nil
                #expect(r.status != 401 || owns401, "\(method.uppercased()) \(path) refused a valid token")
                checked += 1
                // Operations documented as needing the token refuse a request without it.
                let bare = try await loa.engine.perform(HTTPRequest(method: method.uppercased(), url: loa.base + concrete, timeout: 10))
                #expect((bare.status == 401) != isPublic || owns401, "\(method.uppercased()) \(path): without a token got \(bare.status)")
            }
        }
        #expect(checked >= 20)
    }
}
