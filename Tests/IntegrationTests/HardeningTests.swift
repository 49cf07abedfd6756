import Foundation
import LoaCarriers
import LoaCore
import LoaStore
import Testing

/// Inputs a careless planner or a hostile client sends: each gets a clear refusal naming the field, the daemon
/// stays up, and nothing already accepted changes. Through the real binary.
@Suite(.ownThreads, .serialized) struct HardeningTests {
    /// One bad value, written as the campaign file has it and as the API body has it, and the field named.
    struct Case {
        var name: String
        var file: [String: String]
        var body: [String: String]
        var field: String
    }

    static let cases: [Case] = [
        Case(name: "max_rate 1e300", file: ["max_rate": "1e300"], body: ["max_rate": "1e300"], field: "max_rate"),
        Case(name: "max_rate 0", file: ["max_rate": "0"], body: ["max_rate": "0"], field: "max_rate"),
        Case(name: "max_rate negative", file: ["max_rate": "-5"], body: ["max_rate": "-5"], field: "max_rate"),
        Case(name: "max_rate 1e-300", file: ["max_rate": "1e-300"], body: ["max_rate": "1e-300"], field: "max_rate"),
        Case(name: "weight near Int64.max, urgent", file: ["weight": "9223372036854775807", "priority": "\"urgent\""],
             body: ["weight": "9223372036854775807", "priority": "\"urgent\""], field: "weight"),
        Case(name: "negative weight", file: ["weight": "-3"], body: ["weight": "-3"], field: "weight"),
        Case(name: "template weight near Int64.max", file: ["templates": #"[{"file": "t.txt", "weight": 9223372036854775807}]"#],
             body: ["templates": #"[{"name": "t.txt", "text": "Moi gop y", "weight": 9223372036854775807}]"#], field: "templates.0.weight"),
        Case(name: "empty sender", file: ["sender": "\"\""], body: ["sender": "\"\""], field: "sender"),
        Case(name: "10 KB sender", file: ["sender": "\"" + String(repeating: "S", count: 10_000) + "\""],
             body: ["sender": "\"" + String(repeating: "S", count: 10_000) + "\""], field: "sender"),
        Case(name: "max_segments 0", file: ["max_segments": "0"], body: ["max_segments": "0"], field: "max_segments"),
        Case(name: "max_segments over the cap", file: ["max_segments": "1000"], body: ["max_segments": "1000"], field: "max_segments"),
        Case(name: "unknown field", file: ["max_rates": "5"], body: ["max_rates": "5"], field: "max_rates"),
        Case(name: "duplicate carriers", file: ["carriers": #"["sim", "sim"]"#], body: ["carriers": #"["sim", "sim"]"#], field: "carriers"),
        Case(name: "id .", file: ["id": "\".\""], body: ["id": "\".\""], field: "id"),
        Case(name: "id ..", file: ["id": "\"..\""], body: ["id": "\"..\""], field: "id"),
        Case(name: "id -x", file: ["id": "\"-x\""], body: ["id": "\"-x\""], field: "id"),
        Case(name: "a deadline in the year 9999", file: ["deadline": "\"9999-01-01T00:00:00+07:00\""],
             body: ["deadline": "\"9999-01-01T00:00:00+07:00\""], field: "deadline"),
        Case(name: "a control character in the name", file: ["name": #""a\u001b]0;pwned\u0007""#], body: ["name": #""a\u001b]0;pwned\u0007""#], field: "name"),
    ]

    static func json(_ fields: [String: String]) -> String {
        "{" + fields.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
    }

    static let fileBase: [String: String] = [
        "id": "\"bad\"", "sender": "\"LOA\"", "templates": #"["t.txt"]"#, "segments": #"["s.csv"]"#,
        "start": "\"2026-01-01T00:00:00+07:00\"", "deadline": "\"2099-01-01T00:00:00+07:00\"",
    ]
    static let bodyBase: [String: String] = [
        "id": "\"bad\"", "sender": "\"LOA\"", "templates": #"[{"name": "t.txt", "text": "Moi gop y", "weight": 1}]"#,
        "segments": #"[{"name": "s.csv", "phone_column": "phone", "format": "csv"}]"#,
        "start": "\"2026-01-01T00:00:00+07:00\"", "deadline": "\"2099-01-01T00:00:00+07:00\"",
    ]

    /// A simulator that delivers everything (started) and a daemon sending to it (not started yet).
    static func rig(_ label: String, rate: Double = 500) async throws -> (WorkDir, GatewaySimProcess, LoaDaemonProcess) {
        let work = WorkDir(label)
        let sim = try GatewaySimProcess(work: work, args: ["--delivered-rate", "1"])
        try await sim.start()
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(SimCarriers.kannel("sim", sim, rate: rate))]", defaultCarrier: "sim")
        return (work, sim, loa)
    }

    /// `POST /api/v1/campaigns` with a raw JSON body.
    static func post(_ loa: LoaDaemonProcess, _ body: String) async throws -> HTTPResponse {
        try await loa.engine.perform(HTTPRequest(
            method: "POST", url: loa.base + "/api/v1/campaigns",
            headers: [HTTPHeader("Authorization", "Bearer \(loa.token)"), HTTPHeader("Content-Type", "application/json")],
            body: Array(body.utf8), timeout: 30))
    }

    /// `loa check` and the server refuse each bad campaign with the same `field: reason`, and the daemon stays up;
    /// a good campaign sent afterwards is delivered in full.
    @Test(.timeLimit(.minutes(3))) func checkAndServerRefuseTheSameBadCampaignAlike() async throws {
        let (work, sim, loa) = try await Self.rig("hard-rules")
        defer { sim.stop() }
        try await loa.start()
        work.write("bad/t.txt", "Moi gop y")
        work.write("bad/s.csv", "phone\n0912000001\n")
        for c in Self.cases {
            let file = work.file("bad/c.json")
            work.write("bad/c.json", Self.json(Self.fileBase.merging(c.file) { $1 }))
            let check = try loa.cli(["check", file])
            #expect(check.status == 1, "\(c.name): loa check must refuse: \(check.output)")
            let r = try await Self.post(loa, Self.json(Self.bodyBase.merging(c.body) { $1 }))
            #expect(r.status == 422, "\(c.name): the server must refuse: \(r.status) \(r.bodyText)")
            let problems = ((try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["error"] as? [String: Any])?["problems"]
                as? [[String: String]] ?? []
            let named = problems.filter { $0["field"] == c.field }
            #expect(!named.isEmpty, "\(c.name): the server's answer names \(c.field): \(r.bodyText)")
            for p in named {
                // The same words in both, placed in the file by `loa check`.
                #expect(check.output.contains(": \(p["field"]!): \(p["reason"]!)"), "\(c.name): check says \(check.output), server says \(p)")
            }
            #expect(loa.child?.isRunning == true, "\(c.name): the daemon died:\n\(loa.child?.output ?? "")")
        }
        // A body that gives a key twice says two things: refused, naming the key (Foundation would keep one).
        let twice = try await Self.post(loa, Self.json(Self.bodyBase).replacingOccurrences(of: #""id": "bad""#, with: #""id": "bad", "max_rate": 5, "max_rate": 1e300"#))
        #expect(twice.status == 422 && twice.bodyText.contains(#""field":"max_rate","reason":"given twice""#), "\(twice.status) \(twice.bodyText)")
        let list = try await loa.api("/api/v1/campaigns")
        #expect(list.bodyText == "[]", "no bad campaign was stored: \(list.bodyText)")
        let expected = SimCampaign.write(work, id: "good", n: 20)
        let submit = try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")])
        try #require(submit.status == 0, "\(submit.output)")
        let states = try await SimCampaign.settle(loa, sim, id: "good", n: 20)
        #expect(states["delivered"] == expected.count, "\(states)")
        #expect(loa.stop() == 0)
    }

    /// A campaign stored with values the rules now refuse (as an older version accepted them: the crash loop of
    /// `max_rate: 1e300`) fails alone with its reason; the daemon stays up, another campaign is delivered, and a
    /// restart does not meet the failure again.
    @Test(.timeLimit(.minutes(3))) func aStoredCampaignThatBreaksTheRulesFailsAlone() async throws {
        let (work, sim, loa) = try await Self.rig("hard-failed")
        defer { sim.stop() }
        do {
            // Written straight into the store, as a version without the rules would have.
            try FileManager.default.createDirectory(atPath: work.file("data"), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let store = try Store(directory: work.file("data"), log: nil, clock: SystemTimeSource())
            var sub = CampaignSubmission(id: "old", name: nil, sender: "LOA", templates: [.init(name: "t", text: "Moi gop y")],
                                         segments: [.init(name: "s.csv", phoneColumn: "phone")], start: "2026-01-01T00:00:00+07:00",
                                         deadline: "2099-01-01T00:00:00+07:00", encoding: .auto, maxSegments: nil, allowedCountryCodes: [],
                                         windows: ["00:00-24:00"], priority: .urgent, weight: Int.max, maxRate: 1e300)
            sub.carriers = []
            try store.createCampaign(sub, startAt: ISOTime.parse(sub.start)!, deadlineAt: ISOTime.parse(sub.deadline)!)
            let rows = (0..<30).map { i in
                IngestRow.accepted(phone: "+84912\(String(format: "%06d", 500 + i))", carrier: "sim", text: "Moi gop y", encoding: .gsm7,
                                   segments: 1, source: "s.csv", line: i + 2, raw: "0912", group: nil)
            }
            _ = try store.ingest(campaign: "old", rows: rows)
            try store.commitCampaign("old")
            store.close()
        }
        try await loa.start()
        try await poll(20, "the stored campaign to fail") {
            let c = try await loa.campaign("old")
            return c["state"] as? String == "failed" && (c["states"] as? [String: Int])?["cancelled"] == 30
        }
        let failed = try await loa.campaign("old")
        #expect((failed["failure"] as? String ?? "").contains("max_rate"), "\(failed)")
        #expect((failed["failure"] as? String ?? "").contains("weight"), "\(failed)")
        let show = try loa.cli(["campaign", "show", "old"])
        #expect(show.status == 0 && show.output.contains("(failed)") && show.output.contains("FAILED") && show.output.contains("max_rate"), "\(show.output)")
        let expected = SimCampaign.write(work, id: "good", n: 20)
        let submit = try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")])
        try #require(submit.status == 0, "\(submit.output)")
        let states = try await SimCampaign.settle(loa, sim, id: "good", n: 20)
        #expect(states["delivered"] == expected.count, "\(states)")
        #expect(loa.child?.output.contains("campaign failed") == true)
        #expect(loa.stop() == 0)
        try await loa.start()
        #expect(try await loa.campaign("old")["state"] as? String == "failed")
        #expect(try await loa.api("/healthz").status == 200)
        #expect(loa.stop() == 0)
        #expect(try await sim.accepted().keys.allSatisfy { !$0.hasPrefix("84912000") }, "nothing of the failed campaign was sent")
    }

    /// An upload that began for a campaign which was then discarded and created again under the same id writes
    /// nothing into the new one, and its commit is refused.
    @Test(.timeLimit(.minutes(2))) func anUploadCannotOutliveItsCampaign() async throws {
        let (_, sim, loa) = try await Self.rig("hard-upload")
        defer { sim.stop() }
        try await loa.start()
        func create(_ slogan: String) async throws -> String {
            let body = Self.json(Self.bodyBase.merging(["id": "\"up\"", "templates": #"[{"name": "t", "text": "\#(slogan)", "weight": 1}]"#]) { $1 })
            let r = try await Self.post(loa, body)
            try #require(r.status == 201, "\(r.bodyText)")
            let g = (try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["generation"] as? Int64
            return String(try #require(g))
        }
        let first = try await create("OLD slogan")
        // The first upload: a head promising 12,000 rows, then the first 6,000 (one batch of 5,000 is stored).
        func rows(_ range: Range<Int>) -> String { range.map { "0912\(String(format: "%06d", $0))\n" }.joined() }
        let rest = rows(6000..<12000)
        let head = "phone\n" + rows(0..<6000)
        let fd = try #require(Self.connect(loa.port))
        defer { close(fd) }
        let request = "PUT /api/v1/campaigns/up/segments/s.csv HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(loa.token)\r\n"
            + "Content-Type: text/csv\r\nContent-Length: \(head.utf8.count + rest.utf8.count)\r\n\r\n" + head
        #expect(Self.send(fd, request))
        try await poll(20, "the first batch of the old upload to be stored") {
            (try await loa.campaign("up")["rows"] as? Int ?? 0) >= 5000
        }
        let discard = try await loa.api("/api/v1/campaigns/up", method: "DELETE")
        #expect(discard.status == 200, "\(discard.bodyText)")
        let second = try await create("NEW slogan")
        #expect(second != first)
        // The old stream goes on: refused, and nothing of it lands in the new campaign.
        _ = Self.send(fd, rest)
        let answer = Self.readAll(fd)
        #expect(answer.hasPrefix("HTTP/1.1 409"), "\(answer)")
        #expect(try await loa.campaign("up")["rows"] as? Int == 0)
        let staleCommit = try await loa.api("/api/v1/campaigns/up/commit?generation=\(first)", method: "POST")
        #expect(staleCommit.status == 409, "\(staleCommit.bodyText)")
        #expect(try await loa.campaign("up")["state"] as? String == "loading")
        #expect(loa.stop() == 0)
    }

    /// A 3 MB template is refused at submit naming it; a slogan of 12 parts with no `max_segments` is refused at
    /// upload (the default is 10), so no message can charge a carrier's bucket thousands of parts.
    @Test(.timeLimit(.minutes(2))) func partsAreBoundedByDefault() async throws {
        let (work, sim, loa) = try await Self.rig("hard-parts")
        defer { sim.stop() }
        try await loa.start()
        let huge = String(repeating: "a", count: 3_000_000)
        let r = try await Self.post(loa, Self.json(Self.bodyBase.merging(["templates": #"[{"name": "big", "text": "\#(huge)", "weight": 1}]"#]) { $1 }))
        #expect(r.status == 422 && r.bodyText.contains("templates.0") && r.bodyText.contains("at most 40800"), "\(r.status) \(r.bodyText.prefix(300))")
        // 12 parts of GSM-7 (153 characters each).
        work.write("long/t.txt", String(repeating: "Moi gop y du thao. ", count: 95))
        work.write("long/s.csv", "phone\n0912000001\n0912000002\n")
        work.write("long/c.json", Self.json(Self.fileBase.merging(["id": "\"long\""]) { $1 }))
        let submit = try loa.cli(["campaign", "submit", work.file("long/c.json")])
        #expect(submit.status == 1 && submit.output.contains("more than 10 SMS parts"), "\(submit.output)")
        #expect(try await loa.api("/api/v1/campaigns/long").status == 404, "the CLI discarded it")
        #expect(loa.child?.isRunning == true)
        #expect(loa.stop() == 0)
    }

    /// A config value that once trapped `loa check` (`retry.base_seconds: 1e300`) and a misspelt key are refused
    /// with the file, line and field; exit 1, not a crash.
    @Test func badConfigValuesAreRefusedNotTrapped() throws {
        let work = WorkDir("hard-config")
        for (extra, field) in [(#""retry": {"base_seconds": 1e300}"#, "retry.base_seconds"), (#""retry": {"max_attempts": 3, "max_seconds": 1e300}"#, "retry.max_seconds"),
                               (#""drain_secnds": 5"#, "drain_secnds"), (#""contact_policy": {"max_messages": 9223372036854775807}"#, "contact_policy.max_messages")] {
            work.write("loa.json", """
                {
                  "data_dir": "data",
                  "api_token": {"env": "LOA_API_TOKEN"},
                  "carriers": [{"name": "k", "kind": "kannel", "url": "http://127.0.0.1:9/", "rate": 10,
                                "receipt_secret": {"env": "LOA_API_TOKEN"}}],
                  "routing": {"default": "k"},
                  \(extra)
                }
                """)
            let r = try run(Env.loaBinary, ["check", "--config", work.file("loa.json")], env: ["LOA_API_TOKEN": "0123456789abcdef0123"])
            #expect(r.status == 1, "\(extra): \(r.status) \(r.output)")
            #expect(r.output.contains("loa.json:7: \(field):"), "\(extra): \(r.output)")
        }
    }

    // MARK: raw sockets

    static func connect(_ port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 { close(fd); return nil }
        var tv = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// Writes all of `text`; false when the peer closed first.
    static func send(_ fd: Int32, _ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var at = 0
        while at < bytes.count {
            let n = bytes[at...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            at += n
        }
        return true
    }

    /// Reads until the peer closes or 20 s pass.
    static func readAll(_ fd: Int32) -> String {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buf[0..<n]
            if let s = String(bytes: out, encoding: .utf8), s.contains("\r\n\r\n"), s.contains("}") { break }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Rates a carrier states in SMS parts hold for long messages: each message pays for all its parts.
@Suite(.ownThreads, .serialized) struct RateInPartsTests {
    /// 300 messages of 2 parts through a carrier allowing 100 parts/s: 600 parts take at least 5.9 s (the 0.1 s
    /// burst aside) from the first send to the last; without the charge for extra parts they take half that. A
    /// lower bound on the time only: a loaded machine sends slower, never faster. (The busiest second of the log,
    /// checked here before, moved with the store writer's timing on a loaded machine: 62 where 55 is the bound.)
    @Test(.timeLimit(.minutes(2))) func longMessagesPayForEveryPart() async throws {
        let (work, sim, rated) = try await HardeningTests.rig("parts-rate", rate: 100)
        defer { sim.stop() }
        let expected = SimCampaign.write(work, id: "parts", n: 300)
        try await rated.start()
        let submit = try rated.cli(["campaign", "submit", work.file("campaign/campaign.json")])
        try #require(submit.status == 0 && submit.output.contains("\(expected.count * 2) SMS parts"), "\(submit.output)")
        _ = try await SimCampaign.settle(rated, sim, id: "parts", n: 300)
        let sends = rated.logEvents().filter { $0["event"] as? String == "sending" }.compactMap { ($0["time"] as? String).flatMap(ISOTime.parse) }.sorted()
        #expect(sends.count == expected.count)
        let span = Double((sends.last ?? 0) - (sends.first ?? 0)) / 1000
        #expect(span >= 4.5, "600 parts sent in \(span) s against 100 parts/s (at least 5.9 s)")
        #expect(rated.stop() == 0)
    }
}
