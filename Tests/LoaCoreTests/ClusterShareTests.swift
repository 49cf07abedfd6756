import LoaCore
import Testing

/// A node's share of the carriers' limits in a cluster (``ClusterShare``) and the pacer applying it, on a manual clock.
@Suite struct ClusterShareTests {
    typealias Member = ClusterShare.Member

    static func member(_ node: String, epoch: Int64 = 1, until: Int64 = 10_000, counted: [String]? = nil) -> Member {
        Member(node: node, epoch: epoch, leaseUntil: until, counted: counted.map(Set.init))
    }

    @Test func theTableInTheComment() {
        #expect(ClusterShare(me: "a", members: [Self.member("a")], databaseNow: 0).fraction == 1, "alone: everything")
        let all = ["a:1", "b:1", "c:1"]
        let three = [Self.member("a", counted: all), Self.member("b", counted: all), Self.member("c", counted: all)]
        let s = ClusterShare(me: "a", members: three, databaseNow: 0)
        #expect(s.fraction == 1.0 / 3 && s.live == 3 && s.counted == all && s.waitingFor.isEmpty)
        // A joining node: c counts a, b does not yet.
        let joining = [Self.member("a"), Self.member("b", counted: ["b:1", "c:1"]), Self.member("c", counted: all)]
        let j = ClusterShare(me: "a", members: joining, databaseNow: 0)
        #expect(j.fraction == 0 && j.waitingFor == ["b"])
        // c's lease ended: its share is taken up; its count no longer matters.
        let dead = [Self.member("a"), Self.member("b", counted: all), Self.member("c", until: 5_000)]
        #expect(ClusterShare(me: "a", members: dead, databaseNow: 5_000).fraction == 0.5)
        #expect(ClusterShare(me: "a", members: dead, databaseNow: 4_999).fraction == 0, "c is alive until its lease ends and has not counted a")
    }

    @Test func aNewEpochIsANewMemberAndALostLeaseHasNoShare() {
        // b counted a's earlier epoch only: a, back with epoch 2, waits.
        let members = [Self.member("a", epoch: 2), Self.member("b", counted: ["a:1", "b:1"])]
        #expect(ClusterShare(me: "a", members: members, databaseNow: 0).fraction == 0)
        #expect(ClusterShare(me: "a", members: [Self.member("a", until: 100)], databaseNow: 100).fraction == 0, "a's own lease ended")
        #expect(ClusterShare(me: "x", members: [Self.member("a")], databaseNow: 0).fraction == 0, "not a member")
    }

    /// A simulated cluster on the database's clock, one step per millisecond: each node renews every quarter of its
    /// lease (with jitter) writing the status it published, reads the members a few milliseconds later and applies
    /// the share then; nodes join, leave cleanly, are cut off from the database (they go on sending until their local
    /// lease ends) and come back, crash and restart with their old status still in their row. The fractions in force
    /// never add up to more than 1, and at the end every live node has its equal share.
    @Test(arguments: [1, 2, 3, 4, 5]) func theFractionsInForceNeverExceedOne(seed: UInt64) {
        let lease: Int64 = 4_000
        var rng = seed &* 0x9E37_79B9_7F4A_7C15
        func jitter(_ n: Int64) -> Int64 {
            rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int64((rng >> 33) % UInt64(n))
        }
        struct Row { var epoch: Int64 = 0; var leaseUntil: Int64 = 0; var status: Set<String>? }
        struct Node {
            var running = false, cutOff = false
            var fraction = 0.0, localEnd: Int64 = 0, nextRound: Int64 = 0, readAt: Int64?
            var published: Set<String>?
            func inForce(_ t: Int64) -> Double { running && t < localEnd ? fraction : 0 }
        }
        var rows: [String: Row] = [:]
        var nodes: [String: Node] = [:]
        func start(_ n: String, _ t: Int64) {
            rows[n, default: Row()].epoch += 1
            rows[n]!.leaseUntil = t + lease
            nodes[n] = Node(running: true, fraction: 0, localEnd: t + lease, nextRound: t + lease / 4 + jitter(200))
        }
        let script: [Int64: [(String, String)]] = [
            0: [("start", "a")], 300: [("start", "b")], 700: [("start", "c")], 10_000: [("start", "d")],
            20_000: [("cut", "b")], 30_000: [("reconnect", "b")], 40_000: [("stop", "c")], 45_000: [("crash", "d")],
            52_000: [("start", "d")], 58_000: [("start", "c")],
        ]
        var worst = 0.0
        for t in Int64(0)...80_000 {
            for (what, n) in script[t] ?? [] {
                switch what {
                case "start": start(n, t)
                case "cut": nodes[n]!.cutOff = true
                case "reconnect": nodes[n]!.cutOff = false
                case "stop": nodes[n]!.running = false; rows[n]!.leaseUntil = 0
                default: nodes[n]!.running = false
                }
            }
            for name in nodes.keys.sorted() {
                var node = nodes[name]!
                defer { nodes[name] = node }
                guard node.running else { continue }
                if node.cutOff {
                    // Its rounds fail: nothing renewed, nothing read; it goes on with the fraction it has.
                    if t == node.nextRound { node.nextRound = t + lease / 4 }
                    node.readAt = nil
                    continue
                }
                if t == node.nextRound {
                    node.nextRound = t + lease / 4 + jitter(50)
                    if rows[name]!.leaseUntil > t {
                        rows[name]!.leaseUntil = t + lease
                    } else {
                        // Lost: sends nothing, then takes a new epoch.
                        node.fraction = 0
                        rows[name]!.epoch += 1
                        rows[name]!.leaseUntil = t + lease
                    }
                    if let p = node.published { rows[name]!.status = p }
                    node.localEnd = t + lease
                    node.readAt = t + 1 + jitter(8)
                }
                if t == node.readAt {
                    node.readAt = nil
                    let members = rows.map { Member(node: $0.key, epoch: $0.value.epoch, leaseUntil: $0.value.leaseUntil, counted: $0.value.status) }
                    let share = ClusterShare(me: name, members: members, databaseNow: t)
                    node.fraction = share.fraction
                    node.published = Set(share.counted)
                }
            }
            let sum = nodes.values.reduce(0) { $0 + $1.inForce(t) }
            worst = max(worst, sum)
            if sum > 1 + 1e-9 {
                Issue.record("seed \(seed): at \(t) ms the fractions in force add up to \(sum): \(nodes.mapValues { $0.inForce(t) })")
                return
            }
        }
        #expect(worst > 0.99, "the cluster used its whole limit at some point")
        let live = nodes.filter { $0.value.running }
        #expect(Set(live.keys) == ["a", "b", "c", "d"])
        #expect(live.values.allSatisfy { abs($0.fraction - 0.25) < 1e-9 }, "seed \(seed): \(live.mapValues(\.fraction))")
    }

