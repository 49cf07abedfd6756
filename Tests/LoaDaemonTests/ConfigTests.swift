import Foundation
import LoaCore
import Testing
@testable import LoaCommandLine
@testable import LoaDaemon
@testable import LoaSim

final class Scratch {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "loa-daemon-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func write(_ name: String, _ text: String) -> String {
        let p = path + "/" + name
        try! FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try! text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

let goodConfig = """
    // comment lines are allowed
    {
      "data_dir": "data",
      "listen": { "address": "127.0.0.1", "port": 0 },
      "api_token": { "env": "T" },
      "carriers": [
        {
          "name": "k1",
          "kind": "kannel",
          "url": "http://127.0.0.1:13013/cgi-bin/sendsms",
          "username": "loa",
          "password": { "file": "kannel.pw" },
          "receipt_secret": { "env": "S" },
          "rate": 100,
        },
      ],
      "routing": { "default": "k1", "prefixes": { "8486": "k1" }, "networks": { "viettel": "k1" } },
    }
    """

@Suite struct ConfigTests {
    let env = ["T": "0123456789abcdef-token", "S": "receipt-secret-0123456789"]

    @Test func loadsJSON5WithSecretsFromEnvAndFile() throws {
        let s = Scratch()
        _ = s.write("kannel.pw", "hunter2\n")
        let path = s.write("loa.json", goodConfig)
        let c = try ConfigLoader.load(path: path, environment: env).get()
        #expect(c.apiToken == env["T"])
        #expect(c.carriers[0].password == "hunter2")
        #expect(c.carriers[0].receiptSecret == env["S"])
        #expect(c.dataDir == s.path + "/data")
        #expect(c.listenAddress == "127.0.0.1")
        #expect(c.carriers[0].maxInFlight == 32)
    }

