import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import Synchronization
import Testing

/// Limits as providers state them, through the real `loa` binary: a request limit held with full batches,
/// throttling that spends no attempt, identical permanent answers that pause a carrier until the operator
/// resumes it, a refusal of the credentials shown as such, and a minimum batch's remainder.
@Suite(.ownThreads, .serialized) struct LimitsPathTests {
    /// The shipped generic sample pointed at `sim`, with `rate`, `requests_per_second` and batch keys changed.
    static func generic(_ name: String, _ sim: GatewaySimProcess, rate: Double = 1000, requestsPerSecond: Double?, batchExtra: String = "") throws -> String {
        var text = try SimCarriers.generic(name, sim)
        text = text.replacingOccurrences(of: "\"rate\": 500,", with: "\"rate\": \(rate),"
            + (requestsPerSecond.map { " \"requests_per_second\": \($0)," } ?? ""))
        if !batchExtra.isEmpty { text = text.replacingOccurrences(of: "\"same_text\": false,", with: "\"same_text\": false, \(batchExtra),") }
        return text
    }

    /// Times of the `accepted` events in the delivery log, ms since the epoch, sorted.
    static func acceptedTimes(_ loa: LoaDaemonProcess) -> [UnixMillis] {
        loa.logEvents().filter { $0["event"] as? String == "accepted" }.compactMap { ($0["time"] as? String).flatMap(ISOTime.parse) }.sorted()
    }

