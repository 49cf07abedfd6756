import LoaCore

/// A store that keeps the whole cluster's delivery log (PostgreSQL: every node's lines in `cluster_events`), read in
/// event order from any node: `loa tail --cluster` and `GET /api/v1/log/stream?scope=cluster`. Kept out of
/// ``MessageStore``: SQLite's daemon is a cluster of one, whose log is its own file.
///
/// A reader takes pages after an id (``clusterLogPage(after:campaign:limit:)``) and puts them through a
/// ``ClusterLogFollower``, which decides what may be given in order; between pages it waits for news
/// (``waitForClusterLog(after:until:)``), which the store's `LISTEN` thread announces as transactions commit.
public protocol ClusterLogStore: AnyObject, Sendable {
    /// False when the config turned the cluster's log off (`store.cluster_log: false`): nothing is written to it.
    var clusterLogEnabled: Bool { get }
    /// Up to `limit` events with an id above `after`, in id order, with the snapshot they were read in. With a
    /// campaign, the other campaigns' rows come without their line (the follower must see every id to tell a gap).
    func clusterLogPage(after: Int64, campaign: String?, limit: Int) throws -> ClusterLogPage
    /// The highest id visible now (0 when the log is empty).
    func clusterLogLastID() throws -> Int64
    /// Where a follower starts without a place of its own: "from now" (`lines` 0), or with the last `lines` lines (of
    /// `campaign`, when given), in one snapshot (see ``ClusterLogStart``).
    func clusterLogStart(lines: Int, campaign: String?) throws -> ClusterLogStart
    /// When a follower resumes after `after` (> 0) and retention (`store.cluster_log_days`) has deleted the rows up
    /// to it: the first id kept above it, when that is not the next id; nil otherwise (nothing it could miss).
    func clusterLogPruned(after: Int64) throws -> Int64?
    /// The count of wake-ups so far: it grows when a transaction that wrote events commits (or the listener
    /// reconnected, when some may have been missed).
    var clusterLogNews: UInt64 { get }
    /// Waits until ``clusterLogNews`` is above `version` or `deadline` passes; returns it.
    func waitForClusterLog(after version: UInt64, until deadline: MonotonicDeadline) -> UInt64
}

/// One event of the cluster's log: its id, and its line (nil when a campaign filter leaves it out).
public struct ClusterLogRow: Sendable, Equatable {
    public var id: Int64
    public var line: String?

    public init(id: Int64, line: String?) {
        self.id = id
        self.line = line
    }
}

/// A page of events, with what the order rule needs to know of the snapshot it was read in: `xmin`, the oldest
/// transaction still running then (every one below it had ended: `pg_snapshot_xmin`,
/// https://www.postgresql.org/docs/15/functions-info.html), and, when the page shows a gap, a `horizon` above the
/// transaction id of every transaction that had drawn an id by then: the reader's own, given out after the snapshot
/// (`pg_current_xact_id()`; 0 when the page shows no gap). Not the snapshot's `xmax`: that is one past the latest
/// *completed* transaction, and a transaction still running may have a higher id.
public struct ClusterLogPage: Sendable, Equatable {
    public var rows: [ClusterLogRow]
    public var xmin: UInt64
    public var horizon: UInt64

    public init(rows: [ClusterLogRow], xmin: UInt64, horizon: UInt64) {
        self.rows = rows
        self.xmin = xmin
        self.horizon = horizon
    }
}

/// Where a follower starts "from now" or with the last lines, read in one snapshot.
///
/// **Why not after the highest id visible.** Ids are drawn just before COMMIT, and transactions commit in any order: an
/// id below the highest visible one may still be committing (its transaction drew it, then another drew a higher id
/// and committed first). A follower that starts after the highest id would never give it. So the follower starts
/// below the lowest id missing among the last ``window`` ids (``after``), passes over the ids that were visible at the
/// start (up to ``hideThrough``: the past) and gives only those in ``reveal``: the missing ones, if they commit after
/// all (``ClusterLogFollower``'s gap rule decides, as for any gap), and the last lines asked for.
public struct ClusterLogStart: Sendable, Equatable {
    /// How far below the highest visible id missing ids are looked for: a Loa transaction draws its ids at its end,
    /// so one still running behind ten thousand later ids is not Loa's (and the follower's hold gives it up anyway).
    public static let window: Int64 = 10_000

    public var after: Int64
    public var hideThrough: Int64
    public var reveal: [ClosedRange<Int64>]

    public init(after: Int64, hideThrough: Int64? = nil, reveal: [ClosedRange<Int64>] = []) {
        self.after = after
        self.hideThrough = hideThrough ?? after
        self.reveal = reveal
    }

