import Foundation
import LoaCore
import LoaStore
import Synchronization

/// The dispatcher in a cluster of daemons on one PostgreSQL (issue 21): each carrier's limits shared among the live
/// nodes (``ClusterShare``), and what this node publishes of itself in its `nodes.status` for the operator's view of
/// the whole cluster (``Dispatcher/clusterView(_:)``). Without a cluster (SQLite) none of this runs.
///
/// Every renewal round of the lease (a quarter of `store.lease_seconds`) brings the members as the database has them;
/// the share is computed from them and applied to every carrier's pacer and to the global cap (`global_rate`) at
/// once, then published with the carriers' figures (at most once a second unless the members counted changed), to be
/// written at the next renewal. A campaign's `max_rate` is shared the same way (``DispatchPlan/share``), and the
/// carriers' request rates are staggered: each node sends its requests in its own time slots (``CarrierPacer/stagger(index:of:)``).
extension Dispatcher {
    /// What the dispatcher keeps of the cluster between rounds.
    struct ShareState {
        var share: ClusterShare?
        /// The last round's members, the database's time then, and this clock's time when it came.
        var members: [ClusterMember] = []
        var databaseNow: Int64 = 0
        var receivedAt: UnixMillis = 0
        var lastPublished: UnixMillis = 0
        var publishedCounted: [String]?
        /// Carriers already warned about having fewer in-flight slots than live nodes.
        var warnedInFlight: Set<String> = []
        /// The configured global cap over all carriers (`global_rate`), shared like a carrier's rate; nil: none.
        var globalRate: Double?
    }

    /// What a node publishes about itself (`nodes.status`, JSON in snake_case): the members it counts (so a joining
    /// node learns it may take its share) and each carrier's figures.
    struct NodeStatus: Codable, Sendable {
        struct Carrier: Codable, Sendable {
            var name: String
            /// Messages the gateway accepted from this node since it started.
            var sent: Int64
            var currentRate: Double
            var inFlight: Int
            var share: Double
        }

        /// This node's clock, ms since 1970, when the status was made.
        var at: Int64
        var counted: [String]
        var carriers: [Carrier]

        static func decode(_ text: String?) -> NodeStatus? {
            guard let text else { return nil }
            let d = JSONDecoder()
            d.keyDecodingStrategy = .convertFromSnakeCase
            return try? d.decode(NodeStatus.self, from: Data(text.utf8))
        }
    }

    /// Hooks the dispatcher to the lease's rounds. Until the first round the node takes no share: it does not know
    /// yet whether it is alone.
    func observeCluster() {
        guard let cluster = store.cluster else { return }
        let global = state.withLock { $0.global?.rate }
        shares.withLock { $0.globalRate = global }
        applyShare(0, live: 0, index: 0)
        cluster.observe { [weak self] event in self?.clusterEvent(event, cluster: cluster) }
    }

    private func clusterEvent(_ event: ClusterEvent, cluster: any ClusterLease) {
        switch event {
        case .members(let members, let databaseNow):
            let share = ClusterShare(me: cluster.node, members: members.map(Self.shareMember), databaseNow: databaseNow)
            let was = shares.withLock { s -> ClusterShare? in
                defer {
                    s.share = share
                    s.members = members
                    s.databaseNow = databaseNow
                    s.receivedAt = clock.now()
                }
                return s.share
            }
            applyShare(share.fraction, live: share.live, index: share.index)
            if was?.fraction != share.fraction {
                logger.notice("this node's share of the carriers' limits changed",
                              ["store.node": cluster.node, "share": String(format: "%.4f", share.fraction), "nodes.live": "\(share.live)",
                               "waiting_for": share.waitingFor.joined(separator: ",")])
            }
            publish(share, to: cluster)
        case .lost:
            // Nothing more is sent until the lease is held again and the others count this node anew.
            applyShare(0, live: 0, index: 0)
            shares.withLock { $0.share = nil }
        case .regained, .tookOver:
            break
        }
    }

    static func shareMember(_ m: ClusterMember) -> ClusterShare.Member {
        ClusterShare.Member(node: m.node, epoch: m.epoch, leaseUntil: m.leaseUntil, counted: NodeStatus.decode(m.status).map { Set($0.counted) })
    }

