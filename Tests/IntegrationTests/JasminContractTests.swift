import Foundation
import Testing

/// The shipped `Config/carriers/jasmin.json5` (POST, `max_parts` 5, `validity`) against the Jasmin fake of
/// `Tests/Providers/fakes/provider_fake.py --provider jasmin`, written from Jasmin's HTTP API documentation and its
/// `send.py`: ids, level 1 and level 2 DLRs acknowledged with `ACK/Jasmin`, 412 No route found, wrong credentials,
/// the 5-part limit, the user's throughput, the validity period, nothing sent twice.
@Suite(.ownThreads, .serialized) struct JasminContractTests {
    static let secrets = ["LOA_JASMIN_PASSWORD": "jasmin-pw-0001"]
    static let credentials = "loa:jasmin-pw-0001"

    /// A campaign whose template is the row's `text` cell: `text`, or `texts[number]` (no commas), due by `deadline`.
    static func write(_ work: WorkDir, id: String, numbers: [String], text: String, texts: [String: String] = [:], deadline: Date) {
        work.write("campaign/segment.csv", "phone,text\n" + numbers.map { "+\($0),\(texts[$0] ?? text)\n" }.joined())
        work.write("campaign/text.txt", "{{text}}\n")
        let f = ISO8601DateFormatter()
        work.write("campaign/campaign.json", """
            {
              "id": "\(id)", "sender": "LOA", "templates": ["text.txt"], "segments": ["segment.csv"],
              "start": "2026-01-01T07:00:00+07:00", "deadline": "\(f.string(from: deadline))", "windows": ["00:00-24:00"],
            }
            """)
    }

    static func submit(_ run: ProviderRun) throws {
        let r = try run.loa.cli(["campaign", "submit", run.work.file("campaign/campaign.json")])
        try #require(r.status == 0, "submit: \(r.output)")
    }

    /// Every outcome a Jasmin DLR reports settles its message: DELIVRD → delivered, EXPIRED → expired, UNDELIV and
    /// REJECTD → failed; each DLR (level 1 and level 2) is answered `ACK/Jasmin`, else Jasmin would retry it. The
    /// gateway id is Jasmin's uuid; the request is a POST asking for both levels; `validity-period` is the minutes
    /// left to the deadline; a 6-part message fails before it is sent (Jasmin would cut it to 5) and the rest go.
    @Test(.timeLimit(.minutes(2))) func receiptsIdsValidityAndTheFivePartLimit() async throws {
        let numbers = ProviderCampaign.numbers(30)
        let expired = numbers[0], undelivered = numbers[1], rejected = numbers[2], long = numbers[3]
        let run = try await ProviderRun.start("jasmin", provider: "jasmin", profile: "jasmin.json5", credentials: Self.credentials,
                                              secrets: Self.secrets,
                                              fakeArgs: ["--receipt", "\(expired)=expired", "--receipt", "\(undelivered)=undelivered",
                                                         "--receipt", "\(rejected)=rejected"])
        defer { run.stop() }
        let deadline = Date().addingTimeInterval(3 * 3600 + 1800)
        // 817 GSM-7 characters: 6 parts of 153.
        Self.write(run.work, id: "it-jasmin", numbers: numbers, text: "Loa contract test", texts: [long: "Loa contract test" + String(repeating: "x", count: 800)],
                   deadline: deadline)
        try Self.submit(run)
        let states = try await SimCampaign.settle(run.loa, nil, id: "it-jasmin", n: numbers.count, seconds: 60)
        #expect(states["delivered"] == 26 && states["expired"] == 1 && states["failed"] == 3, "\(states)")
        let m = try await ProviderCampaign.messages(run.loa, "it-jasmin")
        #expect(m[expired]?.state == "expired", "\(String(describing: m[expired]))")
        for n in [undelivered, rejected] { #expect(m[n]?.state == "failed", "\(n): \(String(describing: m[n]))") }
        #expect(m[undelivered]?.reason.contains("UNDELIV") == true && m[rejected]?.reason.contains("REJECTD") == true,
                "\(String(describing: m[undelivered])) \(String(describing: m[rejected]))")
        #expect(m[long]?.state == "failed" && m[long]?.reason.contains("max_parts") == true, "\(String(describing: m[long]))")
        let ledger = run.fake.ledger()
        // Jasmin's uuid is the gateway id.
        let ids = Dictionary(ledger.map { ($0["to"] as? String ?? "", $0["id"] as? String ?? "") }, uniquingKeysWith: { $1 })
        for n in numbers where n != long {
            #expect(m[n]?.gatewayID == ids[n] && UUID(uuidString: ids[n] ?? "") != nil, "\(n): \(String(describing: m[n]))")
        }
        // POST, both DLR levels; the 6-part message never reached Jasmin; nothing went twice.
        #expect(ledger.allSatisfy { $0["method"] as? String == "POST" && $0["dlr_level"] as? String == "3" && $0["parts_cut"] as? Int == 0 })
        #expect(run.fake.sendsPerNumber().count == 29 && run.fake.sendsPerNumber()[long] == nil && run.fake.sendsPerNumber().values.allSatisfy { $0 == 1 })
        // validity-period: the whole minutes from the send to the deadline (one minute of slack for the clock's tick).
        for e in ledger {
            let t = e["t"] as? Double ?? 0
            let left = Int((deadline.timeIntervalSince1970 - t) / 60)
            let sent = e["validity"] as? Int ?? -1
            #expect(sent >= left - 1 && sent <= left, "validity-period \(sent), minutes left \(left)")
        }
        // Every DLR, level 1 and level 2, was answered ACK/Jasmin.
        try await poll(10, "every DLR acknowledged") { (try await run.fake.stats()["callbacks"] as? Int) == 2 * 29 }
        let stats = try await run.fake.stats()
        #expect(stats["unacknowledged"] as? Int == 0 && stats["callback_failures"] as? Int == 0, "\(stats)")
    }

