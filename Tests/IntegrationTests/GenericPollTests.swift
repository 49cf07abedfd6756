import Foundation
import LoaCarriers
import LoaCore
import Testing

/// `Tests/IntegrationTests/generic/fake-status-api.py` started on a free port.
final class FakeStatusAPI: @unchecked Sendable {
    let child: Child
    let port: Int
    let engine: CurlEngine

    init(work: WorkDir, mode: String) async throws {
        let portFile = work.file("fake-\(mode).port")
        child = try Child("/usr/bin/python3", [Env.root + "/Tests/IntegrationTests/generic/fake-status-api.py", "--port-file", portFile,
                                               "--mode", mode, "--exit-after", "300"], log: work.file("fake-\(mode).log"))
        engine = try CurlEngine(maxConnectionsPerHost: 2)
        var found = 0
        try await poll(20, "the fake status API to listen") { [child] in
            guard child.isRunning else { throw HarnessError(message: "fake exited:\n\(child.output)") }
            found = Int((try? String(contentsOfFile: portFile, encoding: .utf8)) ?? "") ?? 0
            return found > 0
        }
        port = found
    }

    var base: String { "http://127.0.0.1:\(port)" }

    func stats() async throws -> [String: Any] {
        let r = try await engine.perform(HTTPRequest(url: base + "/fake/stats", timeout: 5))
        return (try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]) ?? [:]
    }

    deinit {
        child.stop()
        engine.shutdown()
    }
}

/// Receipts the generic adapter could not take before issue 17, end to end with the real `loa` binary: a callback
/// whose provider appends its own query to Loa's, a status API polled for messages still `sent`, and an aggregate
/// per-request callback that triggers a poll.
@Suite(.ownThreads, .serialized) struct GenericPollTests {
    /// Ten numbers; those ending in 9 fail at the fake.
    static let numbers = ["0912000001", "0912000002", "0912000003", "0912000009", "0912000005",
                          "0912000006", "0912000007", "0912000019", "0912000008", "0912000010"]

    static func writeCampaign(_ work: WorkDir, id: String) {
        work.write("campaign/numbers.txt", numbers.joined(separator: "\n") + "\n")
        work.write("campaign/t.txt", "Xin chao\n")
        work.write("campaign/campaign.json", """
            { "id": "\(id)", "sender": "LOA", "templates": ["t.txt"], "segments": [{"file": "numbers.txt", "format": "lines"}],
              "start": "2026-01-01T00:00:00+07:00", "deadline": "2099-01-01T00:00:00+07:00", "windows": ["00:00-23:59:59"] }
            """)
    }

    static func carrier(_ fake: FakeStatusAPI, response: String, receipts: String, poll: String? = nil) -> String {
        """
        [{ "name": "gw", "kind": "generic", "url": "\(fake.base)/send", "receipt_secret": {"env": "LOA_RECEIPT_SECRET"},
           "rate": 200, "rate_unit": "messages", "max_in_flight": 4, "timeout_seconds": 5,
           "body": {"format": "json", "template": {"callback": "{{receipt_url}}", "text": "{{text}}", "phones": []}},
           "batch": {"max": 5, "list_pointer": "/phones", "item": "{{to.national}}", "same_text": true},
           "response": \(response),
           "receipts": \(receipts)\(poll.map { ", \"poll\": " + $0 } ?? "") }]
        """
    }

    /// Per-recipient ids matched by the number the fake writes nationally (`match: to`, no `"<id>:<number>"`).
    static let perRecipient = """
        {"rules": [{"status": "200", "pointer": "/code", "equals": "100", "class": "accepted"}],
         "results": {"pointer": "/results", "match": "to", "to_pointer": "/phone", "id_pointer": "/msg_id"}}
        """
    static let queryReceipts = """
        {"format": "query", "key": "gateway", "id": "msg_id", "status": "stat",
         "statuses": {"DELIVRD": "delivered", "UNDELIV": "undelivered", "ENROUTE": "buffered"}}
        """

    func run(_ mode: String, carriers: (FakeStatusAPI) -> String) async throws -> (LoaDaemonProcess, FakeStatusAPI, [String: Int], WorkDir) {
        let work = WorkDir("generic-\(mode)")
        let fake = try await FakeStatusAPI(work: work, mode: mode)
        let loa = try LoaDaemonProcess(work: work, carriers: carriers(fake), defaultCarrier: "gw")
        Self.writeCampaign(work, id: "g-\(mode)")
        try await loa.start()
        let submit = try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")])
        try #require(submit.status == 0, "submit: \(submit.output)")
        let states = try await SimCampaign.settle(loa, nil, id: "g-\(mode)", n: Self.numbers.count, seconds: 60)
        return (loa, fake, states, work)
    }

