import Foundation
import LoaCore
import Synchronization

/// The cluster's delivery log on PostgreSQL (issue 21): every node's lines in `cluster_events` (migration 4), written
/// by each node's writer in the transaction that made them, and read in event order from any node.
///
/// **Writing.** One statement per transaction, whatever its number of lines: the lines go as one text parameter (the
/// bytes appended to the node's own file, split on newlines by the server: a JSON line holds no raw newline) and
/// their campaigns as another, unnested side by side, each row numbered from the transaction's first `seq`; the same
/// statement calls `pg_notify('loa_events', node)`, which PostgreSQL delivers at COMMIT, so followers wake when the
/// rows are visible and never before. With `store.cluster_log: false` nothing is written.
///
/// **Retention.** Rows older than `store.cluster_log_days` are deleted by the writer every five minutes, from the low
/// end of the key, at most ``pruneBatch`` rows a transaction and ``pruneBatches`` transactions a turn, so a large
/// backlog is worked off over several turns without holding the writer.
///
/// **Reading.** ``PGClusterLogReader``: pages on a connection of its own, shared by the node's followers one page at
/// a time; a `LISTEN loa_events` on a second connection and thread of its own counts the commits; the order rule is
/// ``ClusterLogFollower``'s.
enum PGClusterLog {
    static let pruneBatch = 5_000
    static let pruneBatches = 20
    static let pruneEveryNanos: UInt64 = 300 * 1_000_000_000
    static let channel = "loa_events"
}

extension PGContext {
    /// Inserts the transaction's lines (`pending`, the last with `lastSeq`) into the cluster's log, and notifies the
    /// followers at COMMIT. Just before COMMIT, after `log_positions`: the transaction already holds a transaction id
    /// when it draws the events' ids (``ClusterLogFollower``'s rule needs it).
    func appendClusterEvents(_ pending: LogLineBuffer, lastSeq: Int64) throws {
        guard db.settings.clusterLog, pending.lines > 0 else { return }
        let bytes = pending.bytes
        // The lines without the last newline: `string_to_array` then gives exactly one element per line.
        let lines = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 1)]), as: UTF8.self)
        // Campaign ids are letters, digits, '.', '_' and '-' (``CampaignRules/idProblem(_:)``): no newline.
        let campaigns = pending.campaigns.joined(separator: "\n")
        try run("""
            WITH wake AS (SELECT pg_notify('\(PGClusterLog.channel)', ?))
            INSERT INTO cluster_events(node, seq, campaign, at, line)
            SELECT ?, ? + e.n, COALESCE(e.campaign, ''), ?, e.line
            FROM wake, unnest(string_to_array(?, E'\\n'), string_to_array(?, E'\\n')) WITH ORDINALITY AS e(line, campaign, n)
            """, [.text(node), .text(node), .int(lastSeq - Int64(pending.lines)), .int(now), .text(lines), .text(campaigns)])
    }

    /// Deletes the cluster's log rows older than the retention, in bounded batches (see ``PGClusterLog``), at most
    /// once every five minutes; a failure is logged and tried again at the next turn.
    func pruneClusterLogIfDue() {
        guard db.settings.clusterLog, clusterLogPruneDue.hasPassed else { return }
        clusterLogPruneDue = MonotonicDeadline(nanoseconds: MonotonicDeadline.now().nanoseconds + PGClusterLog.pruneEveryNanos)
        let cutoff = clock.now() - Int64(db.settings.clusterLogDays) * 86_400_000
        do {
            for _ in 0..<PGClusterLog.pruneBatches {
                guard try pruneClusterLog(before: cutoff, batch: PGClusterLog.pruneBatch) == PGClusterLog.pruneBatch else { break }
            }
        } catch {
            try? db.exec("ROLLBACK")
            logger.warning("the cluster's log could not be pruned; tried again in five minutes", ["error": "\(error)"])
        }
    }

    /// One batch: the rows older than `cutoff` among the `batch` lowest ids, in a transaction of its own. Returns how
    /// many went. The ids rise with time (within a transaction's length), so the old rows are the low ones.
    @discardableResult
    func pruneClusterLog(before cutoff: UnixMillis, batch: Int) throws -> Int {
        try db.exec("BEGIN")
        let n = try statement("""
            DELETE FROM cluster_events WHERE id IN (SELECT id FROM cluster_events ORDER BY id LIMIT ?) AND at < ?
            """).run([.int(Int64(batch)), .int(cutoff)])
        try db.exec("COMMIT")
        return n
    }
}

