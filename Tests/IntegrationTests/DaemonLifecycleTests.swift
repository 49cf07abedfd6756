import Foundation
import LoaCarriers
import LoaCore
import Testing

@Suite(.ownThreads, .serialized) struct DaemonLifecycleTests {
    /// The crash test: 20,000 recipients through the gateway simulator (Kannel's shape, receipts on, a journal
    /// so its counts are exact); the daemon is killed with SIGKILL at three random moments and restarted each
    /// time. At the end every recipient is in exactly one final state, the simulator accepted no recipient twice
    /// and none that the store does not account for, and the delivery log agrees with the store. The seed is
    /// printed so a failure can be replayed (LOA_CRASH_SEED).
    @Test(.timeLimit(.minutes(6))) func killedAtRandomMomentsLosesNothingAndSendsNothingTwice() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["LOA_CRASH_SEED"] ?? "") ?? UInt64.random(in: 1...1_000_000)
        var rng = SeededRandom(seed: seed)
        let work = WorkDir("crash")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "\(seed)", "--delivered-rate", "0.9", "--latency-ms", "1",
                                                                 "--receipt-retries", "40", "--receipt-retry-ms", "250"])
        try await sim.start()
        defer { sim.stop() }
        let n = 20_000
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(SimCarriers.kannel("kannel", sim, rate: 2500, inFlight: 32))]",
                                       defaultCarrier: "kannel")
        let expected = FoundationPathTests.writeCampaign(work, id: "it-crash", n: n)
        try await loa.start()
        let submit = try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")])
        try #require(submit.status == 0, "submit: \(submit.output)")
        var kills: [Int] = []
        // Three kills by default; LOA_CRASH_KILLS asks for more (a stress run: each in its own slice of the campaign).
        let rounds = max(1, min(50, Int(ProcessInfo.processInfo.environment["LOA_CRASH_KILLS"] ?? "") ?? 3))
        for round in 0..<rounds {
            // A random point in this slice of the campaign.
            let target = n * round / rounds + Int(rng.next() % UInt64(n / rounds - 200)) + 100
            do {
                try await poll(120, every: 0.02, "\(target) messages sent (seed \(seed))") {
                    // The view leaves out states with no message: no `queued` once the last is claimed. (Read as
                    // "none sent", that made the wait miss a target among the last few hundred whenever the campaign
                    // got past it between two polls, and wait for 120 s on a completed campaign.)
                    guard let s = try await loa.campaign("it-crash")["states"] as? [String: Int] else { return false }
                    return n - (s["queued"] ?? 0) >= target
                }
            } catch {
                Issue.record("\(error), after kills at \(kills)\n\(await loa.diagnosis(campaign: "it-crash"))")
                throw error
            }
            loa.child?.signal(SIGKILL)
            _ = loa.child?.wait(seconds: 10)
            kills.append(target)
            try await loa.start()
        }
        // Every recipient final; then the simulator's receipts drained and the store at rest.
        let states = try await SimCampaign.settle(loa, sim, id: "it-crash", n: n, seconds: 240)
        #expect(states.values.reduce(0, +) == n, "seed \(seed): \(states)")
        #expect((states["unknown"] ?? 0) <= rounds * 32, "at most max_in_flight per kill can be caught in flight: \(states)")

        let stats = try await sim.stats()
        #expect(stats["duplicates"] as? Int == 0, "seed \(seed): the simulator accepted a recipient twice: \(stats)")
        let accepted = try await sim.accepted()
        #expect(accepted.values.allSatisfy { $0 == 1 }, "seed \(seed): \(accepted.filter { $0.value > 1 }.prefix(5))")
        #expect(Set(accepted.keys).isSubset(of: Set(expected.keys.map { $0.filter(\.isNumber) })))
        // Receipts settle everything the gateway has: delivered or failed (undelivered) in the store is exactly what it
        // accepted; unknown ones (in flight at a kill, never accepted) are the rest. None is missing.
        let settled = try await SimCampaign.numbers(loa, "it-crash", in: ["delivered", "failed"])
        let unknown = try await SimCampaign.numbers(loa, "it-crash", in: ["unknown"])
        #expect(settled.isSubset(of: Set(accepted.keys)), "seed \(seed): the store settled a message the gateway never had")
        #expect(Set(accepted.keys).subtracting(settled).isSubset(of: unknown),
                "seed \(seed): the gateway has a message the store neither settled nor reports unknown")
        #expect(settled.count + unknown.count == n, "seed \(seed): \(states), accepted \(accepted.count)")

        // The delivery log agrees with the store, and its seq has no gap or repeat across four processes.
        let events = loa.logEvents()
        var last: [Int: String] = [:]
        for e in events { if let m = e["message"] as? Int, let s = e["status"] as? String { last[m] = s } }
        var byState: [String: Int] = [:]
        for s in last.values { byState[s, default: 0] += 1 }
        #expect(byState == states.filter { $0.value > 0 }, "seed \(seed): log \(byState) vs store \(states)")
        let seqs = events.compactMap { $0["seq"] as? Int }
        #expect(seqs == Array(1...seqs.count), "seed \(seed): seq must stay gapless across the kills")
        #expect(loa.stop() == 0)
    }

    /// The operator API and the receipt endpoint refuse what they must, with clear errors, and nothing changes.
    @Test(.timeLimit(.minutes(2))) func badRequestsAreRefused() async throws {
        let work = WorkDir("api")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p")
        try await loa.start()
        defer { _ = loa.stop() }
        let e = loa.engine
        #expect(try await e.perform(HTTPRequest(url: loa.base + "/healthz")).status == 200)
        #expect(try await e.perform(HTTPRequest(url: loa.base + "/api/v1/campaigns")).status == 401)
        #expect(try await loa.api("/api/v1/campaigns", token: "wrong-token-0123456789").status == 401)
        let ok = try await loa.api("/api/v1/campaigns")
        #expect(ok.status == 200 && ok.bodyText == "[]")
        let badJSON = try await e.perform(HTTPRequest(method: "POST", url: loa.base + "/api/v1/campaigns",
                                                      headers: [HTTPHeader("Authorization", "Bearer \(loa.token)")], body: Array("{nope".utf8)))
        #expect(badJSON.status == 400 && badJSON.bodyText.contains("\"code\":\"bad-request\""))
        let secret = loa.receiptSecret
        #expect(try await e.perform(HTTPRequest(url: loa.base + "/dlr/kannel?k=\(secret)&st=1")).status == 400)
        #expect(try await e.perform(HTTPRequest(url: loa.base + "/dlr/kannel?k=\(secret)&st=99&id=1")).status == 400)
        #expect(try await e.perform(HTTPRequest(url: loa.base + "/dlr/kannel?k=\(secret)&st=1&id=12345")).status == 404)
        #expect(try await e.perform(HTTPRequest(url: loa.base + "/dlr/nosuch?k=\(secret)&st=1&id=1")).status == 404)

        // A segment without the phone column: the CLI names the file and the problem, and the campaign is discarded.
        work.write("bad/t.txt", "Xin chào {{name}}")
        work.write("bad/s.csv", "so,name\n0912345678,An\n")
        work.write("bad/c.json", """
            {"id": "bad", "sender": "LOA", "templates": ["t.txt"], "segments": ["s.csv"],
             "start": "2026-01-01T00:00:00+07:00", "deadline": "2099-01-01T00:00:00+07:00"}
            """)
        let r = try loa.cli(["campaign", "submit", work.file("bad/c.json")])
        #expect(r.status == 1)
        #expect(r.output.contains("s.csv") && r.output.contains("no column named 'phone'"), "\(r.output)")
        #expect(try await loa.api("/api/v1/campaigns").bodyText == "[]")
        let check = try loa.cli(["check", work.file("bad/c.json")])
        #expect(check.status == 1 && check.output.contains("s.csv:1: header: no column named 'phone'"), "\(check.output)")

        // A submit cut off after the create leaves a loading campaign: discard removes it.
        let created = try await e.perform(HTTPRequest(method: "POST", url: loa.base + "/api/v1/campaigns",
                                                      headers: [HTTPHeader("Authorization", "Bearer \(loa.token)")],
                                                      body: Array(#"{"id":"cut","sender":"LOA","templates":[{"name":"t","text":"Hi","weight":1}],"segments":[{"name":"s.csv","phone_column":"phone","format":"csv"}],"start":"2026-01-01T00:00:00Z","deadline":"2099-01-01T00:00:00Z"}"#.utf8)))
        #expect(created.status == 201, "\(created.bodyText)")
        #expect(try loa.cli(["campaign", "discard", "cut"]).status == 0)
        #expect(try await loa.api("/api/v1/campaigns").bodyText == "[]")
        #expect(try loa.cli(["campaign", "discard", "cut"]).status == 1)

        // --allow-rejects: rejected rows are listed but do not fail the check.
        work.write("rej/t.txt", "Hi")
        work.write("rej/s.csv", "phone\n0912345678\n02838221234\n")
        work.write("rej/c.json", """
            {"id": "rej", "sender": "LOA", "templates": ["t.txt"], "segments": ["s.csv"],
             "start": "2026-01-01T00:00:00+07:00", "deadline": "2099-01-01T00:00:00+07:00"}
            """)
        let strict = try loa.cli(["check", work.file("rej/c.json")])
        #expect(strict.status == 1 && strict.output.contains("s.csv:3: row: fixed-line"), "\(strict.output)")
        let lenient = try loa.cli(["check", "--allow-rejects", work.file("rej/c.json")])
        #expect(lenient.status == 0 && lenient.output.contains("s.csv:3: row: fixed-line"), "\(lenient.output)")
    }

    /// A receipt secret or API token of the right length but wrong (in its last byte, or in every byte) is
    /// refused like a short one, and changes nothing: the queued message a forged final receipt would settle
    /// stays queued, the number a forged opt-out would suppress stays queued. The right secret, sent last,
    /// does settle it, so the refusals are for the secret and nothing else.
    @Test(.timeLimit(.minutes(2))) func wrongSecretsOfTheRightLengthAreRefused() async throws {
        let work = WorkDir("same-length")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p")
        // Starts in 2098: its one message stays queued, where a final receipt (or an opt-out) would still move it.
        work.write("c/t.txt", "Hi")
        work.write("c/s.csv", "phone\n0912345678\n")
        work.write("c/c.json", """
            {"id": "quiet", "sender": "LOA", "templates": ["t.txt"], "segments": ["s.csv"],
             "start": "2098-01-01T00:00:00+07:00", "deadline": "2099-01-01T00:00:00+07:00"}
            """)
        try await loa.start()
        defer { _ = loa.stop() }
        try #require(try loa.cli(["campaign", "submit", work.file("c/c.json")]).status == 0)
        let page = try await loa.api("/api/v1/campaigns/quiet/messages")
        let rows = (try JSONSerialization.jsonObject(with: Data(page.body)) as? [String: Any])?["rows"] as? [[Any]] ?? []
        let id = try #require(rows.first?.first as? Int, "\(page.bodyText)")

        func sameLength(_ s: String) -> [String] {
            [String(s.dropLast()) + (s.last == "x" ? "y" : "x"), String(repeating: "x", count: s.count)]
        }
        let e = loa.engine
        for k in sameLength(loa.receiptSecret) {
            #expect(k.count == loa.receiptSecret.count && k != loa.receiptSecret)
            #expect(try await e.perform(HTTPRequest(url: loa.base + "/dlr/kannel?k=\(k)&st=2&id=\(id)")).status == 401, "receipt with k=\(k)")
            #expect(try await e.perform(HTTPRequest(url: loa.base + "/mo/kannel?k=\(k)&from=0912345678&text=TC")).status == 401, "reply with k=\(k)")
        }
        for t in sameLength(loa.token) {
            #expect(try await loa.api("/api/v1/campaigns", token: t).status == 401, "API with token \(t)")
            #expect(try await loa.api("/metrics", token: t).status == 401, "metrics with token \(t)")
        }
        #expect(try await loa.campaign("quiet")["states"] as? [String: Int] == ["queued": 1])
        #expect(try await loa.api("/api/v1/optouts").bodyText == #"{"count":0}"#)

        let real = try await e.perform(HTTPRequest(url: loa.base + "/dlr/kannel?k=\(loa.receiptSecret)&st=2&id=\(id)"))
        #expect(real.status == 200, "\(real.bodyText)")
        #expect(try await loa.campaign("quiet")["states"] as? [String: Int] == ["failed": 1])
    }

    /// A second daemon on the same data directory exits at once with an error naming the first one's pid,
    /// and the first keeps working.
    @Test(.timeLimit(.minutes(2))) func aSecondDaemonOnTheSameDataDirIsRefused() async throws {
        let work = WorkDir("twice")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p")
        try await loa.start()
        defer { _ = loa.stop() }
        let second = try run(Env.loaBinary, ["daemon", "--config", loa.configPath], env: loa.env, timeout: 60)
        #expect(second.status == 1, "\(second.output)")
        let pid = try #require(loa.child?.pid)
        #expect(second.output.contains("in use by another loa process (pid \(pid))"), "\(second.output)")
        #expect(try await loa.api("/healthz").status == 200)
    }

    /// A start that fails halfway (the receipt listener's port is taken, after the store, the curl engine and
    /// the API server started) is logged with what failed, stops what started, in reverse, each in time, and
    /// exits 1 without announcing itself ready.
    @Test(.timeLimit(.minutes(2))) func aFailedStartStopsWhatStarted() async throws {
        let holder = try LoaDaemonProcess(work: WorkDir("port-holder"), carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p")
        try await holder.start()
        defer { _ = holder.stop() }
        let work = WorkDir("failed-start")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p",
                                       extraConfig: #""receipts_listen": { "address": "127.0.0.1", "port": \#(holder.port) },"#)
        let r = try run(Env.loaBinary, ["daemon", "--config", loa.configPath], env: loa.env, timeout: 60)
        #expect(r.status == 1, "\(r.output)")
        #expect(r.output.contains("cannot listen") && r.output.contains("receipts_listen.port=\(holder.port)"), "\(r.output)")
        #expect(!r.output.contains("loa ready") && !r.output.contains("did not stop"), "\(r.output)")
    }

    /// SIGHUP makes the daemon reopen the delivery log (logrotate moves the old one away first).
    @Test(.timeLimit(.minutes(2))) func sighupReopensTheDeliveryLog() async throws {
        let work = WorkDir("hup")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p")
        try await loa.start()
        defer { _ = loa.stop() }
        func submit(_ id: String) throws {
            work.write("\(id)/t.txt", "Hi {{name}}")
            work.write("\(id)/s.csv", "phone,name\n02838221234,Fixed line\n")
            work.write("\(id)/c.json", """
                {"id": "\(id)", "sender": "LOA", "templates": ["t.txt"], "segments": ["s.csv"],
                 "start": "2026-01-01T00:00:00+07:00", "deadline": "2099-01-01T00:00:00+07:00"}
                """)
            let r = try loa.cli(["campaign", "submit", work.file("\(id)/c.json")])
            #expect(r.status == 0, "\(r.output)")
        }
        try submit("before")
        let log = work.file("data/delivery.log")
        try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
        loa.child?.signal(SIGHUP)
        // The reopen happens at the next append; make one.
        try submit("after")
        try await poll(10, "the new delivery.log") { FileManager.default.fileExists(atPath: log) }
        let old = try String(contentsOfFile: log + ".1", encoding: .utf8)
        let new = try String(contentsOfFile: log, encoding: .utf8)
        #expect(old.contains("\"campaign\":\"before\"") && !old.contains("\"campaign\":\"after\""))
        #expect(new.contains("\"campaign\":\"after\"") && new.contains("\"event\":\"rejected\""))
        let mode = try FileManager.default.attributesOfItem(atPath: log)[.posixPermissions] as! Int
        #expect(mode & 0o077 == 0)

        // loa tail reads the current file: readable lines, or the JSON lines of one campaign.
        let readable = try loa.cli(["tail"])
        #expect(readable.status == 0 && readable.output.contains("after  #") && readable.output.contains("rejected→rejected"), "\(readable.output)")
        let json = try loa.cli(["tail", "--json", "--campaign", "before"])
        #expect(json.status == 0 && json.output.isEmpty, "the rotated-away campaign is not in the current file")
        let one = try loa.cli(["tail", "--json", "--campaign", "after", "-n", "1"])
        let lines = one.output.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("{\"v\":1,"))
    }
}

/// xorshift64*, seeded: the crash moments are reproducible from the printed seed.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
}
