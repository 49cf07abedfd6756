import Synchronization

/// What the store's writer thread is doing, kept by the writer as it works, so that readiness is read from
/// memory and costs the writer nothing.
///
/// Why: `/readyz` used to run `SELECT COUNT(*)` on the opt-out list as a writer job to see that the store
/// answers; with 2M opt-outs every probe took the writer for a full scan, and a few clients polling it cut
/// sending by an order of magnitude. The writer already knows whether it is alive: it stamps the start and
/// the end of every transaction here (two uncontended locks per transaction, next to a COMMIT).
public struct WriterHealth: Sendable, Equatable {
    /// Transactions run (committed or failed) since the store opened.
    public var transactions: Int64 = 0
    /// When the transaction running now started; nil while the writer waits for work.
    public var busySince: ContinuousClock.Instant?
    /// Why the last transaction failed as a whole (BEGIN or COMMIT: disk full, database locked), or nil when
    /// it committed.
    public var lastFailure: String?
    /// When it failed.
    public var lastFailureAt: ContinuousClock.Instant?
    /// The store is closed (or closing): no more jobs are taken.
    public var closed = false

    /// Nil when the store takes work; else why not. `stuckAfter`: how long one transaction may run before the
    /// writer counts as stuck (the longest seen are checkpoints and large ingest batches, well under a second).
    /// A failed last transaction counts for `failureCounts`: an idle writer runs no transaction that could
    /// show it recovered, and readiness must not stay down on one old failure.
    public func problem(now: ContinuousClock.Instant = .now, stuckAfter: Duration = .seconds(30),
                        failureCounts: Duration = .seconds(60)) -> String? {
        if closed { return "the store is closed" }
        if let busySince, now - busySince > stuckAfter {
            return "the store writer has been in one transaction for \(Int((now - busySince).components.seconds)) s"
        }
        if let lastFailure, let lastFailureAt, now - lastFailureAt <= failureCounts {
            return "the store's last transaction failed: \(lastFailure)"
        }
        return nil
    }
}

/// The writer's side of ``WriterHealth``.
final class WriterMonitor: Sendable {
    private let state = Mutex(WriterHealth())

    var snapshot: WriterHealth { state.withLock { $0 } }

    func began() { state.withLock { $0.busySince = .now } }

    func ended(failure: String?) {
        state.withLock {
            $0.busySince = nil
            $0.transactions += 1
            $0.lastFailure = failure
            $0.lastFailureAt = failure == nil ? nil : .now
        }
    }

    func closing() { state.withLock { $0.closed = true } }
}
