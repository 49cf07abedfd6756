import Foundation
import LoaCore

/// A daemon's place in a cluster of daemons sharing one store (issue 21): the lease it holds and renews, and the
/// members it sees. Only the PostgreSQL store has one (``MessageStore/cluster``); a daemon on SQLite is a cluster
/// of one and needs none.
///
/// **The lease.** A node sends only while it holds its lease: ``holds()`` is checked before every request leaves
/// (fencing), and the store refuses a claim in the same transaction when the lease has ended in the database. The
/// lease is renewed every quarter of its length; its local end is measured on `CLOCK_BOOTTIME` from the moment the
/// renewal was *sent*, so it always ends before the database's (which starts later, at the statement): a node
/// paused by SIGSTOP, cut off from the database or suspended stops sending before any survivor may act.
/// A survivor turns what a dead node had claimed and not settled into `unknown` (never resent) once the node's lease
/// is over by a grace of a fifth of its length. A node that finds its lease gone takes a new one (a new epoch) only
/// after settling its own claims the same way.
public protocol ClusterLease: AnyObject, Sendable {
    /// This daemon's node.
    var node: String { get }
    /// The lease's length in milliseconds.
    var leaseMillis: Int64 { get }
    /// True while this node holds its lease: no request may leave otherwise. Cheap (an atomic read and a clock read).
    func holds() -> Bool
    /// The members as last read (every renewal), this node included; `alive` by the database's clock.
    func members() -> [ClusterMember]
    /// Called on the lease thread after every renewal round with the members read in it, and when the lease is lost
    /// or taken again. Keep it short: it delays the next renewal.
    func observe(_ observer: @escaping @Sendable (ClusterEvent) -> Void)
    /// This node's status (JSON) as its next renewal writes it into its row: what the other nodes read back as
    /// ``ClusterMember/status`` (its carriers' figures and the members its share counts).
    func publish(status: String?)
}

/// One daemon of the cluster as the `nodes` table records it.
public struct ClusterMember: Sendable, Equatable {
    public var node: String
    /// Bumped each time the node takes its lease anew (a start, or after losing it).
    public var epoch: Int64
    /// The database's clock, milliseconds since 1970: when the lease ends, when it was last renewed, when the node
    /// took its current lease.
    public var leaseUntil: Int64
    public var renewedAt: Int64
    public var joinedAt: Int64
    /// The lease had not ended when the members were read.
    public var alive: Bool
    /// What the node publishes about itself (JSON, or nil): its carriers' view for the cluster's `loa carriers`.
    public var status: String?

    public init(node: String, epoch: Int64, leaseUntil: Int64, renewedAt: Int64, joinedAt: Int64, alive: Bool, status: String? = nil) {
        self.node = node
        self.epoch = epoch
        self.leaseUntil = leaseUntil
        self.renewedAt = renewedAt
        self.joinedAt = joinedAt
        self.alive = alive
        self.status = status
    }
}

/// What the lease thread tells its observers.
public enum ClusterEvent: Sendable, Equatable {
    /// A renewal round: the members read, and the database's time then.
    case members([ClusterMember], databaseNow: Int64)
    /// The lease is gone (not renewed in time, or ended in the database): sending stops until it is taken again.
    case lost(reason: String)
    /// A new lease (epoch) is held again, this node's earlier claims settled as `unknown`.
    case regained(epoch: Int64, settled: Int)
    /// A survivor (this node) settled a dead node's claims as `unknown`.
    case tookOver(node: String, epoch: Int64, settled: Int)
}

extension ClusterLease {
    /// The epoch of the lease this node holds (or last held).
    public var heldEpoch: Int64 { (self as? PGCluster)?.epoch ?? members().first { $0.node == node }?.epoch ?? 0 }
}

extension MessageStore {
    /// The cluster this store's daemon belongs to; nil for a store of one daemon (SQLite).
    public var cluster: (any ClusterLease)? { (self as? any ClusteredStore)?.clusterLease }
}

/// A store whose daemons share it (PostgreSQL).
public protocol ClusteredStore {
    var clusterLease: any ClusterLease { get }
}
