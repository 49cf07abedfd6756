import Foundation
import LoaCore
import LoaServer
import LoaStore
import Synchronization

/// The whole cluster's delivery log as server-sent events (`GET /api/v1/log/stream?scope=cluster`): every node's lines,
/// each once, in the order of their cluster event ids, from any node (issue 21). `id:` is the cluster event id, the
/// cursor `Last-Event-ID` resumes after. The same slots (`listen.stream_limit`) and keep-alives as the node's stream.
///
/// Only a store that keeps the cluster's log (``ClusterLogStore``: PostgreSQL with `store.cluster_log` on) has it: on
/// SQLite the answer is 400, naming the node's own stream, because a daemon on SQLite is a cluster of one whose
/// log is its own file (`loa tail`), with the file's seqs as ids; a second meaning of `id:` on one endpoint would
/// let a client resume one stream with the other's cursor.
///
/// Without `Last-Event-ID` the stream starts from now, or with the last `lines=N` lines (of the campaign, when
/// filtered), the ids still committing at the start included (``ClusterLogStart``). With it, a client whose place
/// retention has deleted past (`store.cluster_log_days`) is told so first (`event: pruned`), not silently moved on.
///
/// `follow=false` ends the stream once every event committed so far is given (a gap held to its end, see
/// ``ClusterLogFollower``), or after `limit` events, with a last `id:` block naming the place reached; `wait=S` (at most 30) waits that long for a first event when
/// there is none yet. `loa tail --cluster` reads this way, one request after another, since its HTTP client takes
/// whole answers.
extension DaemonService {
    func clusterLogStream(_ r: Request, campaign: String?, after: Int64?) throws -> Reply {
        guard let logStore = store as? any ClusterLogStore else {
            throw APIError(400, "bad-request", "scope=cluster: this daemon's store is SQLite, a cluster of one: its delivery log is the node's own "
                           + "(scope=node, or loa tail)")
        }
        guard logStore.clusterLogEnabled else {
            throw APIError(400, "bad-request", "scope=cluster: the cluster's log is off on this node (store.cluster_log: false)")
        }
        var follow = true
        if let f = r.query["follow"] {
            guard let b = ["true": true, "false": false, "1": true, "0": false][f] else {
                throw APIError(400, "bad-request", "follow: '\(f)' is not true or false")
            }
            follow = b
        }
        var wait = 0.0
        if let w = r.query["wait"] {
            guard let s = Double(w), s >= 0, s <= 30 else { throw APIError(400, "bad-request", "wait: '\(w)' is not a number of seconds from 0 to 30") }
            wait = s
        }
        var limit = 10_000
        if let l = r.query["limit"] {
            guard let n = Int(l), (1...100_000).contains(n) else { throw APIError(400, "bad-request", "limit: '\(l)' is not a number from 1 to 100000") }
            limit = n
        }
        var lines = 0
        if let l = r.query["lines"] {
            guard let n = Int(l), (0...100_000).contains(n) else { throw APIError(400, "bad-request", "lines: '\(l)' is not a number from 0 to 100000") }
            guard after == nil else { throw APIError(400, "bad-request", "lines: not with Last-Event-ID (a resumed stream goes on after its id)") }
            lines = n
        }
        // Without a place: from now, or with the last `lines` lines (``ClusterLogStart``: ids still committing are
        // not passed over). With one: after it (the stream tells when retention deleted lines past it).
        let start = try after.map { ClusterLogStart(after: $0) } ?? logStore.clusterLogStart(lines: lines, campaign: campaign)
        let slotLimit = config.listenLimits.streamLimit
        guard let slot = liveLogSlots.take(limit: slotLimit) else {
            var busy = error(503, "too-many-streams", "\(slotLimit) live log streams are open (listen.stream_limit); try again later")
            busy.headers.append(.init("Retry-After", "5"))
            return .response(busy)
        }
        var response = ServerResponse(status: 200, headers: [.init("Content-Type", "text/event-stream; charset=utf-8"),
                                                             .init("Cache-Control", "no-cache"), .init("X-Accel-Buffering", "no")])
        response.stream = ClusterLogStream(store: logStore, campaign: campaign, start: start, slot: slot,
                                           end: follow ? nil : ClusterLogStream.End(limit: limit, wait: wait), logger: logger)
        return .response(response)
    }
}

/// One client's stream of the cluster's log: pages read after its place, put in order by a ``ClusterLogFollower``,
/// given as `id: <cluster id>` and `data: <the line>`. Events: a first comment at once, `event: pruned`
/// (`{"after":…,"first":…}`) when the rows up to its place are deleted by retention and the next kept one is not the
/// next id (its place is older than the log keeps: lines may be gone unread),
/// `event: gap` for ids given up after the follower's hold (`{"from":…,"to":…}`), `: keep-alive` after 15 s
/// without an event. Memory is one page
/// (``pageRows`` rows): a slow client's backlog stays in the database.
final class ClusterLogStream: ResponseStream, @unchecked Sendable {
    // @unchecked: everything but `closed` is touched only in `next`, which the connection's thread alone calls;
    // `closed` is a ConditionBox, set from any thread.
    static let pageRows = 500

    /// When a `follow=false` stream ends.
    struct End {
        var limit: Int
        var wait: Double
    }