    @Test(.timeLimit(.minutes(2))) func aProviderAppendingItsQueryToTheCallbackURLIsRead() async throws {
        let (loa, fake, states, _) = try await run("appended") { Self.carrier($0, response: Self.perRecipient, receipts: Self.queryReceipts) }
        defer { _ = loa.stop() }
        #expect(states == ["delivered": 8, "failed": 2], "\(states)")
        let answers = try await fake.stats()["callback_answers"] as? [Any] ?? []
        #expect(answers.count == 10 && answers.allSatisfy { "\($0)" == "200" }, "\(answers)")
        // The secret is still checked: the same appended form with a wrong secret is refused, and so is a secret
        // that only starts like the real one.
        let gid = try #require(loa.logEvents().first { $0["event"] as? String == "accepted" }?["gateway_id"] as? String)
        for k in ["wrong-secret", loa.receiptSecret + "x", String(loa.receiptSecret.dropLast())] {
            let r = try await loa.engine.perform(HTTPRequest(url: "\(loa.base)/dlr/gw?k=\(k)?msg_id=\(gid)&stat=DELIVRD", timeout: 5))
            #expect(r.status == 401, "k=\(k): \(r.status)")
        }
    }

    @Test(.timeLimit(.minutes(2))) func aStatusAPIIsPolledForMessagesStillSentWithinItsBounds() async throws {
        let poll = """
            {"url": "FAKE/status?ids={{gateway_ids}}", "max_ids": 2, "interval_seconds": 1, "after_seconds": 0, "max_requests": 3,
             "answer": {"items_pointer": "/items", "id": "/msg_id", "status": "/stat",
                        "statuses": {"DELIVRD": "delivered", "UNDELIV": "undelivered", "ENROUTE": "buffered"}}}
            """
        let (loa, fake, states, _) = try await run("poll") {
            Self.carrier($0, response: Self.perRecipient, receipts: Self.queryReceipts, poll: poll.replacingOccurrences(of: "FAKE", with: $0.base))
        }
        defer { _ = loa.stop() }
        #expect(states == ["delivered": 8, "failed": 2], "\(states)")
        let s = try await fake.stats()
        // Every id asked about at least twice (ENROUTE, then final), never more than max_ids in one request.
        let perRequest = s["ids_per_request"] as? [Int] ?? []
        #expect((s["max_ids"] as? Int ?? 99) <= 2 && perRequest.reduce(0, +) >= 20, "\(perRequest)")
        // At most max_requests (3) per interval (1 s): over the whole run, no more than 3 per started second.
        let times = s["status_times"] as? [Double] ?? []
        let span = (times.max() ?? 0) - (times.min() ?? 0)
        #expect(times.count <= 3 * (Int(span) + 2), "\(times.count) requests in \(span) s")
        let events = loa.logEvents().filter { $0["event"] as? String == "receipt" }
        // The intermediate ENROUTE is an event too, and each receipt names its source.
        #expect(events.filter { ($0["detail"] as? String ?? "").hasPrefix("buffered: poll: ENROUTE") }.count == 10, "\(events.prefix(3))")
        #expect(events.filter { ($0["detail"] as? String ?? "").hasPrefix("delivered: poll: DELIVRD") }.count == 8)
    }

    @Test(.timeLimit(.minutes(2))) func anAggregateCallbackIsLoggedPerRequestAndTriggersAPoll() async throws {
        let response = """
            {"rules": [{"status": "200", "pointer": "/code", "equals": "100", "class": "accepted"}], "message_id": "/request_id"}
            """
        let receipts = """
            {"format": "json", "key": "gateway", "id": ["/SMSID", "/phonenumber"], "status": "/SendStatus", "statuses": {"5": "delivered"},
             "aggregate": {"when": "/SendSuccess", "request_id": "/SMSID", "counts": ["/SendSuccess", "/SendFailed"]}}
            """
        // No regular poll in this test's time (after_seconds 3600): only the callbacks make Loa ask.
        let poll = """
            {"by": "request", "url": "FAKE/request-status?request={{request_id}}", "interval_seconds": 1, "after_seconds": 3600,
             "max_age_seconds": 7200,
             "answer": {"items_pointer": "/items", "id": ["/request_id", "/Phone"], "status": "/SendStatus", "statuses": {"5": "delivered", "4": "undelivered"}}}
            """
        let (loa, fake, states, _) = try await run("aggregate") {
            Self.carrier($0, response: response, receipts: receipts, poll: poll.replacingOccurrences(of: "FAKE", with: $0.base))
        }
        defer { _ = loa.stop() }
        #expect(states == ["delivered": 8, "failed": 2], "\(states)")
        let s = try await fake.stats()
        let answers = s["callback_answers"] as? [Any] ?? []
        #expect(answers.count == (s["sends"] as? Int ?? -1) && answers.allSatisfy { "\($0)" == "200" }, "\(answers)")
        let lines = loa.logEvents().filter { $0["event"] as? String == "request-receipt" }
        #expect(lines.count == s["sends"] as? Int, "\(lines)")
        for l in lines {
            #expect(l["campaign"] as? String == "g-aggregate" && l["message"] as? Int == 0 && (l["gateway_id"] as? String ?? "").hasPrefix("R"))
            #expect((l["detail"] as? String ?? "").range(of: #"^SendSuccess=\d+ SendFailed=\d+; \d+ messages, \d+ sent$"#, options: .regularExpression) != nil, "\(l)")
        }
    }
}