    /// A 412 `No route found` is permanent (one attempt); `pause_after_identical_failures` (20) of them in a row pause
    /// the carrier: the rest wait queued instead of failing, and `loa carriers` names the answer.
    @Test(.timeLimit(.minutes(2))) func noRouteFoundPausesTheCarrier() async throws {
        let numbers = ProviderCampaign.numbers(40)
        let run = try await ProviderRun.start("jasmin-noroute", provider: "jasmin", profile: "jasmin.json5", credentials: Self.credentials,
                                              secrets: Self.secrets, fakeArgs: numbers.flatMap { ["--reject", "\($0)=412"] })
        defer { run.stop() }
        Self.write(run.work, id: "it-jasmin-noroute", numbers: numbers, text: "Loa contract test", deadline: Date().addingTimeInterval(3 * 3600))
        try Self.submit(run)
        try await poll(30, every: 0.1, "the carrier to pause") {
            let list = (try JSONSerialization.jsonObject(with: Data(try await run.loa.api("/api/v1/carriers").body)) as? [[String: Any]]) ?? []
            return list.first?["paused_reason"] != nil
        }
        try await poll(10, every: 0.1, "in-flight answers to settle") {
            (try await SimCampaign.states(run.loa, "it-jasmin-noroute"))["sending"] ?? 0 == 0
        }
        let states = try await SimCampaign.states(run.loa, "it-jasmin-noroute")
        #expect(states["failed"] == 20 && states["queued"] == 20, "\(states)")
        let m = try await ProviderCampaign.messages(run.loa, "it-jasmin-noroute")
        let failed = m.values.filter { $0.state == "failed" }
        #expect(failed.allSatisfy { $0.attempts == 1 && $0.reason.contains("No route found") }, "\(failed)")
        let carriers = try run.loa.cli(["carriers"]).output
        #expect(carriers.contains("PAUSED after 20 identical permanent answers in a row: HTTP 412"), "\(carriers)")
        #expect(run.fake.ledger().isEmpty)
    }

