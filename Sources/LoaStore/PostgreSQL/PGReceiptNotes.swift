import Foundation
import LoaCore
import Synchronization

/// Receipts applied on one node for another node's messages, announced to that node (``ClusterReceiptFeed``).
///
/// **Sending.** The receipt's transaction reads the message's row, which names the node that claimed it last
/// (`messages.node`); when that is another node, it calls
/// `pg_notify('loa_receipts', 'schema.node carrier message status')`, which PostgreSQL delivers at COMMIT (and not at
/// all if the transaction rolls back). One channel, the node in the payload: a node name may be 63 bytes, too long
/// for a channel of its own with a prefix.
///
/// **Hearing.** A `LISTEN loa_receipts` on a connection and thread of its own (`loa-pg-receipts`), started by the
/// dispatcher only when a carrier paces from receipts; each wake-up's notifications for this node go to the handler
/// as one batch. Every listening node hears every announcement and keeps its own: a payload is about 40 bytes, far
/// below the receipt's own writes. Notifications are not stored: those sent while the listener was reconnecting are
/// lost, and their messages leave the hand-off window as lost, as a lost receipt's would.
enum PGReceiptNotes {
    static let channel = "loa_receipts"

    /// A node as the payload names it: `schema.node`. Channels are the database's, not a schema's, and two clusters
    /// may share a database in schemas of their own (the tests do), each with a node `n1`.
    static func address(_ schema: String, _ node: String) -> String { schema + "." + node }
}

final class PGReceiptListener: Sendable {
    private let settings: PostgresSettings
    private let logger: Logger
    private let worker = Worker(name: "loa-pg-receipts")

    init(settings: PostgresSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// Starts the listener (once) with `handler`.
    func start(_ handler: @escaping @Sendable ([ClusterReceiptNote]) -> Void) {
        let settings = settings
        let logger = logger
        let me = PGReceiptNotes.address(settings.schema, settings.node)
        worker.start { worker in
            PGConnection.listen(PGReceiptNotes.channel, settings: settings, on: worker) { again in
                if again { logger.notice("the receipts of other nodes are heard again", ["store.node": settings.node]) }
            } failed: { error, first in
                if first {
                    logger.warning("the receipts that other nodes take for this node's messages are not heard; trying every second",
                                   ["store.node": settings.node, "error": "\(error)"])
                }
            } heard: { payloads in
                let notes = payloads.compactMap { ClusterReceiptNote.parse($0, node: me) }
                if !notes.isEmpty { handler(notes) }
            }
        }
    }

    func stop() { _ = worker.stop(by: .after(seconds: 5)) }
}

extension PostgresStore: ClusterReceiptFeed {
    public func observeOtherNodesReceipts(_ handler: @escaping @Sendable ([ClusterReceiptNote]) -> Void) {
        receiptNotes.start(handler)
    }
}