    private let store: any ClusterLogStore
    private let campaign: String?
    private var follower: ClusterLogFollower
    private let slot: LiveLogSlot?
    private let end: End?
    private let keepAliveSeconds: Double
    private let logger: Logger
    private let closed = ConditionBox(false)
    private var started = false
    private var ending = false
    private var given = 0
    private var firstWaitEnds: MonotonicDeadline
    /// When to read the next page: nil, when there is news.
    private var readAt: MonotonicDeadline? = .now()
    private var failing = false

    /// The last place checked for lines deleted by retention past it (checked once per place, at a gap after it).
    private var prunedChecked: Int64 = 0

    init(store: any ClusterLogStore, campaign: String?, start: ClusterLogStart, slot: LiveLogSlot?, end: End?,
         keepAliveSeconds: Double = 15, logger: Logger, holdMillis: Int64 = 5_000) {
        self.store = store
        self.campaign = campaign
        self.slot = slot
        self.end = end
        self.keepAliveSeconds = keepAliveSeconds
        self.logger = logger
        follower = ClusterLogFollower(start: start, holdMillis: holdMillis)
        firstWaitEnds = .after(seconds: end?.wait ?? 0)
    }

    deinit { slot?.release() }

    func close() {
        closed.withLockWaking { c in
            let was = c
            c = true
            return !was
        }
        slot?.release()
    }

    private var isClosed: Bool { closed.withLock { $0 } }

    /// A `follow=false` stream's last block: `id:` without data, the place reached (the ids passed over count: lines
    /// of other campaigns, the past at the start), which a client resumes after (an EventSource takes it as its
    /// last event id; `loa tail --cluster` too).
    private var place: [UInt8] { Array("id: \(follower.last)\n\n".utf8) }

    private static func millis() -> Int64 { Int64(MonotonicDeadline.now().nanoseconds / 1_000_000) }

    func next(max: Int) -> [UInt8]? {
        if ending || isClosed { return nil }
        if !started {
            started = true
            return Array(": loa cluster log\nretry: 3000\n\n".utf8)
        }
        let keepAliveAt = MonotonicDeadline.after(seconds: keepAliveSeconds)
        while !isClosed {
            var news = store.clusterLogNews
            if let at = readAt, at.hasPassed {
                news = store.clusterLogNews
                let step: ClusterLogFollower.Step
                var out: [UInt8] = []
                do {
                    let page = try store.clusterLogPage(after: follower.last, campaign: campaign, limit: Self.pageRows)
                    if let next = page.rows.first?.id, next > follower.last + 1, follower.last > prunedChecked, !follower.isHolding {
                        // A gap right after this place: if retention deleted the rows up to it, the lines between it and the
                        // first kept one are gone. Said (not a silent skip), then the gap is passed as any other.
                        prunedChecked = follower.last
                        if let first = try store.clusterLogPruned(after: follower.last) {
                            out += LiveLogStream.event("pruned", "{\"after\":\(follower.last),\"first\":\(first),"
                                                       + "\"reason\":\"deleted by the retention (store.cluster_log_days) before they were read\"}")
                        }
                    }
                    step = follower.take(page, limit: Self.pageRows, now: Self.millis())
                    if failing { logger.notice("the cluster's log can be read again") }
                    failing = false
                } catch {
                    if !failing { logger.warning("the cluster's log cannot be read; trying again every second", ["error": "\(error)"]) }
                    failing = true
                    readAt = .after(seconds: 1)
                    if keepAliveAt.hasPassed { return Array(": keep-alive\n\n".utf8) }
                    _ = closed.wait(until: Swift.min(keepAliveAt, readAt!)) { $0 ? true : nil }
                    continue
                }
                switch step.next {
                case .readAgain: readAt = .now()
                case .readAfter(let ms): readAt = .after(seconds: Double(ms) / 1000)
                case .waitForNews: readAt = nil
                }
                for gap in step.skipped {
                    out += LiveLogStream.event("gap", "{\"from\":\(gap.lowerBound),\"to\":\(gap.upperBound),"
                                               + "\"reason\":\"not committed within the follower's hold: given up\"}")
                }
                for e in step.events {
                    out += Array("id: \(e.id)\ndata: ".utf8)
                    out += Array((e.line ?? "").utf8)
                    out += [10, 10]
                }
                given += step.events.count
                if let end, given >= end.limit {
                    ending = true
                    out += place
                }
                if !out.isEmpty { return out }
            }
            if let end, readAt == nil {
                // Caught up, no gap held: a `follow=false` stream ends, once it has given something or its wait is over.
                if given > 0 || firstWaitEnds.hasPassed || end.wait == 0 {
                    ending = true
                    return place
                }
            }
            if keepAliveAt.hasPassed { return Array(": keep-alive\n\n".utf8) }
            // Wait for news (a commit anywhere in the cluster), the held gap's next look, the keep-alive, the end of a
            // `follow=false` wait; in slices of 200 ms, to see a close.
            var until = Swift.min(keepAliveAt, MonotonicDeadline.after(seconds: 0.2))
            if let at = readAt { until = Swift.min(until, at) }
            if end != nil { until = Swift.min(until, Swift.max(firstWaitEnds, .now())) }
            if readAt == nil {
                if store.waitForClusterLog(after: news, until: until) > news { readAt = .now() }
            } else {
                _ = closed.wait(until: until) { $0 ? true : nil }
            }
        }
        return nil
    }
}
