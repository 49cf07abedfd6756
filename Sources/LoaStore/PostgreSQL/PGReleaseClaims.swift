import Foundation
import LoaCore
import Synchronization

// Claims whose COMMIT acknowledgement was lost (issue 21, item 6). When PostgreSQL dies (a restart, a failover to a
// standby) while a claim's transaction commits, the daemon gets an error and cannot tell whether the claim committed.
// If it did, its rows say `sending` under this node although none of them reached an adapter: the dispatcher never
// had them. Without a release they stayed so until the node's next start, which reported them `unknown`, and the
// campaign could not complete before it.

extension PostgresStore {
    /// Requeues the messages of this node's unsure claims (``unsureClaims``: a claim whose transaction ended with
    /// the connection lost) that are `sending` under this node and that the dispatcher does not hold
    /// (``MessageStore/releaseUnsentClaims(epoch:holding:)``). Only those: a `sending` row the dispatcher answered
    /// and recorded is never touched, even when an asynchronous standby lost that recording in a failover.
    ///
    /// First an empty job goes through the writer and waits for its transaction: every recording queued before it
    /// (``recordSoon(_:failed:)``) has then finished and, if it failed, called its `failed` (which keeps its outcomes),
    /// so `holding()`, read after it, sees them. A job of the same transaction is not enough: a recording that fails
    /// alone in its savepoint tells its caller only after the COMMIT. An unsure claim that did not commit left its
    /// messages queued; one claimed again since is held (in flight, or its answer waiting) and stays.
    /// Then, in one transaction fenced by the lease: this node's row locked `FOR SHARE` while it still holds `epoch`
    /// (a survivor's takeover locks it `FOR UPDATE SKIP LOCKED` and needs the lease over by its grace, so the two
    /// never act on the same claims), and each such row is requeued through ``PGContext/record(_:)``:
    /// ``MessageLifecycle`` moves it, its attempt is given back, a `requeued` line says why.
    /// Returns nil when the lease at `epoch` is not held: the claims are then settled `unknown` when the node takes
    /// its lease again (``PGContext/regainLease(_:)``) or by a survivor.
    public func releaseUnsentClaims(epoch: Int64?, holding: @escaping @Sendable () -> Set<Int64>) throws -> Int? {
        let unsure = unsureClaims.withLock { $0 }
        guard !unsure.isEmpty else { return 0 }
        try write { _ in () }
        let held = holding()
        let released = try write { ctx in
            try ctx.releaseUnsentClaims(epoch: epoch ?? ctx.cluster?.epoch ?? 0, unsure: unsure.subtracting(held))
        }
        // Looked at: released, never committed (still queued, or claimed again since, and held), or settled.
        unsureClaims.withLock { $0.subtract(unsure) }
        return released
    }

    /// For tests only (`LOA_TEST_CLAIM_ACK_LOST=k`): the k-th claim that takes messages commits and then reports the
    /// connection lost, as when the server dies between its COMMIT and the answer. Nil: off.
    static let claimAckLostAt: Int? = ProcessInfo.processInfo.environment["LOA_TEST_CLAIM_ACK_LOST"].flatMap { Int($0) }

    /// The test hook's effect on a claim that committed (``claimAckLostAt``): the error a dead socket gives instead of the messages.
    func ackOfClaim(_ claimed: [OutgoingMessage]) throws -> [OutgoingMessage] {
        guard let k = Self.claimAckLostAt, !claimed.isEmpty, claimsTaken.add(1, ordering: .relaxed).newValue == k else { return claimed }
        unsureClaims.withLock { $0.formUnion(claimed.map(\.id)) }
        throw PostgresError(sqlState: "", message: "server closed the connection unexpectedly (LOA_TEST_CLAIM_ACK_LOST: \(claimed.count) claimed and committed)",
                            context: "committing", connectionLost: true)
    }
}

extension PGContext {
    /// See ``PostgresStore/releaseUnsentClaims(epoch:holding:)``: of `unsure`, what is `sending` under this node.
    func releaseUnsentClaims(epoch: Int64, unsure: Set<Int64>) throws -> Int? {
        var leased = false
        try query("SELECT 1 AS held FROM nodes WHERE node = ? AND epoch = ? AND lease_until > loa_now_ms() FOR SHARE",
                  [.text(node), .int(epoch)]) { _ in leased = true }
        guard leased else { return nil }
        guard !unsure.isEmpty else { return 0 }
        var released: [Int64] = []
        try query("SELECT id FROM messages WHERE id = ANY(?::bigint[]) AND state = \(PGSchema.sending) AND node = ? ORDER BY id FOR UPDATE",
                  [.text(Self.idArray(unsure.sorted())), .text(node)]) { released.append($0.int("id")) }
        for id in released {
            try record(SendOutcome(id: id, result: .requeue(notBefore: now, detail: Self.releasedDetail)))
        }
        return released.count
    }

    static let releasedDetail = "claimed when the store failed at its commit and never sent (the daemon did not hold it): back in the queue"
}

/// The ids a claim's transaction marked `sending`, read if its COMMIT ends with the connection lost.
final class ClaimAttempt: Sendable {
    let ids = Mutex<[Int64]>([])
}
