import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import Synchronization
import Testing

/// A gateway that accepts everything and never sends a receipt.
final class SilentGateway: HTTPService {
    let accepted = Atomic<Int>(0)
    func route(_ head: RequestHead) -> Route {
        accepted.add(1, ordering: .relaxed)
        return .respond(.text(202, "0: Accepted for delivery"))
    }
}

/// Opt-out replies, overdue receipts, metrics, readiness, masking and the operator's CLI views.
@Suite(.ownThreads, .serialized) struct OperatorTests {
    @Test(.timeLimit(.minutes(2))) func optOutReplySuppressesQueuedMessagesEverywhere() async throws {
        let work = WorkDir("mo")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p")
        try await loa.start()
        defer { _ = loa.stop() }
        for id in ["a", "b"] {
            // Starts in 2099: everything stays queued.
            work.write("\(id)/s.csv", "phone\n0912345678\n0912345679\n")
            work.write("\(id)/t.txt", "Hi")
            work.write("\(id)/c.json", """
                {"id": "\(id)", "sender": "LOA", "templates": ["t.txt"], "segments": ["s.csv"],
                 "start": "2099-01-01T00:00:00+07:00", "deadline": "2099-02-01T00:00:00+07:00"}
                """)
            try #require(try loa.cli(["campaign", "submit", work.file("\(id)/c.json")]).status == 0)
        }
        let e = loa.engine
        let secret = loa.receiptSecret
        #expect(try await e.perform(HTTPRequest(url: loa.base + "/mo/kannel?k=wrong&from=0912345678&text=TC")).status == 401)
        #expect(try await e.perform(HTTPRequest(url: loa.base + "/mo/kannel?k=\(secret)&from=0912345679&text=\(URLQuery.escape("Cảm ơn"))")).status == 200)
        let r = try await e.perform(HTTPRequest(url: loa.base + "/mo/kannel?k=\(secret)&from=84912345678&text=\(URLQuery.escape("  huỷ nhận tin"))"))
        #expect(r.status == 200)
        for id in ["a", "b"] {
            let states = try await loa.campaign(id)["states"] as? [String: Int] ?? [:]
            #expect(states == ["queued": 1, "suppressed": 1], "\(id): \(states)")
        }
        let tail = try loa.cli(["tail", "--status", "suppressed"])
        #expect(tail.output.split(separator: "\n").count == 2 && tail.output.contains("opt-out reply"), "\(tail.output)")
        #expect(try await loa.api("/api/v1/optouts").bodyText.contains("\"count\":1"))
        // Metrics need the token; readiness does not.
        #expect(try await e.perform(HTTPRequest(url: loa.base + "/metrics")).status == 401)
        let m = try await loa.api("/metrics")
        #expect(m.status == 200 && m.bodyText.contains("loa_messages{campaign=\"a\",carrier=\"kannel\",state=\"suppressed\"} 1"), "\(m.bodyText)")
        #expect(m.bodyText.contains("loa_queue_depth{carrier=\"kannel\"} 2"))
        #expect(try await e.perform(HTTPRequest(url: loa.base + "/readyz")).status == 200)
        let carriers = try loa.cli(["carriers"])
        #expect(carriers.status == 0 && carriers.output.contains("kannel") && carriers.output.contains("500/s"), "\(carriers.output)")
    }

    @Test(.timeLimit(.minutes(2))) func overdueReceiptsBecomeUnknownAndTheLogIsMasked() async throws {
        let gateway = SilentGateway()
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: gateway)
        defer { server.stop() }
        let work = WorkDir("overdue")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:\(server.port)/cgi-bin/sendsms", username: "u", password: "p",
                                       extraConfig: #""receipt_timeout_hours": 0.0005, "mask_numbers_in_log": true"#)
        try await loa.start()
        defer { _ = loa.stop() }
        SchedulingPathTests.campaign(work, id: "silent", n: 20, extra: #", "windows": ["00:00-24:00"]"#)
        try #require(try loa.cli(["campaign", "submit", work.file("silent/c.json")]).status == 0)
        try await poll(30, every: 0.2, "sent messages to time out") {
            (try await loa.campaign("silent")["states"] as? [String: Int])?["unknown"] == 20
        }
        #expect(gateway.accepted.load(ordering: .relaxed) == 20)
        let events = loa.logEvents()
        #expect(events.filter { $0["event"] as? String == "unknown" && $0["detail"] as? String == "no final receipt in time" }.count == 20)
        let recipients = Set(events.compactMap { $0["recipient"] as? String })
        #expect(!recipients.isEmpty && recipients.allSatisfy { $0.contains("****") }, "\(recipients.prefix(3))")
    }
}