    /// 2 requests a second, batches of up to 100: the request rate holds (the gateway throttles nothing) and every
    /// batch is full, so recipients go at what the limit allows, 200 a second (within 10%).
    @Test(.timeLimit(.minutes(3))) func aRequestLimitIsHeldWithFullBatches() async throws {
        let work = WorkDir("limits-requests")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "3", "--max-rate", "2", "--limit-header", "x-rate-limit-reset", "--no-receipts"],
                                        env: ["LOA_SIM_TOKEN": "sim-password"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(try Self.generic("gw", sim, requestsPerSecond: 2))]", defaultCarrier: "gw")
        let n = 1200
        _ = SimCampaign.write(work, id: "it-req", n: n)
        try await loa.start()
        defer { _ = loa.stop() }
        try #require(try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")]).status == 0)
        try await poll(60, every: 0.2, "every recipient accepted") {
            (try await SimCampaign.states(loa, "it-req"))["sent"] == n
        }
        let stats = try await sim.stats()
        let requests = stats["requests"] as? Int ?? 0
        #expect(stats["throttled"] as? Int == 0, "the request limit was held: \(stats)")
        #expect(requests == n / 100, "full batches of 100: \(requests) requests for \(n)")
        let times = Self.acceptedTimes(loa)
        try #require(times.count == n)
        // The first batch goes at once; the other n - 100 follow at 2 requests of 100 a second.
        let seconds = Double(times.last! - times.first!) / 1000
        let perSecond = Double(n - 100) / seconds
        print("request limit 2/s, batch.max 100: \(n) recipients in \(requests) requests, \(String(format: "%.1f", perSecond)) recipients/s (limit allows 200)")
        #expect(abs(perSecond - 200) <= 20, "recipients/s \(perSecond), the limit allows 200")
    }

    /// A request-limited gateway and no stated `requests_per_second`: throttling lowers the request rate, not the
    /// batch size (the issue saw Infobip batches fall to 1 recipient).
    @Test(.timeLimit(.minutes(3))) func throttlingLowersTheRequestRateNotTheBatchSize() async throws {
        let work = WorkDir("limits-adaptive")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "3", "--max-rate", "2", "--limit-header", "ratelimit", "--no-receipts"],
                                        env: ["LOA_SIM_TOKEN": "sim-password"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(try Self.generic("gw", sim, requestsPerSecond: nil))]", defaultCarrier: "gw")
        let n = 2000
        _ = SimCampaign.write(work, id: "it-adapt", n: n)
        try await loa.start()
        defer { _ = loa.stop() }
        try #require(try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")]).status == 0)
        try await poll(90, every: 0.2, "every recipient accepted") {
            (try await SimCampaign.states(loa, "it-adapt"))["sent"] == n
        }
        let stats = try await sim.stats()
        let accepted = stats["accepted"] as? Int ?? 0
        let requests = stats["requests"] as? Int ?? 1
        let throttled = stats["throttled"] as? Int ?? 0
        let meanBatch = Double(accepted) / Double(max(1, requests - throttled))
        print("no stated request limit against 2 req/s: mean accepted batch \(meanBatch), \(throttled) throttled of \(requests) requests")
        #expect(throttled > 0, "the gateway had to say it: \(stats)")
        #expect(meanBatch >= 90, "batches stay full: \(meanBatch)")
        // And the pace holds near what the limit allows (halving the message rate instead fell to a fraction).
        let times = Self.acceptedTimes(loa)
        let perSecond = Double(n - 100) / (Double(times.last! - times.first!) / 1000)
        print("  \(String(format: "%.1f", perSecond)) recipients/s (the limit allows 200)")
        #expect(perSecond >= 160, "recipients/s \(perSecond), the limit allows 200")
        // Every throttled message went back to the queue without spending its attempt.
        let events = loa.logEvents()
        #expect(events.filter { $0["event"] as? String == "accepted" }.allSatisfy { $0["attempt"] as? Int == 1 })
    }

    /// Throttled answers spend no attempt: with `max_attempts` 1 a message throttled again and again is still sent
    /// (before, each 429 kept the claim's attempt and the message gave up at its first temporary error).
    @Test(.timeLimit(.minutes(3))) func throttlingNeverSpendsAnAttempt() async throws {
        let work = WorkDir("limits-throttle")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "5", "--throttle-rate", "0.5", "--error-rate", "0.1", "--delivered-rate", "1"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(SimCarriers.kannel("gw", sim, rate: 2000, inFlight: 50))]", defaultCarrier: "gw",
                                       retry: #"{ "max_attempts": 2, "base_seconds": 0.05, "max_seconds": 0.2 }"#)
        let n = 200
        _ = SimCampaign.write(work, id: "it-thr", n: n)
        try await loa.start()
        defer { _ = loa.stop() }
        try #require(try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")]).status == 0)
        let states = try await SimCampaign.settle(loa, sim, id: "it-thr", n: n, seconds: 150)
        let events = loa.logEvents()
        let throttled = events.filter { $0["event"] as? String == "requeued" && ($0["detail"] as? String ?? "").hasPrefix("throttled: HTTP 429") }
        let retries = events.filter { $0["event"] as? String == "retry" }
        #expect(throttled.count > n / 2, "many answers throttled: \(throttled.count)")
        // A message's attempt counts its temporary failures only: accepted at attempt 1 + its retries.
        var retriesOf: [Int: Int] = [:]
        for r in retries { retriesOf[r["message"] as? Int ?? 0, default: 0] += 1 }
        for a in events where a["event"] as? String == "accepted" {
            let id = a["message"] as? Int ?? 0
            #expect(a["attempt"] as? Int == 1 + (retriesOf[id] ?? 0), "message \(id): attempt \(a["attempt"] ?? "?") after \(retriesOf[id] ?? 0) retries")
        }
        // Only a second temporary error fails a message (10% each): throttling never brings that closer.
        let failed = events.filter { $0["event"] as? String == "failed" }
        #expect(failed.allSatisfy { ($0["detail"] as? String ?? "").contains("gave up after 2 attempts") && !($0["detail"] as? String ?? "").contains("429") })
        #expect((states["delivered"] ?? 0) + (states["failed"] ?? 0) == n && (states["failed"] ?? 0) <= n / 10, "\(states)")
    }

    /// Jasmin answering "No route found" to every message: after `pause_after_identical_failures` the carrier
    /// pauses with an alarm, the rest wait (queued, not failed), the operator sees why and resumes it.
    @Test(.timeLimit(.minutes(3))) func identicalPermanentAnswersPauseTheCarrierUntilResumed() async throws {
        let gateway = RoutingMistakeGateway()
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: gateway)
        defer { server.stop() }
        let work = WorkDir("limits-identical")
        let loa = try LoaDaemonProcess(work: work, carriers: """
            [{"name": "jas", "kind": "jasmin", "url": "http://127.0.0.1:\(server.port)/send", "username": "u",
              "password": {"env": "LOA_KANNEL_PASSWORD"}, "receipt_secret": {"env": "LOA_RECEIPT_SECRET"},
              "rate": 200, "max_in_flight": 8, "pause_after_identical_failures": 10}]
            """, defaultCarrier: "jas")
        let n = 300
        _ = SimCampaign.write(work, id: "it-route", n: n)
        try await loa.start()
        defer { _ = loa.stop() }
        try #require(try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")]).status == 0)
        try await poll(30, every: 0.1, "the carrier to pause") {
            let list = (try JSONSerialization.jsonObject(with: Data(try await loa.api("/api/v1/carriers").body)) as? [[String: Any]]) ?? []
            return list.first?["paused_reason"] != nil
        }
        // What was in flight when it paused comes back and waits too: the count settles at the threshold.
        try await poll(10, every: 0.1, "in-flight answers to settle") {
            let s = try await SimCampaign.states(loa, "it-route")
            return (s["sending"] ?? 0) == 0
        }
        let states = try await SimCampaign.states(loa, "it-route")
        #expect(states["failed"] == 10 && states["queued"] == n - 10, "\(states)")
        let carriers = try loa.cli(["carriers"])
        #expect(carriers.output.contains("PAUSED after 10 identical permanent answers in a row: HTTP 412"), "\(carriers.output)")
        let show = try loa.cli(["campaign", "show", "it-route"])
        #expect(show.output.contains("STALLED   carrier-paused on carrier jas") && show.output.contains("loa carriers resume jas")
                && !show.output.contains("on time"), "\(show.output)")
        let metrics = try await loa.api("/metrics").bodyText
        #expect(metrics.contains("loa_carrier_paused_identical_failures{carrier=\"jas\"} 1"))
        let diagnostics = (try? String(contentsOfFile: work.file("daemon.log"), encoding: .utf8)) ?? ""
        #expect(diagnostics.contains("carrier paused: identical permanent answers in a row") && diagnostics.contains("No route found"))
        // Nothing more reaches the gateway while paused.
        let before = gateway.requests.load(ordering: .relaxed)
        try await Task.sleep(for: .milliseconds(600))
        #expect(gateway.requests.load(ordering: .relaxed) == before, "a paused carrier gets no traffic")
        // The operator fixes the route and resumes: the rest go out.
        gateway.routed.store(true, ordering: .relaxed)
        let resume = try loa.cli(["carriers", "resume", "jas"])
        #expect(resume.status == 0 && resume.output.contains("resumed"), "\(resume.output)")
        #expect(try loa.cli(["carriers", "resume", "jas"]).status != 0, "not paused any more")
        try await poll(60, every: 0.2, "the rest sent") {
            (try await SimCampaign.states(loa, "it-route"))["sent"] == n - 10
        }
        #expect(gateway.accepted.load(ordering: .relaxed) == n - 10)
    }

    /// A wrong password: the gateway refuses Loa's credentials. Nothing fails and no attempt is spent; the breaker
    /// opens naming the cause, and `loa carriers`, `campaign show` and /metrics say so; no parts count as sent.
    @Test(.timeLimit(.minutes(3))) func aRefusalOfTheCredentialsIsShownAsSuch() async throws {
        let work = WorkDir("limits-auth")
        work.write("sim-password", "the-right-one\n")
        let sim = try GatewaySimProcess(work: work, args: ["--username", "u", "--password-file", work.file("sim-password"), "--no-receipts"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, password: "a-wrong-one", carriers: "[\(SimCarriers.kannel("gw", sim, rate: 100, inFlight: 4))]",
                                       defaultCarrier: "gw")
        let n = 50
        _ = SimCampaign.write(work, id: "it-auth", n: n)
        try await loa.start()
        defer { _ = loa.stop() }
        try #require(try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")]).status == 0)
        try await poll(30, every: 0.1, "the refusal to show") {
            let list = (try JSONSerialization.jsonObject(with: Data(try await loa.api("/api/v1/carriers").body)) as? [[String: Any]]) ?? []
            return list.first?["auth_refused"] != nil && list.first?["breaker"] as? String == "open"
        }
        let carriers = try loa.cli(["carriers"])
        #expect(carriers.output.contains("REFUSES LOA'S CREDENTIALS (HTTP 403"), "\(carriers.output)")
        let row = carriers.output.split(separator: "\n").first { $0.hasPrefix("gw ") }.map(String.init) ?? ""
        let list = (try JSONSerialization.jsonObject(with: Data(try await loa.api("/api/v1/carriers").body)) as? [[String: Any]]) ?? []
        #expect(list.first?["segments_sent"] as? Int == 0, "refused requests are no parts sent: \(row)")
        let show = try loa.cli(["campaign", "show", "it-auth"])
        #expect(show.output.contains("STALLED   auth-refused on carrier gw") && show.output.contains("refuses Loa's credentials")
                && !show.output.contains("on time"), "\(show.output)")
        let metrics = try await loa.api("/metrics").bodyText
        #expect(metrics.contains("loa_carrier_auth_refused{carrier=\"gw\"} 1"))
        #expect(metrics.contains("loa_carrier_answers_total{carrier=\"gw\",class=\"unauthorized\"}"))
        #expect(metrics.contains("loa_sms_parts_sent_total{carrier=\"gw\"} 0"))
        let diagnostics = (try? String(contentsOfFile: work.file("daemon.log"), encoding: .utf8)) ?? ""
        #expect(diagnostics.contains("carrier breaker opened: the gateway refuses Loa's credentials") && diagnostics.contains("HTTP 403"), "\(diagnostics)")
        // Nothing failed, no attempt spent: every message waits queued.
        let states = try await SimCampaign.states(loa, "it-auth")
        #expect((states["queued"] ?? 0) + (states["sending"] ?? 0) == n && states["failed"] == nil, "\(states)")
        let requeued = loa.logEvents().filter { $0["event"] as? String == "requeued" }
        #expect(!requeued.isEmpty && requeued.allSatisfy { $0["attempt"] as? Int == 0 && ($0["detail"] as? String ?? "").contains("refuses Loa's credentials") })
    }

    /// `batch.min` 30 with a remainder carrier: 100 go in one request of the batching carrier, the 10 left over
    /// (below the minimum, nothing more to come) move to the remainder carrier; no request carries fewer than 30.
    @Test(.timeLimit(.minutes(3))) func aRemainderBelowTheMinimumBatchMovesOrFails() async throws {
        let work = WorkDir("limits-min")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "3", "--no-receipts"], env: ["LOA_SIM_TOKEN": "sim-password"])
        try await sim.start()
        defer { sim.stop() }
        let generic = try Self.generic("gw", sim, requestsPerSecond: nil, batchExtra: "\"min\": 30, \"remainder_carrier\": \"spare\"")
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(generic), \(SimCarriers.kannel("spare", sim))]", defaultCarrier: "gw")
        let n = 110
        _ = SimCampaign.write(work, id: "it-min", n: n)
        try await loa.start()
        defer { _ = loa.stop() }
        try #require(try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")]).status == 0)
        try await poll(60, every: 0.2, "every recipient sent") {
            (try await SimCampaign.states(loa, "it-min"))["sent"] == n
        }
        let stats = try await sim.stats()
        let byShape = stats["by_shape"] as? [String: Int] ?? [:]
        #expect(byShape["generic"] == 100 && byShape["kannel"] == 10, "\(stats)")
        let moved = loa.logEvents().filter { $0["event"] as? String == "rerouted" }
        #expect(moved.count == 10 && moved.allSatisfy { ($0["detail"] as? String ?? "").contains("fewer than carrier gw's batch.min 30") })

        // Without a remainder carrier the remainder fails with the reason, and nothing below the minimum is sent.
        let work2 = WorkDir("limits-min-fail")
        let generic2 = try Self.generic("gw", sim, requestsPerSecond: nil, batchExtra: "\"min\": 30")
        let loa2 = try LoaDaemonProcess(work: work2, carriers: "[\(generic2)]", defaultCarrier: "gw")
        _ = SimCampaign.write(work2, id: "it-min2", n: n)
        try await loa2.start()
        defer { _ = loa2.stop() }
        try #require(try loa2.cli(["campaign", "submit", work2.file("campaign/campaign.json")]).status == 0)
        try await poll(60, every: 0.2, "the campaign to complete") {
            (try await loa2.campaign("it-min2"))["state"] as? String == "completed"
        }
        let states = try await SimCampaign.states(loa2, "it-min2")
        #expect(states["sent"] == 100 && states["failed"] == 10, "\(states)")
        let failed = loa2.logEvents().filter { $0["event"] as? String == "failed" }
        #expect(failed.allSatisfy { ($0["detail"] as? String ?? "").contains("fewer than carrier gw's batch.min 30, and no batch.remainder_carrier") })
        let stats2 = try await sim.stats()
        #expect((stats2["by_shape"] as? [String: Int])?["generic"] == 200, "only the full batch reached the gateway: \(stats2)")
    }
}

/// A Jasmin `/send` that answers 412 `Error "No route found"` until `routed`, then `Success "<id>"`.
final class RoutingMistakeGateway: HTTPService {
    let routed = Atomic<Bool>(false)
    let requests = Atomic<Int>(0)
    let accepted = Atomic<Int>(0)

    func route(_ head: RequestHead) -> Route {
        let n = requests.add(1, ordering: .relaxed).newValue
        guard routed.load(ordering: .relaxed) else { return .respond(.text(412, "Error \"No route found\"")) }
        accepted.add(1, ordering: .relaxed)
        return .respond(.text(200, "Success \"id-\(n)\""))
    }
}
