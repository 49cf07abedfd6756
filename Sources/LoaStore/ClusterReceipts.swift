import LoaCore

/// A store shared by several nodes that tells a node of the receipts for its messages that landed on another node
/// (issue 21: any node takes receipts, behind a load balancer or through a `public_url` that names another node).
///
/// Why: a carrier with `pace_from_receipts` paces from the sending node's hand-off window, which holds in memory the
/// messages that node handed over and learns the gateway's pass-on pace from their receipts. A receipt applied on
/// another node never reached that window: the sender kept its probe's messages outstanding and stopped sending
/// until the gateway was taken as silent (a minute). The feed closes that loop: the node that applies a receipt for
/// another node's message announces it, and the sender's dispatcher takes it as if it had come to its own endpoint.
public protocol ClusterReceiptFeed: AnyObject, Sendable {
    /// Calls `handler` (on a thread of the store's) with each batch of receipts applied on other nodes for messages
    /// this node claimed last. Started once; stopped when the store closes. Announcements missed while the store's
    /// connection was down are not replayed: those messages leave the window as lost (``HandoffWindow``).
    func observeOtherNodesReceipts(_ handler: @escaping @Sendable ([ClusterReceiptNote]) -> Void)
}

/// A receipt applied on another node, for a message of this node's.
public struct ClusterReceiptNote: Sendable, Equatable {
    public var carrier: String
    public var messageID: Int64
    public var status: ReceiptStatus

    public init(carrier: String, messageID: Int64, status: ReceiptStatus) {
        self.carrier = carrier
        self.messageID = messageID
        self.status = status
    }

    /// The notification's payload: `node carrier message status`, where `node` is whatever the store names the node
    /// by (names and ids hold no space: a node and a schema are identifiers, a carrier's name is checked by the config).
    public func payload(node: String) -> String { "\(node) \(carrier) \(messageID) \(status.rawValue)" }

    /// A payload meant for `node`, or nil (another node's, or not understood).
    public static func parse(_ payload: String, node: String) -> ClusterReceiptNote? {
        let f = payload.split(separator: " ")
        guard f.count == 4, f[0] == node, let id = Int64(f[2]), let raw = Int(f[3]), let status = ReceiptStatus(rawValue: raw) else { return nil }
        return ClusterReceiptNote(carrier: String(f[1]), messageID: id, status: status)
    }
}
