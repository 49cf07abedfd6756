/// One node's share of every carrier's limits in a cluster of daemons on one store (issue 21): the fraction of a
/// carrier's rate, request rate, burst and requests in flight this node may use (``CarrierPacer/apply(fraction:now:)``),
/// from the members as the last lease renewal read them and the database's time then.
///
/// Pure, on the database's clock. The rule, for `n` live members (lease not ended at `databaseNow`, this node among them):
/// - **Going down is immediate.** A node counts every live member it sees, a joining one included: its fraction is
///   at most `1/n` from the round that first sees the newcomer.
/// - **Going up waits to be safe.** A node takes `1/n` only once every other live member has *published* that it
///   counts this node (the `node:epoch` keys it counted, written into its `nodes.status` at its next renewal, so
///   only after it applied the smaller share); until then its fraction is 0. A joining node therefore starts at 0
///   and sends once the others have shrunk, two or three renewal rounds (each a quarter of the lease) after it joined.
///   A node that lost its lease and took a new one (a new epoch) joins again the same way.
/// - **A dead node's share is taken up after its lease ended** in the database: it no longer counts among the
///   live ones. Its local end of the lease came earlier (``ClusterLease``), so it had already stopped sending.
/// - A member that is alive but silent (paused, cut off) keeps its place: the others wait for its lease to end.
///
/// So the fractions in force never add up to more than 1, whatever the order of the rounds (tested on a simulated
/// cluster in `ClusterShareTests`); the cost is that a newcomer's share is unused for a few rounds.
///
/// | live members | acknowledged by all others | fraction |
/// |---|---|---|
/// | me | (none to ask) | 1 |
/// | me, b, c | yes | 1/3 |
/// | me (joining), b, c | b only | 0 |
/// | me, b, c (c's lease ended) | yes (by b) | 1/2 |
public struct ClusterShare: Sendable, Equatable {
    /// A member as the share needs it (``ClusterMember`` in the store, with its published status read).
    public struct Member: Sendable, Equatable {
        public var node: String
        public var epoch: Int64
        /// The database's time when the member's lease ends.
        public var leaseUntil: Int64
        /// The live members (``ClusterShare/key(node:epoch:)``) the member counted in the share it applied last, as
        /// it published them; nil: it published none yet.
        public var counted: Set<String>?

        public init(node: String, epoch: Int64, leaseUntil: Int64, counted: Set<String>?) {
            self.node = node
            self.epoch = epoch
            self.leaseUntil = leaseUntil
            self.counted = counted
        }

        public var key: String { ClusterShare.key(node: node, epoch: epoch) }
    }

    /// This node's fraction of every carrier's limits.
    public var fraction: Double
    /// Live members, this node included.
    public var live: Int
    /// The live members counted (keys, sorted): what this node publishes once it applied ``fraction``.
    public var counted: [String]
    /// Live members that have not yet published that they count this node: why the fraction is 0.
    public var waitingFor: [String]
    /// This node's place among the live members (their keys sorted): which of the carriers' request slots are its
    /// own (``CarrierPacer/stagger(index:of:)``). Every member sorts the same keys, so the places differ.
    public var index: Int

    /// How a member is named in a published count: a node that takes a new lease (epoch) is a new member.
    public static func key(node: String, epoch: Int64) -> String { "\(node):\(epoch)" }

    /// The share of `me` (a node name) among `members` at `databaseNow` (ms).
    public init(me: String, members: [Member], databaseNow: Int64) {
        let live = members.filter { $0.leaseUntil > databaseNow }
        self.live = live.count
        let keys = live.map(\.key).sorted()
        counted = keys
        let mineFirst = live.first(where: { $0.node == me })
        index = mineFirst.flatMap { m in keys.firstIndex(of: m.key) } ?? 0
        guard let mine = mineFirst else {
            // This node's lease ended in the database: it sends nothing until it holds a new one.
            fraction = 0
            waitingFor = []
            return
        }
        waitingFor = live.filter { $0.node != me && !($0.counted?.contains(mine.key) ?? false) }.map(\.node).sorted()
        fraction = waitingFor.isEmpty ? 1 / Double(live.count) : 0
    }
}
