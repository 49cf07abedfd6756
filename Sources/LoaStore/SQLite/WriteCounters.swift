import Synchronization

/// What the writer has written since the store opened, for `/metrics` and the benchmarks: rows and transactions.
///
/// Durable writes per recipient are what bounds batched sending (issue 18), so the benchmarks print Loa's rows
/// written per recipient beside SQLite's floor for that many writes. The writer publishes after each COMMIT;
/// readers on any thread see the figures as of the last commit.
final class WriteCounters: Sendable {
    let rows = Atomic<Int64>(0)
    let transactions = Atomic<Int64>(0)

    /// Called by the writer thread after a COMMIT with the rows that transaction changed.
    func committed(rows changed: Int64) {
        rows.add(changed, ordering: .relaxed)
        transactions.add(1, ordering: .relaxed)
    }
}

extension Store {
    /// Rows inserted, updated or deleted by the transactions this store committed since it opened (SQLite's
    /// `sqlite3_total_changes64` over each committed transaction: index entries are not rows; a job rolled back
    /// to its savepoint inside a committed transaction still counts). Divided by the recipients a run sent, it
    /// is the store's durable writes per recipient.
    public var rowsWritten: Int64 { counters.rows.load(ordering: .relaxed) }

    /// Transactions this store committed since it opened (group commits: one holds many jobs).
    public var transactionsCommitted: Int64 { counters.transactions.load(ordering: .relaxed) }
}