    /// Jasmin's 403 `Authentication failure for username:loa` is an authentication refusal: nothing is sent, nothing
    /// fails, and `loa carriers` and the carriers API say the carrier refuses Loa's credentials.
    @Test(.timeLimit(.minutes(2))) func wrongCredentialsAreAnAuthenticationRefusal() async throws {
        let run = try await ProviderRun.start("jasmin-auth", provider: "jasmin", profile: "jasmin.json5", credentials: "loa:the-right-password",
                                              secrets: Self.secrets, retry: #"{ "max_attempts": 3, "base_seconds": 0.1, "max_seconds": 0.5 }"#)
        defer { run.stop() }
        let n = 5
        Self.write(run.work, id: "it-jasmin-auth", numbers: ProviderCampaign.numbers(n), text: "Loa auth test", deadline: Date().addingTimeInterval(3 * 3600))
        try Self.submit(run)
        try await poll(30, "the carrier to show the refusal") {
            let list = (try JSONSerialization.jsonObject(with: Data(try await run.loa.api("/api/v1/carriers").body)) as? [[String: Any]]) ?? []
            return list.first?["auth_refused"] != nil
        }
        #expect((try await run.fake.stats()["unauthorized"] as? Int ?? 0) >= 1)
        #expect(run.fake.ledger().isEmpty)
        let out = try run.loa.cli(["carriers"]).output
        #expect(out.contains("REFUSES LOA'S CREDENTIALS"), "loa carriers: \(out)")
        let states = try await SimCampaign.states(run.loa, "it-jasmin-auth")
        #expect(states["failed"] == nil && (states["queued"] ?? 0) + (states["sending"] ?? 0) == n, "\(states)")
    }

    /// The user's throughput (here 10 messages a second). Jasmin answers 403 `User throughput exceeded` to a submit
    /// closer than 1/10 s to the previous accepted one: a minimum spacing with no burst (send.py, "QoS throttling").
    /// With `requests_per_second` at 95% of it, as the profile advises (evenly spaced requests), Loa keeps pace
    /// within 10% of the limit, and nothing is sent twice. Measured (2-core machine, 60 messages, run alone):
    /// 9.41 to 9.44 messages/s in 5 runs, never throttled. `rate` instead (a token bucket that catches up after a
    /// delay): at 9 of 10, 8.9/s; at 9.2, one run in 5 got a 403 and 6.4/s; at 10, 6.8/s (a single 403 halves the
    /// adaptive rate, which comes back by 5% of the configured rate a second).
    @Test(.timeLimit(.minutes(2))) func throughputKeepsPaceBelowTheUsersLimit() async throws {
        // 150 messages (about 16 s): one 403 from jitter at the limit's edge (the full suite runs beside it) costs
        // a tenth of the rate for a second or two and a half-second wait for its message, not a tenth of the run.
        let n = 150
        let run = try await ProviderRun.start("jasmin-pace", provider: "jasmin", profile: "jasmin.json5", credentials: Self.credentials,
                                              secrets: Self.secrets, fakeArgs: ["--rate", "10"], overrides: ["requests_per_second": "9.5"])
        defer { run.stop() }
        Self.write(run.work, id: "it-jasmin-pace", numbers: ProviderCampaign.numbers(n), text: "Loa pace test", deadline: Date().addingTimeInterval(3 * 3600))
        try Self.submit(run)
        let states = try await SimCampaign.settle(run.loa, nil, id: "it-jasmin-pace", n: n, seconds: 60)
        #expect(states["delivered"] == n, "\(states)")
        let pace = run.fake.acceptedPerSecond(interval: 1.0 / 10)
        let stats = try await run.fake.stats()
        // Never above the limit; and not far below it. Measured: 9.41 to 9.44 alone, 8.9 and once 8.5 with the whole
        // suite running beside it (403s from jitter on a loaded 2-core machine). The bound below catches a pacer that
        // falls back to half the rate; the figure itself is a benchmark's to quote, not a timed assertion's.
        #expect(pace >= 0.75 * 9.5 && pace <= 10.5, "messages/s \(pace), limit 10, requests_per_second 9.5; throttled \(stats["throttled"] ?? 0)")
        #expect((try await ProviderCampaign.messages(run.loa, "it-jasmin-pace")).values.allSatisfy { $0.attempts == 1 })
        #expect(run.fake.sendsPerNumber().count == n && run.fake.sendsPerNumber().values.allSatisfy { $0 == 1 })
    }

    /// Loa configured at twice the user's throughput: the 403s are throttling, not failures: every message is
    /// delivered at its first attempt, once. The pace falls short of the limit: 6.4 messages/s of 10 measured
    /// (each 403 halves the adaptive rate), which is why the profile advises `requests_per_second` below it.
    @Test(.timeLimit(.minutes(2))) func throughputExceededIsThrottlingNotFailure() async throws {
        let n = 60
        let run = try await ProviderRun.start("jasmin-403", provider: "jasmin", profile: "jasmin.json5", credentials: Self.credentials,
                                              secrets: Self.secrets, fakeArgs: ["--rate", "10"], overrides: ["rate": "20"])
        defer { run.stop() }
        Self.write(run.work, id: "it-jasmin-403", numbers: ProviderCampaign.numbers(n), text: "Loa pace test", deadline: Date().addingTimeInterval(3 * 3600))
        try Self.submit(run)
        let states = try await SimCampaign.settle(run.loa, nil, id: "it-jasmin-403", n: n, seconds: 60)
        #expect(states["delivered"] == n, "\(states)")
        let stats = try await run.fake.stats()
        #expect((stats["throttled"] as? Int ?? 0) >= 1, "\(stats)")
        let pace = run.fake.acceptedPerSecond(interval: 1.0 / 10)
        #expect(pace >= 5 && pace <= 10.5, "messages/s \(pace), limit 10; throttled \(stats["throttled"] ?? 0)")
        #expect((try await ProviderCampaign.messages(run.loa, "it-jasmin-403")).values.allSatisfy { $0.attempts == 1 })
        #expect(run.fake.sendsPerNumber().count == n && run.fake.sendsPerNumber().values.allSatisfy { $0 == 1 })
    }
}
