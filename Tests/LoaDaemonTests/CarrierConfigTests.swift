import Foundation
import LoaCore
import Testing
@testable import LoaCommandLine
@testable import LoaDaemon
@testable import LoaSim

/// Jasmin and generic carriers in the config file: the shipped samples load, and problems name their place.
@Suite struct CarrierConfigTests {
    let env = ["T": "0123456789abcdef-token", "S": "receipt-secret-0123456789", "LOA_SIM_TOKEN": "sim-token",
               "LOA_SIM_RECEIPT_SECRET": "sim-receipt-secret-0123", "J": "jasmin-pw"]

    static var root: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    func config(carriers: String, extra: String = "") -> String {
        """
        {
          "data_dir": "data", "api_token": { "env": "T" }, \(extra)
          "carriers": [\(carriers)],
          "routing": { "default": "j" },
        }
        """
    }

    let jasmin = """
        { "name": "j", "kind": "jasmin", "url": "http://127.0.0.1:1401/send", "username": "loa",
          "password": { "env": "J" }, "receipt_secret": { "env": "S" }, "rate": 50, "method": "POST" }
        """

    /// The problems of a config that must not load (recorded as an issue, nil, if it loads).
    func problems(_ path: String, _ environment: [String: String], _ why: String) -> ProblemList? {
        guard case .failure(let problems) = ConfigLoader.load(path: path, environment: environment) else {
            Issue.record(Comment(rawValue: why))
            return nil
        }
        return problems
    }

