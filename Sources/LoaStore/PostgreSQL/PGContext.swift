import Foundation
import LoaCore

/// The PostgreSQL writer thread's state: the connection, and what the current transaction has emitted (delivery-log
/// lines, counter deltas). Never leaves the writer thread. The same transaction discipline as SQLite's
/// ``WriteContext``: jobs queued together run in one transaction, each in a SAVEPOINT; the transaction's log lines are
/// appended just before COMMIT together with the last seq in `log_positions` (this node's row), so a committed change
/// always has its line and a line whose transaction did not commit is cut, at once or at the next start. Each line
/// names this node (`"node"`), and the same lines go into the cluster's log in the same transaction
/// (``appendClusterEvents(_:lastSeq:)``).
final class PGContext {
    let db: PGConnection
    let log: DeliveryLogFile?
    let clock: any TimeSource
    let maskNumbers: Bool
    let logger: Logger
    /// This daemon's node (``PostgresSettings/node``).
    var node: String { db.settings.node }
    /// This node's lease: a claim checks it in its transaction.
    var cluster: PGCluster?

    private let pending = LogLineBuffer()
    private var countDeltas: [WriteContext.CountKey: Int64] = [:]
    private var nextSeq: Int64 = 1
    private var formattedTime: (millis: UnixMillis, text: [UInt8]) = (-1, [])
    /// The current transaction's start time, shared by its jobs.
    private(set) var now: UnixMillis = 0
    /// Rows the current transaction's statements changed (``PGStatement/run(_:)``'s counts).
    var changes: Int64 = 0
    let counters = WriteCounters()
    var recovery = RecoveryReport()
    /// Messages the current job's receipts made final, drained into ``PostgresStore/receiptStats``.
    var receiptLatencies: [(carrier: String, state: String, millis: Int64)] = []
    /// Whether `pending_receipts` may hold rows, read once per recording of outcomes (``record(all:)``); receipts
    /// that arrive before their send answer are kept there.
    var pendingReceiptsMayExist = true
    /// When the writer next deletes the cluster's log rows past their retention (``pruneClusterLogIfDue()``).
    var clusterLogPruneDue = MonotonicDeadline.now()

    init(db: PGConnection, log: DeliveryLogFile?, clock: any TimeSource, maskNumbers: Bool, logger: Logger) {
        self.db = db
        self.log = log
        self.clock = clock
        self.maskNumbers = maskNumbers
        self.logger = logger
        pending.keepsCampaigns = db.settings.clusterLog
    }

    func statement(_ sql: String) throws -> PGStatement { try db.prepare(sql) }

    /// Runs a statement and counts the rows it changed; returns them.
    @discardableResult
    func run(_ sql: String, _ values: [SQLValue] = []) throws -> Int {
        let n = try statement(sql).run(values)
        changes += Int64(n)
        return n
    }

    func query(_ sql: String, _ values: [SQLValue] = [], _ row: (PGRow) throws -> Void) throws {
        try statement(sql).query(values, row)
    }

    /// Repairs the delivery log against this node's committed seq (the same rules as SQLite's start) and turns this
    /// node's messages left `sending` into `unknown`.
    func startUp() throws {
        var committed: Int64?
        try query("SELECT committed_seq FROM log_positions WHERE node = ?", [.text(node)]) { committed = $0.int("committed_seq") }
        let repaired = try log?.repairAndLastSeq() ?? (lastSeq: 0, tornBytes: 0)
        var inFile = repaired.lastSeq
        if repaired.tornBytes > 0 { recovery.tornLinesCut = 1 }
        if let committed, inFile > committed {
            if let kept = try log?.truncate(afterSeq: committed) {
                recovery.uncommittedLinesCut = Int(inFile - kept)
                inFile = kept
            } else {
                logger.warning("the delivery log goes past what the store has committed, over several transactions: "
                               + "was the store restored from a backup? The lines are kept",
                               ["log.lines_past_store": "\(inFile - committed)", "store.committed_seq": "\(committed)"])
            }
        }
        nextSeq = max(committed ?? 0, inFile) + 1
        let job = PGJob({ ctx in try ctx.recoverInFlight() })
        runTransaction([job])
        if case .failure(let error)? = job.result { throw error }
    }

    /// This node's `sending` messages become `unknown` (logged, counted): their request may have left; never resent.
    private func recoverInFlight() throws {
        recovery.unknownMessages = 0
        recovery.unknownByCampaign = [:]
        try settleSending(of: node, detail: "daemon stopped while the request was in flight; not resent")
    }