    /// Applies `fraction` to every carrier's pacer and to the global cap, and this node's request slots (its `index`
    /// among the `live` nodes); a larger share wakes the dispatch loop.
    private func applyShare(_ fraction: Double, live: Int, index: Int) {
        let now = clock.now()
        var fewSlots: [String] = []
        let globalRate = shares.withLock { $0.globalRate }
        let grew = state.withLock { s -> Bool in
            if let g = globalRate, fraction > 0 {
                // At 0 the pacers claim nothing; the cap keeps its last share until the next one.
                let burst = Int((Double(TokenBucket.burst(rate: g, seconds: 0.1)) * fraction + 1e-9).rounded(.down))
                s.global?.setRate(g * fraction, now: now)
                s.global?.setBurst(burst, now: now)
                globalSendPace?.follow(rate: g * fraction, burst: burst, now: now)
            }
            var grew = false
            for name in s.carriers.keys {
                grew = grew || fraction > (s.carriers[name]?.pacer.fraction ?? 0)
                s.carriers[name]?.pacer.apply(fraction: fraction, now: now)
                s.carriers[name]?.pacer.stagger(index: index, of: fraction > 0 ? live : 1)
                // The pace where requests leave takes the new share at once, not at the next launch: messages waiting
                // there hold the pacer's slots, so with a share of 0 taken at their launch no launch came to lift it
                // (seed 3778: 13 claimed messages waited 3 minutes and the campaign never completed).
                if let p = s.carriers[name]?.pacer { sendPaces[name]?.follow(rate: p.allowedRate, burst: p.sendBurst, inFlight: p.inFlightLimit) }
                if let max = s.carriers[name]?.pacer.maxInFlight, live > max { fewSlots.append(name) }
            }
            return grew
        }
        for name in fewSlots.sorted() where shares.withLock({ $0.warnedInFlight.insert(name).inserted }) {
            logger.warning("more live nodes than the carrier's max_in_flight: each node keeps one request in flight, so the cluster may have one per node",
                           ["carrier.name": name, "nodes.live": "\(live)"])
        }
        if grew { worker.wake() }
    }

    /// Publishes this node's status when the members counted changed, else at most once a second.
    private func publish(_ share: ClusterShare, to cluster: any ClusterLease) {
        let now = clock.now()
        let due = shares.withLock { s -> Bool in
            guard s.publishedCounted != share.counted || now - s.lastPublished >= 1000 else { return false }
            s.publishedCounted = share.counted
            s.lastPublished = now
            return true
        }
        guard due else { return }
        let figures = status().map {
            NodeStatus.Carrier(name: $0.name, sent: $0.answers["accepted"] ?? 0, currentRate: $0.currentRate, inFlight: $0.inFlight, share: share.fraction)
        }
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = .sortedKeys
        guard let data = try? e.encode(NodeStatus(at: now, counted: share.counted, carriers: figures)) else { return }
        cluster.publish(status: String(decoding: data, as: UTF8.self))
    }

    /// This node's fraction of the limits for the plan's campaign caps: 1 without a cluster; 0 before the first
    /// round and after the lease was lost (as the carriers' pacers).
    var nodeFraction: Double { store.cluster == nil ? 1 : shares.withLock { $0.share?.fraction ?? 0 } }

    /// The last round's members and each live one's lease left (seconds, now), for `/metrics`; nil without a cluster.
    func clusterLeases() -> (alive: Int, leaseLeft: [(node: String, seconds: Double)])? {
        guard store.cluster != nil else { return nil }
        let (members, dbNow, at) = shares.withLock { ($0.members, $0.databaseNow, $0.receivedAt) }
        let elapsed = max(0, clock.now() - at)
        let live = members.filter { $0.leaseUntil > dbNow }
        return (live.count, live.map { ($0.node, Double(max(0, $0.leaseUntil - dbNow - elapsed)) / 1000) })
    }

    /// Each carrier's figures with, in a cluster, every live node's (this one's as it is now, the others' as they
    /// last published them) and the cluster's totals.
    func clusterView(_ local: [CarrierStatus]) -> [CarrierStatus] {
        guard let cluster = store.cluster else { return local }
        let (members, dbNow) = shares.withLock { ($0.members, $0.databaseNow) }
        let others = members.filter { $0.leaseUntil > dbNow && $0.node != cluster.node }
        let published = others.map { ($0, NodeStatus.decode($0.status)) }
        return local.map { c in
            var c = c
            let mine = NodeFigures(node: cluster.node, sent: c.answers["accepted"] ?? 0, currentRate: c.currentRate, inFlight: c.inFlight,
                                   share: c.share ?? 0, updatedAt: clock.now())
            var nodes = [mine]
            for (m, status) in published {
                let figures = status?.carriers.first { $0.name == c.name }
                nodes.append(NodeFigures(node: m.node, sent: figures?.sent ?? 0, currentRate: figures?.currentRate ?? 0, inFlight: figures?.inFlight ?? 0,
                                         share: figures?.share ?? 0, updatedAt: status?.at))
            }
            nodes.sort { $0.node < $1.node }
            c.nodes = nodes
            c.cluster = ClusterFigures(nodesAlive: nodes.count, sent: nodes.reduce(0) { $0 + $1.sent },
                                       currentRate: nodes.reduce(0) { $0 + $1.currentRate }, inFlight: nodes.reduce(0) { $0 + $1.inFlight },
                                       share: nodes.reduce(0) { $0 + $1.share })
            return c
        }
    }

    /// One live node's figures for a carrier.
    public struct NodeFigures: Sendable, Codable, Equatable {
        public var node: String
        /// Messages the gateway accepted from the node since it started.
        public var sent: Int64
        /// Messages started per second over the last 10 s.
        public var currentRate: Double
        public var inFlight: Int
        /// The node's fraction of the carrier's limits.
        public var share: Double
        /// When the figures were made (the node's clock, ms since 1970); nil: it published none yet.
        public var updatedAt: Int64?
    }

    /// The sums over the live nodes.
    public struct ClusterFigures: Sendable, Codable, Equatable {
        public var nodesAlive: Int
        public var sent: Int64
        public var currentRate: Double
        public var inFlight: Int
        /// The shares in force added up (1 once every node counts every other; less while one joins).
        public var share: Double
    }
}