/// A gateway that is down for its first seconds, then answers 429 storms with Retry-After, then accepts;
/// it counts what it accepted per message id.
final class FlakyGateway: HTTPService {
    let firstRequest = Mutex<Date?>(nil)
    let accepted = Mutex<[String: Int]>([:])
    let requests = Atomic<Int>(0)

    func route(_ head: RequestHead) -> Route {
        let n = requests.add(1, ordering: .relaxed).newValue
        let since = firstRequest.withLock { first -> Double in
            if first == nil { first = Date() }
            return Date().timeIntervalSince(first!)
        }
        if since < 2 { return .respond(.text(500, "down")) }
        if since < 9 && n % 3 == 0 {
            return .respond(ServerResponse(status: 429, headers: [.init("Retry-After", "1")], body: Array("slow down".utf8)))
        }
        // The message id travels in the dlr-url (…&id=N).
        let id = head.query["dlr-url"].flatMap { $0.split(separator: "=").last.map(String.init) } ?? "?"
        accepted.withLock { $0[id, default: 0] += 1 }
        return .respond(.text(202, "0: Accepted for delivery"))
    }
}

@Suite(.ownThreads, .serialized) struct GatewayFaultTests {
    /// Outage then throttling: the breaker opens, messages wait instead of failing, Retry-After is honoured,
    /// and every message is accepted exactly once in the end.
    @Test(.timeLimit(.minutes(2))) func outageAndThrottlingEndWithEveryMessageAcceptedOnce() async throws {
        let gateway = FlakyGateway()
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: gateway)
        defer { server.stop() }
        let work = WorkDir("faults")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:\(server.port)/cgi-bin/sendsms", username: "u", password: "p",
                                       rate: 300, maxInFlight: 8)
        try await loa.start()
        defer { _ = loa.stop() }
        SchedulingPathTests.campaign(work, id: "flaky", n: 600, extra: #", "windows": ["00:00-24:00"]"#)
        try #require(try loa.cli(["campaign", "submit", work.file("flaky/c.json")]).status == 0)
        var sawOpen = false
        try await poll(90, every: 0.1, "every message accepted") {
            let carriers = try await loa.api("/api/v1/carriers").bodyText
            if carriers.contains("\"breaker\":\"open\"") { sawOpen = true }
            let c = try await loa.campaign("flaky")
            return c["state"] as? String == "completed"
        }
        let states = try await loa.campaign("flaky")["states"] as? [String: Int] ?? [:]
        let accepted = gateway.accepted.withLock { $0 }
        // The API may be polled between the opening and the first probe; the diagnostics always say it.
        let diagnostics = (try? String(contentsOfFile: work.file("daemon.log"), encoding: .utf8)) ?? ""
        #expect(sawOpen || diagnostics.contains("carrier breaker opened"), "the breaker opened during the outage")
        #expect(diagnostics.contains("carrier breaker opened") && diagnostics.contains("carrier breaker closed"), "\(diagnostics.suffix(2000))")
        #expect(accepted.count == 600 && accepted.values.allSatisfy { $0 == 1 }, "accepted \(accepted.count), twice: \(accepted.filter { $0.value > 1 }.count)")
        #expect(states["sent"] == 600, "\(states)")
        // Throttled answers go back to the queue without spending an attempt (`requeued`, not `retry`).
        let requeued = loa.logEvents().filter { $0["event"] as? String == "requeued" }
        #expect(requeued.contains { ($0["detail"] as? String)?.contains("HTTP 429") == true })
    }
}
