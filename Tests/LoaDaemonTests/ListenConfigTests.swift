import Foundation
import Testing
@testable import LoaCommandLine
@testable import LoaDaemon
@testable import LoaSim

/// `listen`'s limits and `receipts_listen` (issue 16 item 4); what they do is in IntegrationTests' `ConnectionTests`.
@Suite struct ListenConfigTests {
    let env = ["T": "0123456789abcdef-token", "S": "receipt-secret-0123456789"]

    func load(_ listen: String, extra: String = "") -> Result<LoaConfig, ProblemList> {
        let s = Scratch()
        _ = s.write("kannel.pw", "pw\n")
        let text = goodConfig.replacingOccurrences(of: #""listen": { "address": "127.0.0.1", "port": 0 },"#,
                                                   with: #""listen": { "address": "127.0.0.1", "port": 8780\#(listen) },"# + extra)
        return ConfigLoader.load(path: s.write("loa.json", text), environment: env)
    }

    @Test func defaultsKeepOneClientFromTakingEverySlot() throws {
        let c = try load("").get()
        #expect(c.listenLimits == LoaConfig.ListenLimits())
        #expect(c.listenLimits.connectionLimit - c.listenLimits.perClientLimit == 256)
        #expect(c.receiptsListen == nil)
        #expect(c.publicURL == "http://127.0.0.1:8780")
    }

    @Test func limitsAreReadAndCheckedWithTheirLine() throws {
        let c = try load(#", "connection_limit": 50, "per_client_limit": 5, "head_timeout_seconds": 2.5, "body_timeout_seconds": 9"#).get()
        #expect(c.listenLimits.connectionLimit == 50 && c.listenLimits.perClientLimit == 5)
        #expect(c.listenLimits.headTimeoutSeconds == 2.5 && c.listenLimits.bodyTimeoutSeconds == 9)
        // A connection limit below the default per-client limit lowers that one with it.
        #expect(try load(#", "connection_limit": 50"#).get().listenLimits.perClientLimit == 50)

        guard case .failure(let bad) = load(#", "connection_limit": 0, "per_client_limit": 2000, "head_timeout_seconds": 0, "body_timeout_seconds": 1e300"#)
        else { Issue.record("bad limits loaded"); return }
        let text = bad.description
        #expect(text.contains(":4: listen.connection_limit: must be 1-10000"), "\(text)")
        #expect(text.contains(":4: listen.per_client_limit: must be 1-1024"), "\(text)")
        #expect(text.contains(":4: listen.head_timeout_seconds: must be > 0 and <= 300"), "\(text)")
        #expect(text.contains(":4: listen.body_timeout_seconds: must be > 0 and <= 3600"), "\(text)")
    }

    @Test func receiptsListenGetsItsOwnLimitsAndThePublicURL() throws {
        let c = try load("", extra: #""receipts_listen": { "address": "127.0.0.2", "port": 8781, "per_client_limit": 300 },"#).get()
        let r = try #require(c.receiptsListen)
        #expect(r.address == "127.0.0.2" && r.port == 8781 && r.limits.perClientLimit == 300)
        #expect(c.listenLimits.perClientLimit == 768)
        #expect(c.publicURL == "http://127.0.0.2:8781")

        guard case .failure(let same) = load("", extra: #""receipts_listen": { "port": 8780 },"#) else { Issue.record("same port loaded"); return }
        #expect(same.description.contains("receipts_listen.port: must differ from listen.port"), "\(same)")
        guard case .failure(let none) = load("", extra: #""receipts_listen": { "address": "127.0.0.1" },"#) else { Issue.record("no port loaded"); return }
        #expect(none.description.contains("receipts_listen.port: required"), "\(none)")
    }
}