    /// Runs jobs in one transaction, each in a savepoint (see the type's comment). A lost connection is opened again
    /// before the next transaction; the jobs of the transaction it broke fail with the error. Returns nil when the
    /// transaction committed, else why it failed as a whole.
    @discardableResult
    func runTransaction(_ jobs: [PGJob]) -> String? {
        now = clock.now()
        let seqAtBegin = nextSeq
        changes = 0
        var results: [Result<any Sendable, Error>] = []
        results.reserveCapacity(jobs.count)
        var appendedAt: Int64?
        do {
            if !db.isOK {
                try db.reconnect()
                try takeNode()
            }
            try db.exec("BEGIN")
            for job in jobs {
                let bytesMark = pending.count
                let linesMark = pending.lines
                let seqMark = nextSeq
                let deltasMark = countDeltas
                let changesMark = changes
                let single = jobs.count == 1
                // One job alone needs no savepoint: its failure fails the transaction, which holds nothing else.
                if !single { try db.exec("SAVEPOINT job") }
                do {
                    let value = try job.body(self)
                    if !single { try db.exec("RELEASE job") }
                    results.append(.success(value))
                } catch let error as PostgresError where error.connectionLost {
                    throw error
                } catch {
                    if single {
                        // The job's own failure (a conflict, a missing campaign), not the transaction's: the writer is well.
                        try db.exec("ROLLBACK")
                        pending.removeAll()
                        countDeltas.removeAll()
                        nextSeq = seqAtBegin
                        job.finish(.failure(error))
                        return nil
                    }
                    try db.exec("ROLLBACK TO job; RELEASE job")
                    pending.truncate(toCount: bytesMark, lines: linesMark)
                    nextSeq = seqMark
                    countDeltas = deltasMark
                    changes = changesMark
                    results.append(.failure(error))
                }
            }
            try flushCounts()
            if pending.lines > 0 {
                try run("INSERT INTO log_positions(node, committed_seq) VALUES(?, ?) ON CONFLICT(node) DO UPDATE SET committed_seq = excluded.committed_seq",
                        [.text(node), .int(nextSeq - 1)])
                try appendClusterEvents(pending, lastSeq: nextSeq - 1)
                appendedAt = try log?.append(pending.bytes)
            }
            try db.exec("COMMIT")
        } catch {
            try? db.exec("ROLLBACK")
            if let appendedAt { try? log?.truncate(toOffset: appendedAt) }
            pending.removeAll()
            countDeltas.removeAll()
            nextSeq = seqAtBegin
            for job in jobs { job.finish(.failure(error)) }
            return "\(error)"
        }
        pending.removeAll()
        counters.committed(rows: changes)
        for (job, r) in zip(jobs, results) { job.finish(r) }
        pruneClusterLogIfDue()
        return nil
    }

    /// Adds a delivery-log line to the current transaction (its `seq` is given here).
    func emit(_ e: DeliveryEvent) {
        emit(time: e.time, campaign: e.campaign, message: e.message, recipient: e.recipient, carrier: e.carrier, event: e.event,
             status: e.status, attempt: e.attempt, gatewayID: e.gatewayID, detail: e.detail)
    }

    func emit(time: UnixMillis? = nil, campaign: String, message: Int64, recipient: String?, carrier: String?, event: String, status: String,
              attempt: Int, gatewayID: String? = nil, detail: String? = nil) {
        let t = time ?? now
        if t != formattedTime.millis { formattedTime = (t, Array(ISOTime.format(t).utf8)) }
        let seq = nextSeq
        nextSeq += 1
        let shown = maskNumbers ? recipient.map(PhoneNumber.mask) : recipient
        formattedTime.text.withUnsafeBufferPointer { time in
            pending.appendLine(seq: seq, node: node, time: time, campaign: campaign, message: message, recipient: shown, carrier: carrier, event: event,
                               status: status, attempt: attempt, gatewayID: gatewayID, detail: detail)
        }
    }

    /// Moves one message (or `n`) between states in the per-(campaign, carrier, state) counters.
    func count(campaign: String, carrier: String, from: MessageState?, to: MessageState, by n: Int64 = 1) {
        if let from { countDeltas[WriteContext.CountKey(campaign: campaign, carrier: carrier, state: from.rawValue), default: 0] -= n }
        countDeltas[WriteContext.CountKey(campaign: campaign, carrier: carrier, state: to.rawValue), default: 0] += n
    }

    func moveCount(campaign: String, state: MessageState, from: String, to: String, by n: Int64) {
        countDeltas[WriteContext.CountKey(campaign: campaign, carrier: from, state: state.rawValue), default: 0] -= n
        countDeltas[WriteContext.CountKey(campaign: campaign, carrier: to, state: state.rawValue), default: 0] += n
    }

    /// This node's counter rows: no other node writes them, so nodes never wait on each other's counters.
    private func flushCounts() throws {
        guard !countDeltas.isEmpty else { return }
        for (k, v) in countDeltas.sorted(by: { ($0.key.campaign, $0.key.carrier, $0.key.state) < ($1.key.campaign, $1.key.carrier, $1.key.state) }) where v != 0 {
            try run("""
                INSERT INTO counts(campaign_id, carrier, state, node, n) VALUES(?, ?, ?, ?, ?)
                ON CONFLICT(campaign_id, carrier, state, node) DO UPDATE SET n = counts.n + excluded.n
                """, [.text(k.campaign), .text(k.carrier), .int(Int64(k.state)), .text(node), .int(v)])
        }
        countDeltas.removeAll(keepingCapacity: true)
    }
}

/// A unit of work for the PostgreSQL writer thread.
final class PGJob: @unchecked Sendable {
    // @unchecked: `result` is written once by the writer thread before `done` is signalled (or `onDone` is called)
    // and read only after that.
    let body: @Sendable (PGContext) throws -> any Sendable
    var result: Result<any Sendable, Error>?
    let done = DispatchSemaphore(value: 0)
    let onDone: (@Sendable (Result<any Sendable, Error>) -> Void)?

    init<T: Sendable>(_ body: @escaping @Sendable (PGContext) throws -> T, onDone: (@Sendable (Result<any Sendable, Error>) -> Void)? = nil) {
        self.body = { try body($0) }
        self.onDone = onDone
    }

    func finish(_ r: Result<any Sendable, Error>) {
        result = r
        if let onDone { onDone(r) } else { done.signal() }
    }
}