    @Test func jasminAndTheShippedGenericSampleLoad() throws {
        let s = Scratch()
        let sample = try String(contentsOfFile: Self.root + "/Config/carriers/gateway-sim-generic.json5", encoding: .utf8)
        let path = s.write("loa.json", config(carriers: jasmin + ",\n" + sample, extra: #""global_rate": 300,"#))
        let c = try ConfigLoader.load(path: path, environment: env).get()
        #expect(c.carriers.map(\.kind) == ["jasmin", "generic"])
        #expect(c.carriers[0].password == "jasmin-pw" && c.carriers[0].method == "POST")
        #expect(c.carriers[1].secrets == ["token": "sim-token"] && c.carriers[1].generic?.batch?.max == 100)
        #expect(c.globalRate == 300)
    }

    /// The limit keys of issue 17: read with their defaults, and bad values named by field.
    @Test func limitKeysLoadAndBadOnesAreNamed() throws {
        let s = Scratch()
        let sample = try String(contentsOfFile: Self.root + "/Config/carriers/gateway-sim-generic.json5", encoding: .utf8)
        let limited = jasmin.replacingOccurrences(of: #""method": "POST" }"#, with: #""method": "POST", "requests_per_second": 2.5, "pause_after_identical_failures": 0 }"#)
        let withMin = sample.replacingOccurrences(of: #""same_text": false,"#, with: #""same_text": false, "min": 30, "remainder_carrier": "j","#)
        let c = try ConfigLoader.load(path: s.write("ok.json", config(carriers: limited + ",\n" + withMin)), environment: env).get()
        #expect(c.carriers[0].requestsPerSecond == 2.5 && c.carriers[0].pauseAfterIdenticalFailures == 0)
        #expect(c.carriers[1].requestsPerSecond == nil && c.carriers[1].pauseAfterIdenticalFailures == 20, "the defaults")
        #expect(c.carriers[1].batchMin == 30 && c.carriers[1].remainderCarrier == "j")

        let bad = jasmin.replacingOccurrences(of: #""method": "POST" }"#, with: #""method": "POST", "requests_per_second": 0, "pause_after_identical_failures": -1 }"#)
        let tooBig = sample.replacingOccurrences(of: #""same_text": false,"#, with: #""same_text": false, "min": 51, "remainder_carrier": "nowhere","#)
        guard let p = problems(s.write("bad.json", config(carriers: bad + ",\n" + tooBig)), env, "bad limits must not load") else { return }
        let fields = Set(p.problems.map(\.field))
        #expect(fields.isSuperset(of: ["carriers.0.requests_per_second", "carriers.0.pause_after_identical_failures",
                                       "carriers.1.batch.min", "carriers.1.batch.remainder_carrier"]), "\(p)")
    }

    @Test func genericProblemsNameTheCarrierFieldAndLine() throws {
        let s = Scratch()
        let generic = """
            {
              "name": "g", "kind": "generic", "url": "http://127.0.0.1:9/api", "receipt_secret": { "env": "S" }, "rate": 10,
              "secrets": { "token": { "env": "NOT_SET" } },
              "headers": { "Authorization": "Bearer {{secret.nope}}" },
              "body": { "format": "json", "template": { "to": "{{to}}", "x": "{{bogus}}" } },
              "response": { "rules": [ { "status": "200", "class": "ok" } ] },
            }
            """
        let path = s.write("loa.json", config(carriers: jasmin + ",\n" + generic, extra: #""global_rate": -1,"#))
        guard let problems = problems(path, env, "a bad generic carrier must not load") else { return }
        let text = problems.description
        #expect(text.contains("carriers.1.secrets.token: environment variable NOT_SET is not set"), "\(text)")
        #expect(text.contains("carriers.1.response.rules.0.class"), "\(text)")
        #expect(text.contains("{{bogus}}"), "\(text)")
        #expect(text.contains("secret.nope") || text.contains("nope"), "\(text)")
        #expect(text.contains("global_rate: must be > 0"), "\(text)")
        // Every line names the file.
        #expect(problems.problems.allSatisfy { $0.file == path && $0.line > 0 }, "\(text)")
    }

    @Test func aCarrierProxyIsAURLOrASecretAndProblemsNeverQuoteIt() throws {
        let s = Scratch()
        func carrier(_ name: String, _ proxy: String) -> String {
            jasmin.replacingOccurrences(of: #""name": "j""#, with: #""name": "\#(name)""#)
                .replacingOccurrences(of: #""method": "POST""#, with: #""method": "POST", "proxy": \#(proxy)"#)
        }
        // A URL without credentials may be written; one with them comes from the environment or a file.
        let ok = s.write("ok.json", config(carriers: [carrier("j", #""http://proxy.internal:3128""#),
                                                      carrier("k", #"{ "env": "P" }"#), jasmin.replacingOccurrences(of: #""name": "j""#, with: #""name": "n""#)].joined(separator: ",\n")))
        let c = try ConfigLoader.load(path: ok, environment: env.merging(["P": "socks5h://u:s3cr3t@10.0.0.1:1080"]) { $1 }).get()
        #expect(c.carriers.map(\.proxy) == ["http://proxy.internal:3128", "socks5h://u:s3cr3t@10.0.0.1:1080", nil])

        let bad = s.write("bad.json", config(carriers: [carrier("j", #""http://user:inl1ne@proxy:3128""#), carrier("k", #""ftp://proxy:21""#),
                                                        carrier("l", #""http://:3128""#), carrier("m", #"{ "env": "Q" }"#),
                                                        carrier("o", #""http://proxy:3128/path""#)].joined(separator: ",\n")))
        guard let problems = problems(bad, env.merging(["Q": "gopher://u:hidden@x"]) { $1 }, "bad proxies must not load") else { return }
        let text = problems.description
        #expect(text.contains("carriers.0.proxy: a proxy URL with credentials must come from"), "\(text)")
        #expect(text.contains("carriers.1.proxy: must be a proxy URL: http://, https://, socks4://"), "\(text)")
        #expect(text.contains("carriers.2.proxy: has no host"), "\(text)")
        #expect(text.contains("carriers.3.proxy: must be a proxy URL"), "\(text)")
        #expect(text.contains("carriers.4.proxy: must not have a path"), "\(text)")
        #expect(!text.contains("inl1ne") && !text.contains("hidden"), "\(text)")
        #expect(problems.problems.allSatisfy { $0.file == bad && $0.line > 0 }, "\(text)")
    }

    @Test func unknownKindsAreListed() throws {
        let s = Scratch()
        let path = s.write("loa.json", config(carriers: jasmin.replacingOccurrences(of: "\"jasmin\"", with: "\"smpp\"")))
        guard let problems = problems(path, env, "smpp is not a kind") else { return }
        #expect(problems.description.contains("carriers.0.kind: unknown adapter kind 'smpp' (known: kannel, jasmin, generic)"))
    }
}
