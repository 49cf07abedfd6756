import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import LoaStore
import Synchronization

/// Health, readiness and metrics: what probes and Prometheus read.
extension DaemonService {
    /// The probes are open (``Access/open``): they say only that the daemon is up and its store takes work.
    /// Metrics name campaigns and carriers, so they need a token: the operator's, or the read-only scrape token
    /// (`metrics_token`), which nothing else accepts. The metrics themselves are in `MetricsRoutes.swift`.
    static let healthEndpoints: [Endpoint] = [
        Endpoint("GET", "/healthz", access: .open) { _, _ in .value(["status": "ok"]) },
        Endpoint("GET", "/readyz", access: .open) { s, _ in try s.readyz() },
        Endpoint("GET", "/metrics", access: .metricsReader) { s, _ in .response(s.metrics()) },
        Endpoint("GET", "/api/v1/status", access: .role(.viewer)) { s, _ in .value(s.nodeStatus()) },
    ]

    /// Ready when the store takes work, read from what its writer records (no job: a probe must cost
    /// the writer nothing, see WriterHealth). The busy time is measured on the monotonic clock the writer
    /// stamps its jobs with, not the wall clock.
    func readyz() throws -> Reply {
        let health = store.writerHealth
        if let problem = health.problem() {
            // A failed transaction's text can carry SQLite's message and SQL: logged, and the (open) probe told
            // only that it failed.
            logger.warning("not ready", ["problem": problem])
            let told = health.lastFailure.map { problem.replacingOccurrences(of: ": " + $0, with: "; the daemon's log has the detail") } ?? problem
            throw APIError(503, "not-ready", told)
        }
        if let lease = store.cluster, !lease.holds() {
            // A node without its lease sends nothing (fencing): a balancer should send its work to another node.
            throw APIError(503, "not-ready", "node \(lease.node) does not hold its cluster lease (epoch \(lease.heldEpoch)): it sends nothing until it holds one again")
        }
        let busy = health.busySince.map { "busy for \(Int((ContinuousClock.now - $0) / .milliseconds(1))) ms" }
        return .value(["status": "ready", "store_writer": busy ?? "idle"])
    }

    /// This daemon's place in its cluster (`loa status`): its node, the epoch of its lease and whether it holds it,
    /// and the members as the last renewal read them. On SQLite: a cluster of one, always holding.
    func nodeStatus() -> NodeStatus {
        guard let lease = store.cluster else { return NodeStatus(store: "sqlite", node: nil, epoch: nil, holdsLease: true, leaseMillis: nil, members: []) }
        let members = lease.members().map {
            NodeStatus.Member(node: $0.node, epoch: $0.epoch, alive: $0.alive, leaseUntil: $0.leaseUntil, renewedAt: $0.renewedAt, joinedAt: $0.joinedAt)
        }
        return NodeStatus(store: "postgresql", node: lease.node, epoch: lease.heldEpoch, holdsLease: lease.holds(), leaseMillis: lease.leaseMillis,
                          members: members)
    }
}

/// The answer of `GET /api/v1/status`.
struct NodeStatus: Encodable {
    struct Member: Encodable {
        var node: String
        var epoch: Int64
        var alive: Bool
        /// The database's clock, milliseconds since 1970.
        var leaseUntil: Int64
        var renewedAt: Int64
        var joinedAt: Int64
    }
    var store: String
    var node: String?
    var epoch: Int64?
    var holdsLease: Bool
    var leaseMillis: Int64?
    var members: [Member]
}
