import Foundation
import LoaCore

/// The writer thread's state: the connection, cached statements, and what the current transaction
/// has emitted (delivery-log lines, counter deltas). Never leaves the writer thread.
final class WriteContext {
    let db: Connection
    let log: DeliveryLogFile?
    let clock: any TimeSource
    private var statements: [String: Statement] = [:]
    /// The bulk acceptance UPDATEs by shape (``recordAccepted``): rows × 2 + 1 when fresh.
    var acceptedStatements: [Int: Statement] = [:]
    /// The current transaction's delivery-log lines, newline-terminated.
    private let pending = LogLineBuffer()
    private var countDeltas: [CountKey: Int64] = [:]
    private var nextSeq: Int64 = 1
    /// The last time formatted for a log line: a transaction's lines share one.
    private var formattedTime: (millis: UnixMillis, text: [UInt8]) = (-1, [])
    /// The current transaction's start time, shared by its jobs.
    private(set) var now: UnixMillis = 0

    struct CountKey: Hashable {
        var campaign: String
        var carrier: String
        var state: Int
    }

    let maskNumbers: Bool
    /// Whether `pending_receipts` may hold rows (saves a lookup per accepted message when it cannot).
    var hasPendingReceipts = false
    /// Messages the current job's receipts made final (carrier, final state, accepted → final receipt in ms),
    /// drained by ``Store/apply(_:)`` into ``Store/receiptStats``.
    var receiptLatencies: [(carrier: String, state: String, millis: Int64)] = []

    /// Runs the checkpoints off this thread.
    let checkpointer: Checkpointer
    /// Rows and transactions committed, published after each COMMIT.
    let counters = WriteCounters()
    /// Messages claimed fresh and not yet settled (see ``InFlightBook``).
    var book = InFlightBook()

    /// Takes what the store reports to the operator.
    let logger: Logger

    init(db: Connection, log: DeliveryLogFile?, clock: any TimeSource, maskNumbers: Bool = false, checkpointer: Checkpointer,
         logger: Logger = Logger(label: "loa")) throws {
        self.checkpointer = checkpointer
        self.logger = logger
        self.maskNumbers = maskNumbers
        self.db = db
        self.log = log
        self.clock = clock
    }

    func statement(_ sql: String) throws -> Statement {
        if let s = statements[sql] { return s }
        let s = try db.prepare(sql)
        statements[sql] = s
        return s
    }

    /// What ``startUp()`` found and repaired (its `seconds` are set by the caller).
    var recovery = RecoveryReport()

    /// Recovers after a start: repairs the log tail, cuts lines of a transaction that never committed, writes
    /// lines an older version left in the outbox, and turns messages left in flight (`sending` rows, and the unsettled
    /// messages the remaining claim records name) into `unknown`; the figures go
    /// to ``recovery``.
    func startUp() throws {
        var maxOutbox: Int64 = 0
        try statement("SELECT COALESCE(MAX(seq), 0) AS seq FROM log_outbox").query { maxOutbox = $0.int("seq") }
        var metaLogged: Int64 = 0
        try statement("SELECT value FROM meta WHERE key = 'logged_seq'").query { metaLogged = Int64($0.text("value") ?? "0") ?? 0 }
        var committed: Int64?
        try statement("SELECT value FROM meta WHERE key = 'committed_seq'").query { committed = Int64($0.text("value") ?? "0") ?? 0 }
        let repaired = try log?.repairAndLastSeq() ?? (lastSeq: 0, tornBytes: 0)
        var inFile = repaired.lastSeq
        if repaired.tornBytes > 0 { recovery.tornLinesCut = 1 }
        if let committed, inFile > max(committed, maxOutbox, metaLogged) {
            // Lines are appended just before COMMIT: a crash in between leaves lines of a transaction that
            // never happened. They go; the seq they used is given out again. Lines of several transactions
            // are not that (a store restored from a backup, say): they stay, and numbering goes on after them.
            if let kept = try log?.truncate(afterSeq: max(committed, maxOutbox, metaLogged)) {
                // One transaction's lines have consecutive seqs: those above the last line kept went.
                recovery.uncommittedLinesCut = Int(inFile - kept)
                inFile = kept
            } else {
                logger.warning("the delivery log goes past what the store has committed, over several transactions: "
                               + "was the store restored from a backup? The lines are kept",
                               ["log.lines_past_store": "\(inFile - committed)", "store.committed_seq": "\(committed)"])
            }
        }
        var missing: [String] = []
        // Stores written by an older version keep a transaction's lines in the outbox until they are in the
        // file (a row holds one transaction's lines; a torn append may have written part of it, so each
        // line's own seq decides).
        try statement("SELECT line FROM log_outbox WHERE seq > ? ORDER BY seq").query([.int(inFile)]) { row in
            for line in (row.text("line") ?? "").split(separator: "\n") where (DeliveryLogFile.seq(in: line.utf8) ?? 0) > inFile { missing.append(String(line)) }
        }
        if !missing.isEmpty, let log {
            try log.append(missing)
            recovery.outboxLinesWritten = missing.count
        }
        if maxOutbox > 0 { try db.exec("DELETE FROM log_outbox") }
        nextSeq = max(maxOutbox, metaLogged, committed ?? 0, inFile) + 1
        var pendingRows: Int64 = 0
        try statement("SELECT COUNT(*) AS n FROM pending_receipts").query { pendingRows = $0.int("n") }
        hasPendingReceipts = pendingRows > 0
        let recovery = Job({ ctx in try ctx.recoverInFlight() })
        runTransaction([recovery])
        if case .failure(let error)? = recovery.result { throw error }
    }

