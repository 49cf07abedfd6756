import Foundation
import LoaCore
import Synchronization

/// The store on PostgreSQL through libpq (issue 21's first step), behind ``MessageStore``: the same guarantees and the
/// same behavioural tests as SQLite's ``Store``.
///
/// One writer thread owns one connection and runs every call as a job, jobs queued together in one transaction (group
/// commit, each in a savepoint), exactly as the SQLite store does: every libpq call blocks, so none runs on Swift's
/// shared executor, and the delivery log is appended just before COMMIT with its last seq stored in the same
/// transaction. A lost connection (PostgreSQL restarting) fails the transaction it broke, with an error that says so;
/// the next transaction reconnects, takes this node's lock again, and goes on.
///
/// Claims are `SELECT … FOR UPDATE SKIP LOCKED` and mark each message `sending` with this node's name before the call
/// returns, so several daemons on one database (a later step) never take the same message and a node's recovery
/// touches only its own.
public final class PostgresStore: MessageStore {
    public let settings: PostgresSettings
    let queue = PGJobQueue()
    private let lock: DirectoryLock?
    public let receiptStats = Mutex(ReceiptStats())
    public let recovery: RecoveryReport
    private let monitor = WriterMonitor()
    private let counters: WriteCounters
    /// This node's lease and the cluster's members (``PGCluster``), renewed on a thread and connection of their own.
    let cluster: PGCluster
    /// The cluster's delivery log as this node's followers read it (``PGClusterLog``).
    let clusterLog: PGClusterLogReader
    /// Claims that took messages, counted for the test hook of a lost COMMIT acknowledgement (``ackOfClaim(_:)``).
    let claimsTaken = Atomic<Int>(0)
    /// The messages of claims whose transaction ended with the connection lost: committed or not, nobody here knows
    /// (``releaseUnsentClaims(epoch:holding:)`` looks at them, and only at them).
    let unsureClaims = Mutex(Set<Int64>())
    /// Receipts other nodes applied for this node's messages (``PGReceiptNotes``), heard once the dispatcher asks.
    let receiptNotes: PGReceiptListener

    public var writerHealth: WriterHealth { monitor.snapshot }
    public var rowsWritten: Int64 { counters.rows.load(ordering: .relaxed) }
    public var transactionsCommitted: Int64 { counters.transactions.load(ordering: .relaxed) }

    /// Connects, migrates, takes this node (one daemon per node), repairs the delivery log and turns this node's
    /// messages left `sending` into `unknown`. `directory`: the data directory (the delivery log's), locked as SQLite's
    /// is so that two daemons never write one log.
    public init(settings: PostgresSettings, directory: String?, log: DeliveryLogFile?, clock: any TimeSource, maskNumbers: Bool = false,
                logger: Logger = Logger(label: "loa")) throws {
        self.settings = settings
        clusterLog = PGClusterLogReader(settings: settings, logger: logger)
        receiptNotes = PGReceiptListener(settings: settings, logger: logger)
        if let directory {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            lock = try DirectoryLock(directory: directory)
        } else {
            lock = nil
        }
        let db = try PGConnection(settings: settings)
        try PGSchema.migrate(db)
        let context = PGContext(db: db, log: log, clock: clock, maskNumbers: maskNumbers, logger: logger)
        try context.takeNode()
        let cluster = PGCluster(node: settings.node, leaseMillis: settings.leaseMillis, logger: logger)
        // The lease before the recovery of this node's claims: from here a survivor waits for it to end.
        // Its local end counts from before the statement was sent, as every renewal's does.
        let sentAt = PGCluster.bootNanos()
        cluster.granted(epoch: try context.acquireLease(settings.leaseMillis), sentAt: sentAt)
        context.cluster = cluster
        self.cluster = cluster
        let started = DispatchTime.now().uptimeNanoseconds
        try context.startUp()
        context.recovery.seconds = max(1e-9, Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
        recovery = context.recovery
        counters = context.counters
        let q = queue
        let monitor = monitor
        let handoff = Handoff(value: context)
        queue.worker.start { worker in
            let context = handoff.value
            func runQueued() {
                while case let jobs = q.takeAll(), !jobs.isEmpty {
                    monitor.began()
                    monitor.ended(failure: context.runTransaction(jobs))
                }
            }
            repeat { runQueued() } while worker.wait()
            runQueued()
            context.db.finish()
        }
        do {
            cluster.start(db: try PGConnection(settings: settings), store: self)
        } catch {
            close()
            throw error
        }
    }

    public func close() {
        clusterLog.stop()
        receiptNotes.stop()
        cluster.stop()
        monitor.closing()
        queue.close()
        queue.worker.stop()
        lock?.release()
    }

    /// Runs `body` on the writer thread inside a transaction and returns its result once committed.
    @discardableResult
    func write<T: Sendable>(_ body: @escaping @Sendable (PGContext) throws -> T) throws -> T {
        let job = PGJob(body)
        try queue.push(job)
        job.done.wait()
        return try job.result!.get() as! T
    }

    /// Reopens the delivery log now on the writer thread if SIGHUP asked for it (see ``Store/reopenDeliveryLog()``).
    public func reopenDeliveryLog() {
        try? queue.push(PGJob { ctx in ctx.log?.reopenIfRequested() })
    }
}

extension PGContext {
    /// One daemon per node: a session advisory lock on (schema, node), taken again after a reconnect; `nodes` names the
    /// holder for the error a second daemon gets.
    func takeNode() throws {
        var ok = false
        try query("SELECT pg_try_advisory_lock(hashtext(current_schema() || '/node/' || ?)) AS ok", [.text(node)]) { ok = $0.int("ok") != 0 }
        guard ok else {
            var holder = ""
            try query("SELECT pid, host FROM nodes WHERE node = ?", [.text(node)]) { holder = "pid \($0.int("pid")) on \($0.text("host") ?? "?")" }
            throw StoreError.conflict("node \(node) of \(db.settings.redactedURL) is in use by another loa process\(holder.isEmpty ? "" : " (\(holder))"); one daemon per node")
        }
        try run("""
            INSERT INTO nodes(node, pid, host, started_at) VALUES(?, ?, ?, ?)
            ON CONFLICT(node) DO UPDATE SET pid = excluded.pid, host = excluded.host, started_at = excluded.started_at
            """, [.text(node), .int(Int64(getpid())), .text(ProcessInfo.processInfo.hostName), .int(clock.now())])
    }
}

/// The PostgreSQL writer's inbox, and the writer thread that empties it.
final class PGJobQueue: Sendable {
    private struct State {
        var jobs: [PGJob] = []
        var closed = false
    }
    private let state = Mutex(State())
    let worker = Worker(name: "loa-pg-store")

    func push(_ job: PGJob) throws {
        let ok = state.withLock { s -> Bool in
            if s.closed { return false }
            s.jobs.append(job)
            return true
        }
        guard ok else { throw StoreError.closed }
        worker.wake()
    }

    func takeAll() -> [PGJob] {
        state.withLock { s in
            defer { s.jobs.removeAll(keepingCapacity: true) }
            return s.jobs
        }
    }

    func close() { state.withLock { $0.closed = true } }
}
