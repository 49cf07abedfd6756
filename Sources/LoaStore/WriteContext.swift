import Foundation
import LoaCore

/// The writer thread's state: the connection, cached statements, and what the current transaction
/// has emitted (delivery-log lines, counter deltas). Never leaves the writer thread.
final class WriteContext {
    let db: Connection
    let log: DeliveryLogFile?
    let clock: any TimeSource
    private var statements: [String: Statement] = [:]
    private var pendingLines: [String] = []
    private var countDeltas: [CountKey: Int64] = [:]
    private var nextSeq: Int64 = 1
    /// Outbox rows up to this seq are in the log file and can be deleted.
    private var loggedSeq: Int64 = 0
    private var deletedUpTo: Int64 = 0
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
    /// Accepted → final receipt times (ms) of the current job, drained by ``Store/apply(_:)``.
    var receiptLatencies: [Int64] = []

    init(db: Connection, log: DeliveryLogFile?, clock: any TimeSource, maskNumbers: Bool = false) throws {
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

    /// Recovers after a start: repairs the log tail, writes outbox lines the log lacks, and turns
    /// `sending` messages into `unknown`.
    func startUp() throws {
        var maxOutbox: Int64 = 0
        try statement("SELECT COALESCE(MAX(seq), 0) FROM log_outbox").query { maxOutbox = $0.int(0) }
        var metaLogged: Int64 = 0
        try statement("SELECT value FROM meta WHERE key = 'logged_seq'").query { metaLogged = Int64($0.text(0) ?? "0") ?? 0 }
        let inFile = try log?.repairAndLastSeq() ?? 0
        var missing: [String] = []
        // A row holds one transaction's lines (its seq is the last one's); a torn append may have written part
        // of it, so each line's own seq decides.
        try statement("SELECT line FROM log_outbox WHERE seq > ? ORDER BY seq").query([.int(inFile)]) { row in
            for line in (row.text(0) ?? "").split(separator: "\n") where WriteContext.seq(of: line) > inFile { missing.append(String(line)) }
        }
        if !missing.isEmpty { try log?.append(missing) }
        loggedSeq = max(maxOutbox, metaLogged)
        nextSeq = max(maxOutbox, metaLogged, inFile) + 1
        var pendingRows: Int64 = 0
        try statement("SELECT COUNT(*) FROM pending_receipts").query { pendingRows = $0.int(0) }
        hasPendingReceipts = pendingRows > 0
        let recovery = Job({ ctx in try ctx.recoverInFlight() })
        runTransaction([recovery])
        if case .failure(let error)? = recovery.result { throw error }
    }

    /// Runs jobs in one transaction, each in a savepoint; appends the log lines after the commit.
    func runTransaction(_ jobs: [Job]) {
        now = clock.now()
        let seqAtBegin = nextSeq
        var results: [Result<any Sendable, Error>] = []
        results.reserveCapacity(jobs.count)
        do {
            try db.exec("BEGIN IMMEDIATE")
            if loggedSeq > deletedUpTo {
                try statement("DELETE FROM log_outbox WHERE seq <= ?").run([.int(loggedSeq)])
                try statement("INSERT INTO meta(key, value) VALUES('logged_seq', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run([.text(String(loggedSeq))])
                deletedUpTo = loggedSeq
            }
            for job in jobs {
                let linesMark = pendingLines.count
                let seqMark = nextSeq
                let deltasMark = countDeltas
                try db.exec("SAVEPOINT job")
                do {
                    let value = try job.body(self)
                    try db.exec("RELEASE job")
                    results.append(.success(value))
                } catch {
                    try db.exec("ROLLBACK TO job; RELEASE job")
                    pendingLines.removeSubrange(linesMark...)
                    nextSeq = seqMark
                    countDeltas = deltasMark
                    results.append(.failure(error))
                }
            }
            if pendingLines.count > 0 {
                // One outbox row per transaction, not one per line: the lines survive a crash between the
                // commit and the append at a fraction of the cost.
                try statement("INSERT INTO log_outbox(seq, line) VALUES(?, ?)").run([.int(nextSeq - 1), .text(pendingLines.joined(separator: "\n"))])
            }
            try flushCounts()
            try db.exec("COMMIT")
        } catch {
            try? db.exec("ROLLBACK")
            pendingLines.removeAll()
            countDeltas.removeAll()
            nextSeq = seqAtBegin
            for job in jobs { job.finish(.failure(error)) }
            return
        }
        if !pendingLines.isEmpty {
            do {
                try log?.append(pendingLines)
                loggedSeq = nextSeq - 1
            } catch {
                // The lines stay in the outbox and are written at the next start.
                FileHandle.standardError.write(Data("loa: \(error)\n".utf8))
            }
            pendingLines.removeAll(keepingCapacity: true)
        }
        for (job, r) in zip(jobs, results) { job.finish(r) }
    }

    /// Adds a delivery-log line to the current transaction (and to the outbox).
    func emit(_ event: DeliveryEvent) throws {
        var e = event
        if maskNumbers, let r = e.recipient { e.recipient = PhoneNumber.mask(r) }
        e.seq = nextSeq
        nextSeq += 1
        let line = e.jsonLine()
        pendingLines.append(line)
    }

    /// The `seq` of a delivery-log line (`{"v":1,"seq":N,…`), or 0.
    static func seq(of line: Substring) -> Int64 {
        guard let r = line.range(of: "\"seq\":") else { return 0 }
        return Int64(line[r.upperBound...].prefix(while: \.isNumber)) ?? 0
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