    /// Runs jobs in one transaction, each in a savepoint. The transaction's delivery-log lines are appended
    /// just before COMMIT, together with the last seq in `meta`: a line is never missing for a committed
    /// change, and lines of a transaction that did not commit are cut (at once, or at the next start).
    /// Returns nil when the transaction committed, else why it failed as a whole (every job then failed).
    @discardableResult
    func runTransaction(_ jobs: [Job]) -> String? {
        now = clock.now()
        let seqAtBegin = nextSeq
        var results: [Result<any Sendable, Error>] = []
        results.reserveCapacity(jobs.count)
        var appendedAt: Int64?
        let changesAtBegin = db.totalChanges
        do {
            try statement("BEGIN IMMEDIATE").run()
            for job in jobs {
                let bytesMark = pending.count
                let linesMark = pending.lines
                let seqMark = nextSeq
                let deltasMark = countDeltas
                let bookMark = book.mark
                // Prepared once: a receipt is one job, and parsing these twice per job cost more than the job.
                try statement("SAVEPOINT job").run()
                do {
                    let value = try job.body(self)
                    try statement("RELEASE job").run()
                    results.append(.success(value))
                } catch {
                    try db.exec("ROLLBACK TO job; RELEASE job")
                    pending.truncate(toCount: bytesMark, lines: linesMark)
                    nextSeq = seqMark
                    countDeltas = deltasMark
                    book.undo(to: bookMark)
                    results.append(.failure(error))
                }
            }
            try flushCounts()
            if pending.lines > 0 {
                try statement("INSERT INTO meta(key, value) VALUES('committed_seq', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
                    .run([.text(String(nextSeq - 1))])
                appendedAt = try log?.append(pending.bytes)
            }
            try statement("COMMIT").run()
        } catch {
            try? db.exec("ROLLBACK")
            if let appendedAt { try? log?.truncate(toOffset: appendedAt) }
            pending.removeAll()
            countDeltas.removeAll()
            book.undo(to: 0)
            nextSeq = seqAtBegin
            for job in jobs { job.finish(.failure(error)) }
            return "\(error)"
        }
        pending.removeAll()
        counters.committed(rows: db.totalChanges - changesAtBegin)
        book.commit()
        for (job, r) in zip(jobs, results) { job.finish(r) }
        return nil
    }

    /// Adds a delivery-log line to the current transaction (its `seq` is given here).
    func emit(_ e: DeliveryEvent) throws {
        emit(time: e.time, campaign: e.campaign, message: e.message, recipient: e.recipient, carrier: e.carrier, event: e.event,
             status: e.status, attempt: e.attempt, gatewayID: e.gatewayID, detail: e.detail)
    }

    /// ``emit(_:)`` from the fields, at the transaction's time unless given: the per-recipient paths (claim,
    /// outcome) write their lines this way, without building a ``DeliveryEvent``.
    func emit(time: UnixMillis? = nil, campaign: String, message: Int64, recipient: String?, carrier: String?, event: String, status: String,
              attempt: Int, gatewayID: String? = nil, detail: String? = nil) {
        let t = time ?? now
        if t != formattedTime.millis { formattedTime = (t, Array(ISOTime.format(t).utf8)) }
        let seq = nextSeq
        nextSeq += 1
        let shown = maskNumbers ? recipient.map(PhoneNumber.mask) : recipient
        formattedTime.text.withUnsafeBufferPointer { time in
            pending.appendLine(seq: seq, time: time, campaign: campaign, message: message, recipient: shown, carrier: carrier, event: event,
                               status: status, attempt: attempt, gatewayID: gatewayID, detail: detail)
        }
    }

    /// Moves one message between states in the per-(campaign, carrier, state) counters.
    func count(campaign: String, carrier: String, from: MessageState?, to: MessageState, by n: Int64 = 1) {
        if let from { countDeltas[CountKey(campaign: campaign, carrier: carrier, state: from.rawValue), default: 0] -= n }
        countDeltas[CountKey(campaign: campaign, carrier: carrier, state: to.rawValue), default: 0] += n
    }

    /// Moves `n` messages of one state from one carrier's counter to another's (failover).
    func moveCount(campaign: String, state: MessageState, from: String, to: String, by n: Int64) {
        countDeltas[CountKey(campaign: campaign, carrier: from, state: state.rawValue), default: 0] -= n
        countDeltas[CountKey(campaign: campaign, carrier: to, state: state.rawValue), default: 0] += n
    }

    private func flushCounts() throws {
        guard !countDeltas.isEmpty else { return }
        let st = try statement("""
            INSERT INTO counts(campaign_id, carrier, state, n) VALUES(?, ?, ?, ?)
            ON CONFLICT(campaign_id, carrier, state) DO UPDATE SET n = n + excluded.n
            """)
        for (k, v) in countDeltas where v != 0 {
            try st.run([.text(k.campaign), .text(k.carrier), .int(Int64(k.state)), .int(v)])
        }
        countDeltas.removeAll(keepingCapacity: true)
    }
}

/// Moves a value across a thread hand-off that the compiler cannot see is safe.
struct Handoff<T>: @unchecked Sendable {
    let value: T
}