    /// From the snapshot's highest id `last`, the missing ids below it (`gaps`, in the last ``window``) and the
    /// first of the last lines asked for (`firstLine`, nil: none asked or none there).
    public init(last: Int64, gaps: [ClosedRange<Int64>], firstLine: Int64?) {
        var reveal = gaps.filter { !$0.isEmpty && $0.upperBound < last }
        if let firstLine, firstLine <= last { reveal.append(firstLine...last) }
        self.init(after: min(last, (reveal.map(\.lowerBound).min() ?? last + 1) - 1), hideThrough: last, reveal: reveal)
    }

    /// Whether the row `id` is given (not the past seen at the start).
    func gives(_ id: Int64) -> Bool { id > hideThrough || reveal.contains { $0.contains(id) } }
}

/// Which events of the cluster's log a follower may give now, in id order, each once, none skipped that will
/// still commit: a pure step over pages and a time, tested on a manual clock.
///
/// **Why a follower cannot just read `id > last`.** An event's id is drawn when its transaction inserts it, just
/// before COMMIT, but transactions commit in any order: node A draws 10, node B draws 11 and commits first. A reader
/// that sees 11 and moves its place past it would never give 10. And some ids never commit (a transaction rolled
/// back after drawing them): the sequence has permanent gaps, so waiting for every id is no answer either.
///
/// **The rule.** The events are given in id order up to the first missing id. At a gap the follower holds and
/// remembers the page's horizon: every transaction that drew a missing id had its transaction id before the page
/// was read (a writer has written rows, which gives it one, before it draws ids, and drew them before the later id
/// that is already visible), so its id is below the horizon. The gap is passed
///  - as **permanent** by the first page read in a snapshot whose `xmin` is at or above the horizon: every such
///    transaction has ended, so an id still missing then was rolled back (ids that did commit are in that page);
///  - or, if a transaction that was running at the gap's sight runs on longer than ``holdMillis`` (a long write
///    by something else than Loa holds `xmin` back), **by time**: the ids are then given up as ``Step/skipped``
///    (the stream says `event: gap`), so one stuck transaction cannot stop the view of the cluster.
/// A page that ends without a gap needs no wait: ids above the last visible one are the future.
public struct ClusterLogFollower: Sendable {
    /// The last id given (or passed over): the next page is read after it.
    public private(set) var last: Int64
    /// How long a gap is held when the snapshot cannot prove it permanent.
    public let holdMillis: Int64
    /// How often a held gap is read again (no notification comes when a transaction ends without writing events).
    public let recheckMillis: Int64
    private var hold: Hold?
    /// The past at the start, passed over without being given (``ClusterLogStart``).
    private let start: ClusterLogStart

    private struct Hold: Sendable {
        /// The gap's last id (the ids up to it were drawn before the snapshot that showed it).
        var through: Int64
        var horizon: UInt64
        var since: UnixMillis
    }

    public enum Next: Sendable, Equatable {
        /// The page was full: read the next one at once.
        case readAgain
        /// Holding at a gap: read again after this many milliseconds.
        case readAfter(Int64)
        /// Caught up: read again when there is news.
        case waitForNews
    }

    public struct Step: Sendable, Equatable {
        /// The events to give, in id order (filtered-out rows are passed over silently).
        public var events: [ClusterLogRow] = []
        /// Gaps given up by time (their ids may still commit later and would not be given).
        public var skipped: [ClosedRange<Int64>] = []
        public var next: Next = .waitForNews
    }

    public init(after last: Int64, holdMillis: Int64 = 5_000, recheckMillis: Int64 = 50) {
        self.init(start: ClusterLogStart(after: last), holdMillis: holdMillis, recheckMillis: recheckMillis)
    }

    public init(start: ClusterLogStart, holdMillis: Int64 = 5_000, recheckMillis: Int64 = 50) {
        self.start = start
        last = start.after
        self.holdMillis = holdMillis
        self.recheckMillis = recheckMillis
    }

    /// Whether the follower is holding at a gap.
    public var isHolding: Bool { hold != nil }

    /// Takes a page read after ``last`` (of at most `limit` rows) at `now`.
    public mutating func take(_ page: ClusterLogPage, limit: Int, now: UnixMillis) -> Step {
        var step = Step()
        for row in page.rows where row.id > last {
            if row.id > last + 1 {
                let gap = (last + 1)...(row.id - 1)
                if hold == nil || hold!.through < gap.upperBound {
                    hold = Hold(through: gap.upperBound, horizon: page.horizon, since: now)
                }
                let h = hold!
                if h.horizon > 0 && page.xmin >= h.horizon {
                    // Proven: every transaction that could still have given these ids has ended.
                } else if now - h.since >= holdMillis {
                    step.skipped.append(gap)
                } else {
                    step.next = .readAfter(min(recheckMillis, max(1, h.since + holdMillis - now)))
                    return step
                }
            }
            if let line = row.line, start.gives(row.id) { step.events.append(ClusterLogRow(id: row.id, line: line)) }
            last = row.id
            if let h = hold, h.through <= last { hold = nil }
        }
        step.next = page.rows.count >= limit ? .readAgain : .waitForNews
        return step
    }
}
