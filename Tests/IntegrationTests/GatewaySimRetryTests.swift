import Foundation
import LoaCarriers
import Testing

/// The simulator's receipt retries (issue 21's 100,000-recipient run): a client that is down takes its retries from
/// the queue, not from the workers, so the receipts owed to the clients that answer are not held behind it.
@Suite(.ownThreads, .serialized)
struct GatewaySimRetryTests {
    @Test func aClientThatIsDownDoesNotHoldUpTheOthersReceipts() async throws {
        let sink = try ReceiptSink()
        let deadPort = freePort()
        let dead = try PortHold(port: deadPort)
        defer { dead.release() }
        // One worker, 100 retries 1 s apart: the dead client's first receipt alone kept it for 100 s before. (The
        // retries outlast any pause of this test process, so the counts read below are still the ones in flight.)
        let sim = try await SimProcess(["--username", "u", "--delivered-rate", "1", "--receipt-delay-ms", "0", "--receipt-concurrency", "1",
                                        "--receipt-retries", "100", "--receipt-retry-ms", "1000"], env: ["LOA_SIM_PASSWORD": "p"])
        func send(to: String, dlr: String) async throws {
            let r = try await sim.request("/cgi-bin/sendsms?username=u&password=p&from=LOA&to=\(to)&text=hi&dlr-mask=31&dlr-url=" + URLQuery.escape(dlr))
            #expect(r.status == 202)
        }
        try await send(to: "84911111111", dlr: "http://127.0.0.1:\(deadPort)/dlr/k?st=%d&id=down-1")
        try await poll(5, every: 0.01, "the first retry for the dead client") { (try await sim.stats()["receipt_retries"] as? Int ?? 0) >= 1 }
        let sentAt = Date()
        try await send(to: "84922222222", dlr: sink.url("/dlr/k?st=%d&id=up-1"))
        try await poll(4, every: 0.02, "the live client's two receipts while the dead one is retried") {
            sink.received.filter { $0.query["id"] == "up-1" }.count == 2
        }
        #expect(sink.received.filter { $0.query["id"] == "up-1" }.map { $0.query["st"] } == ["8", "1"])
        let stats = try await sim.stats()
        #expect(stats["receipts_sent"] as? Int == 2 && stats["receipts_pending"] as? Int == 2 && stats["receipts_failed"] as? Int == 0, "\(stats)")
        print("sim retries: the live client's receipts in \(String(format: "%.2f", Date().timeIntervalSince(sentAt))) s beside a dead client")
        #expect(sim.stop() == 0)
    }
}
