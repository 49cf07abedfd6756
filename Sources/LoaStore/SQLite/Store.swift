import Foundation
import LoaCore
import Synchronization

/// The durable store: one SQLite file in WAL mode behind one serial writer thread.
///
/// Every read and write runs as a job on the writer thread. Jobs queued while a transaction commits are
/// taken together into the next transaction (group commit), each inside its own SAVEPOINT so one failing
/// job rolls back alone. The transaction's delivery-log lines are appended to the log file just before its
/// COMMIT, and the last seq they use is stored in the same transaction: a failed commit cuts them at once,
/// a crash between append and commit leaves lines above the stored seq, cut at the next start. Calls block
/// their caller: make them from a dedicated thread (the dispatcher, an HTTP handler thread), never from
/// Swift's shared executor; async code uses ``perform(_:)``.
public final class Store: MessageStore {
    public let path: String
    private let queue = JobQueue()
    private let lock: DirectoryLock
    let checkpointer: Checkpointer
    /// Final receipts per carrier (latency, final state) and receipts overdue, for `/metrics`.
    public let receiptStats = Mutex(ReceiptStats())
    /// What opening this store recovered: messages made `unknown`, delivery-log lines repaired, the time taken.
    public let recovery: RecoveryReport
    private let monitor = WriterMonitor()
    /// Rows and transactions the writer committed (``rowsWritten``).
    let counters: WriteCounters

    /// What the writer is doing, from memory (no job is queued): for `/readyz`.
    public var writerHealth: WriterHealth { monitor.snapshot }

    /// Opens (creating if needed) `directory/loa.db`, migrates it, repairs the delivery log and turns
    /// messages a crash left in `sending` into `unknown`.
    /// `maskNumbers` writes recipients to the delivery log as `+8491****678`.
    /// `logger` takes what the store reports to the operator (a delivery log it cannot account for, say).
    public convenience init(directory: String, log: DeliveryLogFile?, clock: any TimeSource, maskNumbers: Bool = false,
                            logger: Logger = Logger(label: "loa")) throws {
        try self.init(directory: directory, log: log, clock: clock, maskNumbers: maskNumbers, checkpointWakeAt: 10_000, checkpointInlineAt: 50_000,
                      logger: logger)
    }

