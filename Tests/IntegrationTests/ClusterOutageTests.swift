import Foundation
import LoaCarriers
import LoaCore
import Testing

/// The database as a dependency that fails, seen from a real daemon on a real PostgreSQL (issue 21, items 3 and 6):
/// a claim whose COMMIT acknowledgement is lost is released once the store answers again and sent once, and
/// `/readyz` says 503 while the node does not hold its lease.
@Suite(.ownThreads, .serialized, .enabled(if: postgresWanted)) struct ClusterOutageTests {
    /// The claim's COMMIT reaches the server but its answer never reaches the daemon (the test hook
    /// `LOA_TEST_CLAIM_ACK_LOST`, as when the server dies between the two): its rows say `sending` under this node,
    /// and the dispatcher never had them. Without the release they stay so until the node restarts (then `unknown`),
    /// and the campaign never completes.
    @Test(.timeLimit(.minutes(5))) func aClaimWhoseCommitWasNotAcknowledgedIsReleasedAndSentOnce() async throws {
        let work = WorkDir("outage-acklost")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "21", "--delivered-rate", "1", "--latency-ms", "50",
                                                           "--receipt-retries", "80", "--receipt-retry-ms", "250"])
        try await sim.start()
        defer { sim.stop() }
        let cluster = try TestCluster("acklost", count: 1, leaseSeconds: 8, carriers: "[\(SimCarriers.kannel("a", sim, rate: 200, inFlight: 8))]",
                                      defaultCarrier: "a")
        defer { cluster.stop() }
        // The third claim that takes messages commits, then reports the connection lost.
        cluster.nodes[0].extraEnv["LOA_TEST_CLAIM_ACK_LOST"] = "3"
        try await cluster.start()
        let n = 600
        _ = SimCampaign.write(cluster.nodes[0].work, id: "it-acklost", n: n)
        let r = try cluster.nodes[0].cli(["campaign", "submit", cluster.nodes[0].work.file("campaign/campaign.json")])
        try #require(r.status == 0, "submit: \(r.output)")
        let states = try await SimCampaign.settle(cluster.nodes[0], sim, id: "it-acklost", n: n, seconds: 60)
        try await expectClusterInvariants(cluster, sim, campaign: "it-acklost", n: n, "ack lost")
        #expect(states["delivered"] == n, "every recipient delivered, none unknown or left sending: \(states)")
        #expect(cluster.daemonLogCount(0, "LOA_TEST_CLAIM_ACK_LOST") >= 1, "the hook did not lose a claim's acknowledgement")
        #expect(cluster.daemonLogCount(0, "store unavailable; dispatch paused") == 1)
        // What was released: the `requeued` lines the release wrote, each message then sent and delivered once.
        let lines = cluster.nodes[0].logEvents()
        let released = Set(lines.filter { ($0["detail"] as? String ?? "").contains("never sent (the daemon did not hold it)") }.compactMap { $0["message"] as? Int })
        #expect(!released.isEmpty, "no claim was released")
        let notice = ClusterTests.countSum(cluster, 0, "claims the store may have committed unacknowledged were released")
        #expect(notice == released.count, "the daemon's log says \(notice) released, the delivery log \(released.count)")
        for id in released {
            let sent = lines.filter { $0["message"] as? Int == id && $0["event"] as? String == "accepted" }.count
            #expect(sent == 1, "message \(id) released and accepted \(sent) times")
        }
        print("outage ack lost: n=\(n); released \(released.count); states \(states)")
    }

    /// A node whose lease renewals stop (the test hook `LOA_TEST_LEASE_PAUSE_FILE`, as if its lease thread were
    /// stalled or cut off from the database, while the rest of the daemon answers) says 503 on `/readyz` with the
    /// reason, and 200 again once it holds a new lease.
    @Test(.timeLimit(.minutes(3))) func readyzIsNotReadyWithoutTheLeaseAndReadyWhenItHoldsOneAgain() async throws {
        let work = WorkDir("outage-readyz")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "22"])
        try await sim.start()
        defer { sim.stop() }
        let cluster = try TestCluster("readyz", count: 1, leaseSeconds: 2, carriers: "[\(SimCarriers.kannel("a", sim))]", defaultCarrier: "a")
        defer { cluster.stop() }
        let node = cluster.nodes[0]
        let pause = node.work.file("lease-paused")
        node.extraEnv["LOA_TEST_LEASE_PAUSE_FILE"] = pause
        try await cluster.start()
        try await poll(20, every: 0.1, "/readyz to say ready") { try await node.api("/readyz").status == 200 }
        let before = try await cluster.lease(0)
        #expect(before.holds)
        try #require(FileManager.default.createFile(atPath: pause, contents: Data()))
        var body = ""
        try await poll(20, every: 0.1, "/readyz to say 503 once the lease ended") {
            let r = try await node.api("/readyz")
            body = r.bodyText
            return r.status == 503
        }
        #expect(body.contains("not-ready") && body.contains("node n1 does not hold its cluster lease"), "503 without the reason: \(body)")
        #expect(try await cluster.lease(0).holds == false)
        try FileManager.default.removeItem(atPath: pause)
        try await poll(20, every: 0.1, "/readyz to say ready again") { try await node.api("/readyz").status == 200 }
        let after = try await cluster.lease(0)
        #expect(after.holds && after.epoch > before.epoch, "not a new lease: \(before) → \(after)")
    }
}