    @Test func thePacerScalesRatesBurstAndInFlight() {
        var p = CarrierPacer(rate: 300, maxInFlight: 32, now: 0)
        #expect(p.messages.burst == 30 && p.inFlightLimit == 32)
        p.apply(fraction: 1.0 / 3, now: 0)
        #expect(p.messages.burst == 10 && p.inFlightLimit == 10 && abs(p.allowedRate - 100) < 1e-9)
        // Over 10 s from a full bucket: the burst, then 100 a second.
        var sent = 0
        for t in stride(from: Int64(0), through: 10_000, by: 10) {
            if case .claim(let n, let k) = p.decide(now: t) {
                sent += n
                for _ in 0..<k { p.finished() }
            }
        }
        #expect(sent == 10 + 1_000, "burst 10 + 100/s × 10 s, got \(sent)")
        // No share: nothing, and no time to look again but a wake-up.
        p.apply(fraction: 0, now: 10_000)
        #expect(p.decide(now: 20_000) == .wait(until: nil) && p.inFlightLimit == 0)
        // Back to all of it: the configured burst refills at the configured rate.
        p.apply(fraction: 1, now: 20_000)
        #expect(p.messages.burst == 30 && p.inFlightLimit == 32 && p.allowedRate == 300)
    }

    @Test func inFlightNeverAddsUpToMoreThanTheLimitUnlessNodesOutnumberIt() {
        for limit in 1...40 {
            for nodes in 1...8 {
                let each = CarrierPacer.inFlight(limit, fraction: 1 / Double(nodes))
                #expect(each >= 1)
                #expect(each * nodes <= max(limit, nodes), "max_in_flight \(limit), \(nodes) nodes: \(each) each")
            }
        }
        #expect(CarrierPacer.inFlight(2, fraction: 1.0 / 3) == 1, "three nodes, two slots: one each, three in all")
    }

    @Test func requestRateAndBatchesAreSharedToo() {
        var p = CarrierPacer(rate: 1000, requestsPerSecond: 6, maxInFlight: 8, batchMax: 100, now: 0)
        p.apply(fraction: 0.5, now: 0)
        #expect(p.allowedRequestRate == 3 && p.allowedRate == 500 && p.messages.burst == 50 && p.batchTarget == 50)
        var requests = 0, messages = 0
        for t in stride(from: Int64(0), through: 10_000, by: 5) {
            if case .claim(let n, let k) = p.decide(now: t) {
                requests += k
                messages += n
                for _ in 0..<k { p.finished() }
            }
        }
        // 3 requests a second (one at once, then evenly): 30 or 31 in 10 s (the 31st is due at the last instant), each
        // a full batch of this node's 50 (half the configured 100 a second of burst).
        #expect((30...31).contains(requests) && messages == requests * 50, "\(requests) requests, \(messages) messages")
        // A throttled node lowers the cluster's request rate from what it saw, in the cluster's units.
        p.throttled(retryAfterSeconds: nil, now: 10_000)
        #expect((p.allowedRequestRate ?? 0) < 3 && (p.allowedRequestRate ?? 0) > 2)
        // batch.min holds on every node, whatever the share.
        var q = CarrierPacer(rate: 100, maxInFlight: 4, batchMax: 50, batchMin: 20, now: 0)
        q.apply(fraction: 0.25, now: 0)
        #expect(q.messages.burst == 20 && q.inFlightLimit == 1)
    }
}