    /// The same, with the log sizes (pages) at which ``Checkpointer`` runs a checkpoint and at which the writer
    /// runs one itself.
    init(directory: String, log: DeliveryLogFile?, clock: any TimeSource, maskNumbers: Bool, checkpointWakeAt: Int32, checkpointInlineAt: Int32,
         logger: Logger = Logger(label: "loa")) throws {
        let oldMask = umask(0o077)  // the database and its -wal/-shm files hold phone numbers: 0600
        defer { umask(oldMask) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        path = directory + "/loa.db"
        // One store per data directory: a second daemon on it would send the same campaigns and, starting, turn
        // the first one's messages in flight into `unknown`.
        // Should opening fail below, the lock goes (and is released) with this half-built store.
        lock = try DirectoryLock(directory: directory)
        let db = try Connection(path: path)
        // SQLite's default page cache (2 MiB), not a large one: every COMMIT truncates the page cache to the
        // database size (pager_end_transaction), a walk of its hash table that grows with the cache. With
        // 64 MiB that walk took 5-10% of the writer's time when sending, and neither ingest nor claims were
        // faster for the larger cache (Tests/Benchmarks/store-path.sh, ingest.sh).
        try db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY")
        chmod(path, 0o600)
        try Schema.migrate(db)
        // Checkpoints run on a thread of their own (``Checkpointer``); the WAL hook replaces SQLite's automatic one.
        let checkpointer = try Checkpointer(path: path, wakeAt: checkpointWakeAt, inlineAt: checkpointInlineAt)
        self.checkpointer = checkpointer
        checkpointer.attach(to: db)
        let context: WriteContext
        do {
            context = try WriteContext(db: db, log: log, clock: clock, maskNumbers: maskNumbers, checkpointer: checkpointer, logger: logger)
            let started = DispatchTime.now().uptimeNanoseconds
            try context.startUp()
            context.recovery.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            recovery = context.recovery
            counters = context.counters
        } catch {
            checkpointer.detach(from: db)
            checkpointer.stop()
            throw error
        }
        let q = queue
        let monitor = monitor
        let handoff = Handoff(value: context)  // from here on only the writer thread touches it
        queue.worker.start { worker in
            Store.writerLoop(context: handoff.value, queue: q, worker: worker, monitor: monitor)
        }
    }

    /// Stops the writer after the jobs already queued, then lets go of the data directory; later calls throw
    /// ``StoreError/closed``.
    public func close() {
        monitor.closing()
        queue.close()
        queue.worker.stop()
        lock.release()
    }

    /// Runs `body` on the writer thread inside a transaction and returns its result once committed.
    func write<T: Sendable>(_ body: @escaping @Sendable (WriteContext) throws -> T) throws -> T {
        let job = Job(body)
        try queue.push(job)
        job.done.wait()
        return try job.result!.get() as! T
    }

    /// Queues a job without waiting for it.
    func queueJob(_ job: Job) throws {
        try queue.push(job)
    }

    /// The async form of ``write(_:)``: suspends without blocking a shared-executor thread.
    func perform<T: Sendable>(_ body: @escaping @Sendable (WriteContext) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, Error>) in
            let job = Job(body) { result in cont.resume(with: result.map { $0 as! T }) }
            do { try queue.push(job) } catch { cont.resume(throwing: error) }
        }
    }

    private static func writerLoop(context: WriteContext, queue: JobQueue, worker: Worker, monitor: WriterMonitor) {
        /// Runs what is queued, in transactions of everything queued at their start, until nothing is.
        func runQueued() {
            while case let jobs = queue.takeAll(), !jobs.isEmpty {
                monitor.began()
                monitor.ended(failure: context.runTransaction(jobs))
            }
        }
        repeat { runQueued() } while worker.wait()
        // Stopping: the queue was closed first, so the jobs taken here are the last.
        runQueued()
        context.checkpointer.detach(from: context.db)
        context.checkpointer.stop()
    }
}

/// A unit of work for the writer thread.
final class Job: @unchecked Sendable {
    // @unchecked: `result` is written once by the writer thread before `done` is signalled (or `onDone`
    // is called) and read only after that.
    let body: @Sendable (WriteContext) throws -> any Sendable
    var result: Result<any Sendable, Error>?
    let done = DispatchSemaphore(value: 0)
    let onDone: (@Sendable (Result<any Sendable, Error>) -> Void)?

    init<T: Sendable>(_ body: @escaping @Sendable (WriteContext) throws -> T, onDone: (@Sendable (Result<any Sendable, Error>) -> Void)? = nil) {
        self.body = { try body($0) }
        self.onDone = onDone
    }

    func finish(_ r: Result<any Sendable, Error>) {
        result = r
        if let onDone { onDone(r) } else { done.signal() }
    }
}

/// The writer's inbox, and the writer thread that empties it.
final class JobQueue: Sendable {
    private struct State {
        var jobs: [Job] = []
        var closed = false
    }
    private let state = Mutex(State())
    /// Woken by every push; stopped after ``close()``.
    let worker = Worker(name: "loa-store")

    func push(_ job: Job) throws {
        let ok = state.withLock { s -> Bool in
            if s.closed { return false }
            s.jobs.append(job)
            return true
        }
        guard ok else { throw StoreError.closed }
        worker.wake()
    }

    /// Everything queued (empty: nothing).
    func takeAll() -> [Job] {
        state.withLock { s in
            defer { s.jobs.removeAll(keepingCapacity: true) }
            return s.jobs
        }
    }

    /// Refuses jobs from now on (``push(_:)`` throws ``StoreError/closed``).
    func close() {
        state.withLock { $0.closed = true }
    }
}