    /// The read-only scrape token: a secret like the others, read from a file here; too short, or the operator's
    /// own token, is a located problem.
    @Test func metricsTokenIsASecretOfItsOwn() throws {
        let s = Scratch()
        _ = s.write("kannel.pw", "hunter2\n")
        _ = s.write("scrape.token", "scrape-token-0123456789\n")
        let withToken = goodConfig.replacingOccurrences(of: #""api_token": { "env": "T" },"#,
                                                        with: #""api_token": { "env": "T" }, "metrics_token": { "file": "scrape.token" },"#)
        let c = try ConfigLoader.load(path: s.write("loa.json", withToken), environment: env).get()
        #expect(c.metricsToken == "scrape-token-0123456789")
        #expect(try ConfigLoader.load(path: s.write("none.json", goodConfig), environment: env).get().metricsToken == nil)
        for (value, problem) in [("short", "metrics_token: must be at least 16 characters"),
                                 (env["T"]!, "metrics_token: must differ from api_token")] {
            let path = s.write("bad.json", withToken.replacingOccurrences(of: #"{ "file": "scrape.token" }"#, with: #"{ "env": "M" }"#))
            guard case .failure(let list) = ConfigLoader.load(path: path, environment: env.merging(["M": value]) { $1 }) else {
                Issue.record("metrics_token \(value.count) characters loaded"); continue
            }
            #expect(list.description.contains("\(path):5: \(problem)"), "\(list.description)")
            #expect(!list.description.contains(value))
        }
    }

    @Test func everyProblemIsLocated() throws {
        let s = Scratch()
        let bad = goodConfig
            .replacingOccurrences(of: "\"rate\": 100", with: "\"rate\": -5")
            .replacingOccurrences(of: "\"kind\": \"kannel\"", with: "\"kind\": \"smpp\"")
            .replacingOccurrences(of: "\"default\": \"k1\"", with: "\"default\": \"nope\"")
        let path = s.write("loa.json", bad)
        guard case .failure(let list) = ConfigLoader.load(path: path, environment: [:]) else {
            Issue.record("a bad config loaded"); return
        }
        let text = list.description
        #expect(text.contains("\(path):5: api_token: environment variable T is not set"))
        #expect(text.contains("\(path):9: carriers.0.kind: unknown adapter kind 'smpp'"))
        #expect(text.contains("\(path):12: carriers.0.password: cannot read secret file"))
        #expect(text.contains("\(path):13: carriers.0.receipt_secret: environment variable S is not set"))
        #expect(text.contains("\(path):14: carriers.0.rate: must be > 0"))
        #expect(text.contains("routing.default: names no configured carrier ('nope')"))
        // Secrets never appear in problems.
        #expect(!text.contains("hunter2"))
    }

    @Test func typeErrorsAndSyntaxErrorsAreLocated() {
        let s = Scratch()
        let p1 = s.write("a.json", goodConfig.replacingOccurrences(of: "\"rate\": 100", with: "\"rate\": \"fast\""))
        guard case .failure(let l1) = ConfigLoader.load(path: p1, environment: env) else { Issue.record("loaded"); return }
        #expect(l1.description.hasPrefix("\(p1):14: carriers.0.rate: expected a number"), "\(l1)")
        let p2 = s.write("b.json", "{\n  \"data_dir\": \"x\",\n  \"carriers\": [\n}")
        guard case .failure(let l2) = ConfigLoader.load(path: p2, environment: env) else { Issue.record("loaded"); return }
        #expect(l2.description.contains("not valid JSON"), "\(l2)")
        let p3 = s.write("c.json", "{ \"data_dir\": \"x\" }")
        guard case .failure(let l3) = ConfigLoader.load(path: p3, environment: env) else { Issue.record("loaded"); return }
        #expect(l3.description.contains("required field is missing"), "\(l3)")
    }

    /// `pace_from_receipts` (the deadline held at the handset): on for kannel and jasmin, off for generic unless
    /// set; a wrong type is located like every other field.
    @Test func paceFromReceiptsDefaultsByKind() throws {
        let s = Scratch()
        _ = s.write("kannel.pw", "x")
        let on = try ConfigLoader.load(path: s.write("a.json", goodConfig), environment: env).get()
        #expect(on.carriers[0].paceFromReceipts)
        let off = try ConfigLoader.load(path: s.write("b.json", goodConfig.replacingOccurrences(of: "\"rate\": 100", with: "\"rate\": 100, \"pace_from_receipts\": false")),
                                        environment: env).get()
        #expect(!off.carriers[0].paceFromReceipts)
        let bad = s.write("c.json", goodConfig.replacingOccurrences(of: "\"rate\": 100", with: "\"rate\": 100, \"pace_from_receipts\": \"yes\""))
        guard case .failure(let list) = ConfigLoader.load(path: bad, environment: env) else { Issue.record("loaded"); return }
        #expect(list.description.contains("\(bad):14: carriers.0.pace_from_receipts"), "\(list)")
    }

    @Test func clientOnlySkipsCarrierSecrets() throws {
        let s = Scratch()
        let path = s.write("loa.json", goodConfig)
        let c = try ConfigLoader.load(path: path, clientOnly: true, environment: ["T": env["T"]!]).get()
        #expect(c.apiBaseURL.hasPrefix("http://127.0.0.1:"))
    }

    @Test func theShippedExampleIsValid() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let c = try ConfigLoader.load(path: root + "/Config/loa.json",
                                      environment: ["LOA_API_TOKEN": "0123456789abcdef", "LOA_KANNEL_PASSWORD": "x",
                                                    "LOA_KANNEL_RECEIPT_SECRET": "0123456789abcdef"]).get()
        #expect(c.listenAddress == "127.0.0.1")
        let campaign = try CampaignLoader.load(path: root + "/Config/campaigns/vneid-gopy/campaign.json").get()
        #expect(campaign.segments.map(\.phoneColumn) == ["phone", "so_dien_thoai"])
        #expect(campaign.spec.sender == "UBND-TPHCM")
    }
}

@Suite struct CampaignFileTests {
    @Test func problemsNameFileLineAndField() {
        let s = Scratch()
        _ = s.write("t.txt", "Xin chào {{name")
        let path = s.write("c.json", """
            {
              "id": "bad id!",
              "sender": "A-SENDER-NAME-TOO-LONG",
              "templates": ["t.txt", "missing.txt"],
              "segments": ["nope.csv"],
              "start": "2026-11-24T08:00:00+07:00",
              "deadline": "2026-11-24T07:00:00+07:00"
            }
            """)
        guard case .failure(let list) = CampaignLoader.load(path: path) else { Issue.record("loaded"); return }
        let t = list.description
        #expect(t.contains("\(path):2: id:"))
        #expect(t.contains("\(path):3: sender: brandname must be 1-11 printable ASCII characters"))
        #expect(t.contains("\(path):7: deadline: must be after start"))
        #expect(t.contains("\(s.path)/t.txt:1: template:"))
        #expect(t.contains("\(path):4: templates.1: cannot read template file"))
        #expect(t.contains("\(path):5: segments.0: cannot read file"))
    }
}

@Suite struct CampaignRulesTests {
    @Test func advertisingAndReminderRules() {
        let s = Scratch()
        _ = s.write("t.txt", "Hi")
        let path = s.write("c.json", """
            {
              "id": "ad", "sender": "LOA", "templates": ["t.txt"],
              "segments": [{"from_campaign": "old", "states": ["delivered", "nope"]}],
              "advertising": true,
              "windows": ["06:00-23:00"],
              "start": "2026-11-24T08:00:00+07:00", "deadline": "2026-11-30T08:00:00+07:00"
            }
            """)
        guard case .failure(let list) = CampaignLoader.load(path: path) else { Issue.record("loaded"); return }
        let t = list.description
        #expect(t.contains("segments.0: unknown state 'nope'"), "\(t)")
        #expect(t.contains("opt_out_footer: advertising messages must end with opt-out instructions"), "\(t)")
        #expect(t.contains(":5: windows: advertising may only be sent between 07:00 and 22:00"), "\(t)")
    }
}
