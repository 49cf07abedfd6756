import Testing
@testable import LoaCore

/// A carrier's and a campaign's limits held for the sum of a cluster's nodes (issue 21, item 4), on a manual clock:
/// each node's pacer and plan with its share, the nodes' claims added up.
@Suite struct ClusterLimitsTests {
    static let t0: UnixMillis = 1_800_000_000_000

    /// Three nodes with a third each of a carrier of 10 requests a second: the cluster starts one request at once (its
    /// burst), not one per node, and no second holds more than 11 (the rate and the burst of one); the rate is kept.
    @Test func staggeredNodesHoldTheClustersRequestRateAndItsBurstOfOne() {
        var nodes = (0..<3).map { i -> CarrierPacer in
            var p = CarrierPacer(rate: 1_000, requestsPerSecond: 10, maxInFlight: 30, now: Self.t0)
            p.apply(fraction: 1.0 / 3, now: Self.t0)
            p.stagger(index: i, of: 3)
            return p
        }
        var starts: [UnixMillis] = []
        for t in Self.t0..<(Self.t0 + 3_000) {
            for i in nodes.indices {
                guard case .claim(let m, let r) = nodes[i].decide(now: t) else { continue }
                starts += Array(repeating: t, count: r)
                nodes[i].settle(granted: (m, r), used: (m, r), now: t)
                for _ in 0..<r { nodes[i].finished() }
            }
        }
        #expect((29...31).contains(starts.count), "3 s at 10 requests a second: \(starts.count)")
        #expect(starts.filter { $0 < Self.t0 + 100 }.count <= 1, "the cluster's burst is one request: \(starts.prefix(5).map { $0 - Self.t0 })")
        let busiest = (Self.t0..<(Self.t0 + 2_000)).map { w in starts.filter { $0 >= w && $0 < w + 1_000 }.count }.max() ?? 0
        #expect(busiest <= 11, "a second held \(busiest) requests: \(starts.map { $0 - Self.t0 })")
    }

    /// Every live node takes a different place among the members for its request slots, whatever order they come in.
    @Test func theNodesPlacesDiffer() {
        let members = ["c", "a", "b"].map { ClusterShareTests.member($0, counted: ["a:1", "b:1", "c:1"]) }
        #expect(["a", "b", "c"].map { ClusterShare(me: $0, members: members, databaseNow: 0).index } == [0, 1, 2])
        #expect(ClusterShare(me: "b", members: members.filter { $0.node != "a" }, databaseNow: 0).index == 0)
    }

    /// A node that was given a place staggers; alone again it is back to its own bucket of one request.
    @Test func aNodeAloneIsNotStaggered() {
        var p = CarrierPacer(rate: 1_000, requestsPerSecond: 10, maxInFlight: 30, now: Self.t0)
        p.stagger(index: 2, of: 3)
        p.stagger(index: 0, of: 1)
        guard case .claim(_, let r) = p.decide(now: Self.t0 + 1) else {
            Issue.record("alone, the first request goes at once")
            return
        }
        #expect(r == 1)
    }

    /// A campaign's `max_rate` of 30 a second on three nodes with a third each: the three claim 30 a second together
    /// (its burst of 3 split, one each), not 90; a node whose share grows takes the larger rate from then on.
    @Test func aCampaignsMaxRateHoldsForTheSumOfTheNodes() {
        var sims = (0..<3).map { _ -> DispatchPlanTests.Sim in
            var sim = DispatchPlanTests.Sim(carriers: [DispatchPlanTests.carrier("s", rate: 1_000)],
                                            campaigns: [DispatchPlanTests.campaign("a", maxRate: 30)])
            sim.plan.share = 1.0 / 3
            sim.queued = ["a": ["s": 100_000]]
            return sim
        }
        for i in sims.indices { sims[i].run(until: DispatchPlanTests.t0 + 10_000) }
        let counts = sims.map { $0.claims.map(\.count).reduce(0, +) }
        #expect((300...303).contains(counts.reduce(0, +)), "30/s over three nodes for 10 s: \(counts)")
        let first = sims.map { $0.claims.filter { $0.at < DispatchPlanTests.t0 + 100 }.map(\.count).reduce(0, +) }.reduce(0, +)
        #expect(first <= 3 + 3, "the first 100 ms: \(first), the burst of 3 and 3 more at 30/s")

        // The last node alone for 10 s more: the whole max_rate.
        sims[0].plan.share = 1
        sims[0].run(until: DispatchPlanTests.t0 + 20_000)
        let alone = sims[0].claims.filter { $0.at >= DispatchPlanTests.t0 + 10_000 }.map(\.count).reduce(0, +)
        #expect((299...304).contains(alone), "alone, 30/s for 10 s: \(alone)")
    }

    /// With the pace where requests leave, a node claims ahead beyond its burst (here a quarter of a second), and the pace's
    /// burst is the node's share of the carrier's; without it, the bucket holds the burst alone.
    @Test func claimsRunAheadOfThePaceAtTheSendingByTheClaimAhead() {
        var ahead = CarrierPacer(rate: 300, maxInFlight: 300, claimAheadSeconds: 0.25, now: Self.t0)
        ahead.apply(fraction: 1.0 / 3, now: Self.t0)
        #expect(ahead.sendBurst == 10)
        #expect(ahead.decide(now: Self.t0 + 1_000) == .claim(messages: 35, requests: 35), "10 of burst and 25 ahead at 100/s")
        var plain = CarrierPacer(rate: 300, maxInFlight: 300, now: Self.t0)
        plain.apply(fraction: 1.0 / 3, now: Self.t0)
        #expect(plain.decide(now: Self.t0 + 1_000) == .claim(messages: 10, requests: 10))
    }
}
