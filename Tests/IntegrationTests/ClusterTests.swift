import Foundation
import LoaCarriers
import LoaCore
import Testing

/// Several real daemons on one real PostgreSQL through the gateway simulator (issue 21, items 3 and 6, and its
/// tests): a node stopped past its lease sends nothing it claimed before, PostgreSQL restarted mid-campaign loses
/// nothing and sends nothing twice, and three nodes survive kills and a stop with every recipient in one final state.
@Suite(.ownThreads, .serialized, .enabled(if: postgresWanted)) struct ClusterTests {
    /// Two carriers on the one simulator, `inFlight` requests each: the engine keeps max(8, max_in_flight) connections
    /// to a host, so with 8 each up to 8 requests wait inside libcurl for a connection: claimed, not yet sent.
    static func twoCarriers(_ sim: GatewaySimProcess, rate: Double, inFlight: Int) -> String {
        "[\(SimCarriers.kannel("a", sim, rate: rate, inFlight: inFlight)), \(SimCarriers.kannel("b", sim, rate: rate, inFlight: inFlight))]"
    }

    static func submit(_ cluster: TestCluster, id: String, n: Int) throws {
        _ = SimCampaign.write(cluster.nodes[0].work, id: id, n: n)
        let r = try cluster.nodes[0].cli(["campaign", "submit", cluster.nodes[0].work.file("campaign/campaign.json")])
        try #require(r.status == 0, "submit: \(r.output)")
    }

    /// SIGSTOPs node `i` until a survivor has settled its claims (or, if it had none, well past its lease and
    /// grace), then SIGCONTs it. Returns the messages settled by the takeover, the simulator's counts just before
    /// the SIGCONT, and how long it was stopped.
    static func stopPastLease(_ cluster: TestCluster, _ i: Int, _ sim: GatewaySimProcess, leaseSeconds: Double, minInFlight: Int = 4) async throws
        -> (settled: Set<Int>, accepted: [String: Int], seconds: Double, resumedAt: String) {
        let name = cluster.names[i]
        let observer = i == 0 ? 1 : 0
        // Stopped while it has requests in flight (on a loaded machine a node can be idle for a moment); more than
        // the engine's 8 connections to the simulator: some wait inside libcurl, claimed and not sent.
        try await poll(30, every: 0.01, "\(name) to have \(minInFlight) requests in flight") {
            let r = try await cluster.nodes[i].api("/api/v1/carriers")
            let carriers = (try JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]]) ?? []
            return carriers.reduce(0) { $0 + ($1["in_flight"] as? Int ?? 0) } >= minInFlight
        }
        let stoppedAt = Date()
        cluster.nodes[i].child?.signal(SIGSTOP)
        var deadSince: Date?
        try await poll(30, every: 0.1, "a survivor to settle \(name)'s claims") {
            if !cluster.settledByTakeover(of: name).isEmpty { return true }
            let members = try await cluster.status(observer)["members"] as? [[String: Any]] ?? []
            if deadSince == nil, members.contains(where: { $0["node"] as? String == name && $0["alive"] as? Bool == false }) { deadSince = Date() }
            return deadSince.map { Date().timeIntervalSince($0) > leaseSeconds } ?? false
        }
        // The survivor's lines are appended in one piece, but a read can catch the file mid-append: read until it
        // holds still.
        var previous = -1
        try await poll(10, every: 0.3, "the survivor's log to hold still") {
            let count = cluster.settledByTakeover(of: name).count
            defer { previous = count }
            return count == previous
        }
        // Everything that left before the stop has had its answer by now (it was stopped for over a lease).
        let accepted = try await sim.accepted()
        let settled = cluster.settledByTakeover(of: name)
        let resumedAt = ISOTime.format(SystemTimeSource().now())
        cluster.nodes[i].child?.signal(SIGCONT)
        return (settled, accepted, Date().timeIntervalSince(stoppedAt), resumedAt)
    }

    /// Of `settled` (messages their node claimed before it was let go, settled `unknown` after its lease ended), those the simulator
    /// accepted more often at the end than just before the node was let go: sent after their node's lease ended.
    static func sentAfterSettled(_ settled: Set<Int>, store: [Int: (phone: String, state: String)], before: [String: Int], after: [String: Int]) -> [String] {
        settled.compactMap { id in
            guard let phone = store[id]?.phone else { return nil }
            return (after[phone] ?? 0) != (before[phone] ?? 0) ? phone : nil
        }.sorted()
    }

    /// The count metadata summed over a daemon log's lines that contain `text` (logfmt `count=N`).
    static func countSum(_ cluster: TestCluster, _ i: Int, _ text: String) -> Int {
        let log = (try? String(contentsOfFile: cluster.nodes[i].work.file("daemon.log"), encoding: .utf8)) ?? ""
        return log.split(separator: "\n").filter { $0.contains(text) }.reduce(0) { sum, line in
            guard let r = line.range(of: "count=") else { return sum }
            return sum + (Int(line[r.upperBound...].prefix { $0.isNumber }) ?? 0)
        }
    }

    @Test(.timeLimit(.minutes(5))) func aNodeStoppedPastItsLeaseSendsNothingItClaimedBefore() async throws {
        let work = WorkDir("cluster-stop")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "11", "--delivered-rate", "1", "--latency-ms", "400",
                                                           "--receipt-retries", "80", "--receipt-retry-ms", "250"])
        try await sim.start()
        defer { sim.stop() }
        let lease = 2.0
        // 24 requests in flight per carrier for the cluster: 8 per node once the three share the limit, 16 for n3 over
        // both carriers. (Before the limits were shared, 8 per carrier and node made 8 of n3's requests wait inside
        // libcurl for a connection; with the limit split, a node's requests never outnumber the engine's connections,
        // and the gate's check before the first byte is shown by HTTPEngineTests' fence test instead.)
        let cluster = try TestCluster("stop", count: 3, leaseSeconds: lease, carriers: Self.twoCarriers(sim, rate: 500, inFlight: 24),
                                      defaultCarrier: "a", networks: #"{"viettel": "b"}"#)
        defer { cluster.stop() }
        try await cluster.start()
        let n = 1200
        try Self.submit(cluster, id: "it-stop", n: n)
        let started = Date()
        try await poll(60, every: 0.05, "n3 to be sending") { cluster.acceptedPerNode()["n3"] ?? 0 >= 30 }
        let before = try await cluster.lease(2)
        #expect(before.holds)
        let stop = try await Self.stopPastLease(cluster, 2, sim, leaseSeconds: lease, minInFlight: 12)
        let acceptedAtResume = cluster.acceptedPerNode()["n3"] ?? 0
        // It takes a new epoch and goes on.
        try await poll(30, every: 0.1, "n3 to hold a new lease") {
            let l = try await cluster.lease(2)
            return l.holds && l.epoch > before.epoch
        }
        let states = try await SimCampaign.settle(cluster.nodes[0], sim, id: "it-stop", n: n, seconds: 180)
        let store = try await expectClusterInvariants(cluster, sim, campaign: "it-stop", n: n, "stop")
        let after = try await sim.accepted()
        #expect(!stop.settled.isEmpty, "a survivor settled none of n3's claims")
        let claimedBefore = cluster.settledAfterLeaseEnded(of: "n3", claimedBefore: stop.resumedAt)
        let resent = Self.sentAfterSettled(claimedBefore, store: store, before: stop.accepted, after: after)
        #expect(resent.isEmpty, "n3 sent \(resent.count) messages it had claimed before it was stopped, after a survivor settled them: \(resent.prefix(5))")
        #expect(stop.settled.allSatisfy { store[$0]?.state != "queued" }, "a settled message went back to the queue")
        let perNode = cluster.acceptedPerNode()
        #expect((perNode["n3"] ?? 0) > acceptedAtResume, "n3 sent nothing after it took its new lease: \(perNode)")
        #expect(cluster.daemonLogCount(2, "dispatch paused: this node's cluster lease ended") == 1)
        let fenced = Self.countSum(cluster, 2, "messages not sent: this node's cluster lease had ended")
        print("cluster stop: n=\(n) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s; n3 stopped \(String(format: "%.1f", stop.seconds)) s; "
              + "settled unknown by a survivor \(stop.settled.count), fenced at n3 after SIGCONT \(fenced); states \(states); accepted per node \(perNode)")
    }

    @Test(.timeLimit(.minutes(5))) func postgresRestartedMidCampaignLosesNothingAndSendsNothingTwice() async throws {
        let pg = try OwnPostgres()
        defer { pg.stop() }
        let work = WorkDir("cluster-pgrestart")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "12", "--delivered-rate", "1", "--latency-ms", "150",
                                                           "--receipt-retries", "80", "--receipt-retry-ms", "250"])
        try await sim.start()
        defer { sim.stop() }
        let cluster = try TestCluster("pgrestart", count: 2, leaseSeconds: 8, url: pg.url, passwordFile: pg.passwordFile,
                                      carriers: "[\(SimCarriers.kannel("a", sim, rate: 300, inFlight: 16))]", defaultCarrier: "a")
        defer { cluster.stop() }
        try await cluster.start()
        let n = 2000
        try Self.submit(cluster, id: "it-pgrestart", n: n)
        let started = Date()
        try await poll(60, every: 0.05, "400 messages accepted") { (try await sim.stats()["accepted"] as? Int ?? 0) >= 400 }
        let acceptedAtRestart = try await sim.stats()["accepted"] as? Int ?? 0
        let restartStarted = Date()
        try pg.restart(downSeconds: 1)
        let restartSeconds = Date().timeIntervalSince(restartStarted)
        let states = try await SimCampaign.settle(cluster.nodes[0], sim, id: "it-pgrestart", n: n, seconds: 180)
        try await expectClusterInvariants(cluster, sim, campaign: "it-pgrestart", n: n, "pg restart")
        #expect(states["delivered"] == n, "nothing lost: every recipient delivered, none unknown: \(states)")
        var errors: [Int] = []
        for i in cluster.nodes.indices {
            // One clear error when the outage starts, one notice when it ends; never one per claim.
            let paused = cluster.daemonLogCount(i, "store unavailable; dispatch paused")
            errors.append(paused)
            #expect((1...2).contains(paused), "n\(i + 1) logged the outage \(paused) times")
            #expect(cluster.daemonLogCount(i, "store available again") >= 1, "n\(i + 1) did not say the store came back")
        }
        let recorded = (0..<cluster.nodes.count).map { Self.countSum(cluster, $0, "outcomes recorded after the store failed") }
        print("cluster pg restart: n=\(n) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s; restarted at \(acceptedAtRestart) accepted, "
              + "down and up in \(String(format: "%.1f", restartSeconds)) s; outage errors per node \(errors); outcomes recorded late per node \(recorded); "
              + "states \(states); accepted per node \(cluster.acceptedPerNode())")
    }

    /// Issue 21's headline test. `LOA_CLUSTER_N` recipients (default 6,000 for the suite; 100,000 by hand), three
    /// nodes; n3 is killed with SIGKILL three times at seeded moments and restarted, n2 is stopped past its lease and
    /// let go. `LOA_CLUSTER_RATE`: each node's carrier rate (default 700/s).
    @Test(.timeLimit(.minutes(30))) func threeNodesSurviveKillsAndAStopWithNothingTwiceAndNothingLost() async throws {
        let env = ProcessInfo.processInfo.environment
        let n = Int(env["LOA_CLUSTER_N"] ?? "") ?? 6_000
        let rate = Double(env["LOA_CLUSTER_RATE"] ?? "") ?? 700
        let seed = UInt64(env["LOA_CRASH_SEED"] ?? "") ?? UInt64.random(in: 1...1_000_000)
        var rng = SeededRandom(seed: seed)
        let work = WorkDir("cluster-three")
        // Scaled with n: the wait for the last receipts, the simulator's life (the harness's 900 s ended a 100,000
        // run with 21,768 still `sent`) and its receipt queue (two receipts a message, Kannel's dlr-mask 31: at 100,000
        // its default 100,000 receipts dropped whole messages' receipts while sending outran them).
        let patience = max(180, Double(n) / 100)
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "\(seed)", "--delivered-rate", "0.9", "--latency-ms", "2", "--latency-jitter-ms", "8",
                                                           "--receipt-retries", "80", "--receipt-retry-ms", "250",
                                                           "--receipt-queue", "\(max(100_000, 3 * n))", "--exit-after", "\(Int(900 + 3 * patience))"])
        try await sim.start()
        defer { sim.stop() }
        let lease = 3.0
        let cluster = try TestCluster("three", count: 3, leaseSeconds: lease, carriers: "[\(SimCarriers.kannel("a", sim, rate: rate, inFlight: 32))]",
                                      defaultCarrier: "a")
        defer { cluster.stop() }
        try await cluster.start()
        try Self.submit(cluster, id: "it-three", n: n)
        let started = Date()
        func reach(_ fraction: Double) async throws {
            let target = Int(Double(n) * fraction) + Int(rng.next() % UInt64(max(1, n / 20)))
            try await poll(600, every: 0.02, "\(target) accepted (seed \(seed))") { (try await sim.stats()["accepted"] as? Int ?? 0) >= target }
        }
        var kills: [String] = []
        func killAndRestart() async throws {
            let at = try await sim.stats()["accepted"] as? Int ?? 0
            cluster.nodes[2].child?.signal(SIGKILL)
            _ = cluster.nodes[2].child?.wait(seconds: 10)
            // Down for a moment of its own: sometimes back before its lease ends, sometimes after a survivor took over.
            try await Task.sleep(for: .milliseconds(Int(rng.next() % 4000)))
            try await cluster.nodes[2].start()
            kills.append("\(at)")
        }
        try await reach(0.10)
        try await killAndRestart()
        try await reach(0.30)
        let stop = try await Self.stopPastLease(cluster, 1, sim, leaseSeconds: lease)
        try await reach(0.50)
        try await killAndRestart()
        try await reach(0.70)
        try await killAndRestart()
        try await poll(patience, every: 0.2, "the campaign to complete (seed \(seed))") {
            try await cluster.nodes[0].campaign("it-three")["state"] as? String == "completed"
        }
        let sentSeconds = Date().timeIntervalSince(started)
        let receiptsAtSent = try await sim.stats()["receipts_sent"] as? Int ?? 0
        let states = try await SimCampaign.settle(cluster.nodes[0], sim, id: "it-three", n: n, seconds: patience)
        let seconds = Date().timeIntervalSince(started)
        let simStats = try await sim.stats()
        let receipts = (sent: simStats["receipts_sent"] as? Int ?? 0, dropped: simStats["receipts_dropped"] as? Int ?? -1,
                        failed: simStats["receipts_failed"] as? Int ?? -1, retries: simStats["receipt_retries"] as? Int ?? 0)
        #expect(receipts.dropped == 0, "seed \(seed): the simulator dropped \(receipts.dropped) receipts (its queue was full): \(simStats)")
        let store = try await expectClusterInvariants(cluster, sim, campaign: "it-three", n: n, "three nodes (seed \(seed))", nodesKilled: true)
        let after = try await sim.accepted()
        let claimedBefore = cluster.settledAfterLeaseEnded(of: "n2", claimedBefore: stop.resumedAt)
        let resent = Self.sentAfterSettled(claimedBefore, store: store, before: stop.accepted, after: after)
        #expect(resent.isEmpty, "seed \(seed): n2 sent \(resent.count) messages it had claimed before it was stopped: \(resent.prefix(5))")
        #expect(states.values.reduce(0, +) == n, "seed \(seed): \(states)")
        let fenced = Self.countSum(cluster, 1, "messages not sent: this node's cluster lease had ended")
        // The figures issue 21 asks for: sent twice at the gateway, and lost (not final, or final without the gateway's
        // acceptance where the state says it was delivered); the invariants above fail on either.
        let sentTwice = after.values.filter { $0 > 1 }.count
        let lost = store.values.filter { !SimCampaign.finalStates.contains($0.state) || ($0.state == "delivered" && after[$0.phone] == nil) }.count
        let tail = seconds - sentSeconds
        print("cluster three nodes: n=\(n) seed \(seed) rate \(Int(rate))/s per node: all sent in \(String(format: "%.1f", sentSeconds)) s "
              + "(\(Int(Double(n) / sentSeconds)) recipients/s), all final (receipts) in \(String(format: "%.1f", seconds)) s; n3 killed \(kills.count) times at \(kills) accepted; "
              + "n2 stopped \(String(format: "%.1f", stop.seconds)) s, \(stop.settled.count) of its claims settled unknown by a survivor, \(fenced) fenced; "
              + "unknown \(states["unknown"] ?? 0); sent twice \(sentTwice); lost \(lost); states \(states); accepted per node \(cluster.acceptedPerNode()); "
              + "receipts \(receipts.sent) (\(receiptsAtSent) by the time all were sent, then \(Int(Double(receipts.sent - receiptsAtSent) / max(0.1, tail)))/s), "
              + "retried \(receipts.retries), failed \(receipts.failed), dropped \(receipts.dropped)")
    }
}