/// The cluster's log as a node's followers read it: pages on a connection of their own (one page at a time, in
/// turn: a page is one short read-only transaction), and the news of commits from a `LISTEN` on another connection
/// and a thread of their own (`loa-pg-listen`). Both connections open at the first page, so a node nobody follows
/// holds none.
final class PGClusterLogReader: Sendable {
    private let settings: PostgresSettings
    private let logger: Logger
    private let reader = Mutex<PGConnection?>(nil)
    private let news = ConditionBox<UInt64>(0)
    private let listener = Worker(name: "loa-pg-listen")

    init(settings: PostgresSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    var newsCount: UInt64 { news.withLock { $0 } }

    func waitForNews(after version: UInt64, until deadline: MonotonicDeadline) -> UInt64 {
        news.wait(until: deadline) { $0 > version ? $0 : nil } ?? newsCount
    }

    private func announce() { news.withLockWaking { $0 += 1; return true } }

    /// A page after `after` (see ``ClusterLogStore/clusterLogPage(after:campaign:limit:)``): a read-only transaction
    /// in REPEATABLE READ, so the `xmin` returned is that of the snapshot the rows were read in.
    func page(after: Int64, campaign: String?, limit: Int) throws -> ClusterLogPage {
        startListening()
        let settings = settings
        return try reader.withLock { db throws -> ClusterLogPage in
            let conn = try Self.open(&db, settings)
            do {
                try conn.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                var page = ClusterLogPage(rows: [], xmin: 0, horizon: 0)
                try conn.prepare("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin").query { r in
                    page.xmin = UInt64(max(0, r.int("xmin")))
                }
                try conn.prepare("""
                    SELECT id, CASE WHEN ?::text IS NULL OR campaign = ? THEN line END AS line FROM cluster_events WHERE id > ? ORDER BY id LIMIT ?
                    """).query([.opt(campaign), .opt(campaign), .int(after), .int(Int64(limit))]) { r in
                    page.rows.append(ClusterLogRow(id: r.int("id"), line: r.text("line")))
                }
                // A gap: a transaction id given out now is above every one given out before the snapshot (one id
                // burnt per such page; none while the log runs without gaps).
                var expected = after + 1
                let gap = page.rows.contains { row in
                    defer { expected = row.id + 1 }
                    return row.id != expected
                }
                if gap {
                    try conn.prepare("SELECT pg_current_xact_id()::text::bigint AS horizon").query { page.horizon = UInt64(max(0, $0.int("horizon"))) }
                }
                try conn.exec("COMMIT")
                return page
            } catch {
                try? conn.exec("ROLLBACK")
                throw error
            }
        }
    }

    /// The highest id visible now (0: none).
    func lastID() throws -> Int64 {
        startListening()
        let settings = settings
        return try reader.withLock { db throws -> Int64 in
            let conn = try Self.open(&db, settings)
            var last: Int64 = 0
            try conn.prepare("SELECT COALESCE(MAX(id), 0) AS last FROM cluster_events").query { last = $0.int("last") }
            return last
        }
    }

    /// Where a follower starts without a place (``ClusterLogStart``): the highest id, the ids missing below it in the
    /// last ``ClusterLogStart/window``, and the first of the last `lines` lines, in one snapshot.
    func start(lines: Int, campaign: String?) throws -> ClusterLogStart {
        startListening()
        let settings = settings
        return try reader.withLock { db throws -> ClusterLogStart in
            let conn = try Self.open(&db, settings)
            do {
                try conn.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                var last: Int64 = 0
                try conn.prepare("SELECT COALESCE(MAX(id), 0) AS last FROM cluster_events").query { last = $0.int("last") }
                var gaps: [ClosedRange<Int64>] = []
                try conn.prepare("""
                    SELECT prev + 1 AS lo, id - 1 AS hi FROM (SELECT id, lag(id) OVER (ORDER BY id) AS prev FROM cluster_events WHERE id > ?) g
                    WHERE id > prev + 1 ORDER BY id
                    """).query([.int(last - ClusterLogStart.window)]) { r in gaps.append(r.int("lo")...r.int("hi")) }
                var first: Int64?
                if lines > 0 {
                    // The `lines`-th from the end, or the first there is when there are fewer.
                    try conn.prepare("""
                        SELECT MIN(id) AS first FROM (SELECT id FROM cluster_events WHERE ?::text IS NULL OR campaign = ? ORDER BY id DESC LIMIT ?) l
                        """).query([.opt(campaign), .opt(campaign), .int(Int64(lines))]) { r in first = r.isNull("first") ? nil : r.int("first") }
                }
                try conn.exec("COMMIT")
                return ClusterLogStart(last: last, gaps: gaps, firstLine: first)
            } catch {
                try? conn.exec("ROLLBACK")
                throw error
            }
        }
    }

    /// See ``ClusterLogStore/clusterLogPruned(after:)``: the rows up to `after` are all gone (retention deletes from
    /// the low end, so a kept row at or below it means nothing above it was deleted), and the first kept row is not
    /// the next id (none kept above it: nothing to miss yet).
    func pruned(after: Int64) throws -> Int64? {
        guard after > 0 else { return nil }
        let settings = settings
        return try reader.withLock { db throws -> Int64? in
            let conn = try Self.open(&db, settings)
            var below: Int64 = 0
            var first: Int64 = 0
            try conn.prepare("""
                SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM cluster_events WHERE id <= ? LIMIT 1) b) AS below,
                       COALESCE((SELECT MIN(id) FROM cluster_events WHERE id > ?), 0) AS first
                """).query([.int(after), .int(after)]) { r in
                below = r.int("below")
                first = r.int("first")
            }
            return below > 0 || first == 0 || first == after + 1 ? nil : first
        }
    }

    /// The reader's connection, opened (again) if it is not usable.
    private static func open(_ db: inout PGConnection?, _ settings: PostgresSettings) throws -> PGConnection {
        if let conn = db, conn.isOK { return conn }
        db?.finish()
        db = nil
        let conn = try PGConnection(settings: settings)
        db = conn
        return conn
    }

    /// Starts the listener once.
    private func startListening() {
        let settings = settings
        let logger = logger
        listener.start { [self] worker in
            PGConnection.listen(PGClusterLog.channel, settings: settings, on: worker) { again in
                if again { logger.notice("the cluster log's listener is connected again", ["store.node": settings.node]) }
                // Commits may have come while it was away: every follower reads again.
                announce()
            } failed: { error, first in
                if first {
                    logger.warning("the cluster log's listener cannot connect; followers read every second meanwhile",
                                   ["store.node": settings.node, "error": "\(error)"])
                }
                announce()
            } heard: { payloads in
                if !payloads.isEmpty { announce() }
            }
        }
    }

    func stop() {
        listener.stop(by: .after(seconds: 5))
        reader.withLock { db in
            db?.finish()
            db = nil
        }
    }
}

extension PostgresStore: ClusterLogStore {
    public var clusterLogEnabled: Bool { settings.clusterLog }

    public func clusterLogPage(after: Int64, campaign: String?, limit: Int) throws -> ClusterLogPage {
        try clusterLog.page(after: after, campaign: campaign, limit: limit)
    }

    public func clusterLogLastID() throws -> Int64 { try clusterLog.lastID() }

    public func clusterLogStart(lines: Int, campaign: String?) throws -> ClusterLogStart {
        try clusterLog.start(lines: lines, campaign: campaign)
    }

    public func clusterLogPruned(after: Int64) throws -> Int64? { try clusterLog.pruned(after: after) }

    public var clusterLogNews: UInt64 { clusterLog.newsCount }

    public func waitForClusterLog(after version: UInt64, until deadline: MonotonicDeadline) -> UInt64 {
        clusterLog.waitForNews(after: version, until: deadline)
    }
}
