import Foundation
import LoaCore
import LoaServer
import LoaStore
import Synchronization

/// The delivery log as it is written, as server-sent events (`GET /api/v1/log/stream?campaign=ID`): the
/// console's live log, and what `loa tail -f` is on the daemon's host.
///
/// Each stream holds a libmicrohttpd connection thread for as long as the client listens, so they are bounded:
/// at most `listen.stream_limit` at once (16 by default; beyond, 503 with `Retry-After`), each ends at the
/// daemon's stop (``ResponseStream/close()``), and each reads the log file itself, from its own place: a slow
/// client's backlog stays in the file, never in the daemon's memory (one read of at most 64 KiB at a time). A
/// client more than ``LiveLogStream/maxLagBytes`` behind the log's end is cut off with an `event: cut`.
extension DaemonService {
    static let liveLogEndpoints: [Endpoint] = [
        Endpoint("GET", "/api/v1/log/stream", access: .role(.viewer)) { s, r in try s.logStream(r) },
    ]

    /// The delivery log's path (the data directory's `delivery.log` when the service was wired without one).
    var deliveryLogPath: String { deliveryLog?.path ?? config.dataDir + "/delivery.log" }

    func logStream(_ r: Request) throws -> Reply {
        let campaign = r.query["campaign"].flatMap { $0.isEmpty ? nil : $0 }
        if let campaign { try requireCampaign(campaign) }
        var after: Int64?
        // A browser's EventSource sends the last `id:` it saw when it reconnects; `?last_event_id=` does the same by hand.
        if let resume = r.head.headers["last-event-id"] ?? r.query["last_event_id"] {
            guard let n = Int64(resume.trimmingSpaces()), n >= 0 else {
                throw APIError(400, "bad-request", "Last-Event-ID: '\(resume)' is not an event id of this stream (a delivery-log seq)")
            }
            after = n
        }
        // `scope=cluster`: every node's lines from the database (ClusterLogRoutes.swift); `node` (the default): this file.
        switch r.query["scope"] ?? "node" {
        case "node": break
        case "cluster": return try clusterLogStream(r, campaign: campaign, after: after)
        case let other: throw APIError(400, "bad-request", "scope: '\(other)' is not node or cluster")
        }
        let limit = config.listenLimits.streamLimit
        guard let slot = liveLogSlots.take(limit: limit) else {
            var busy = error(503, "too-many-streams", "\(limit) live log streams are open (listen.stream_limit); try again later")
            busy.headers.append(.init("Retry-After", "5"))
            return .response(busy)
        }
        var response = ServerResponse(status: 200, headers: [.init("Content-Type", "text/event-stream; charset=utf-8"),
                                                             .init("Cache-Control", "no-cache"), .init("X-Accel-Buffering", "no")])
        response.stream = LiveLogStream(path: deliveryLogPath, campaign: campaign, after: after, slot: slot)
        return .response(response)
    }
}

/// How many live log streams are open, against the configured limit.
final class LiveLogSlots: Sendable {
    private let open = Mutex(0)

    /// A slot, or nil when `limit` are taken. The slot is given back when its stream closes.
    func take(limit: Int) -> LiveLogSlot? {
        let ok = open.withLock { n -> Bool in
            guard n < limit else { return false }
            n += 1
            return true
        }
        return ok ? LiveLogSlot(self) : nil
    }

    var count: Int { open.withLock { $0 } }

    fileprivate func release() { open.withLock { $0 -= 1 } }
}

/// One taken slot: given back once, at ``release()`` or when it goes away.
final class LiveLogSlot: Sendable {
    private let slots: LiveLogSlots
    private let released = Atomic(false)

    fileprivate init(_ slots: LiveLogSlots) { self.slots = slots }

    func release() {
        if !released.exchange(true, ordering: .acquiringAndReleasing) { slots.release() }
    }

    deinit { release() }
}

/// One client's stream: the delivery log's lines from its place on, as SSE events
/// (`id: <seq>` and `data: <the line>`), filtered by campaign.
///
/// Events: a first comment at once (so the client sees the answer begin), `event: gap` when a resume asks for lines
/// this stream cannot give (rotated away, or more than ``maxLagBytes`` back), `: keep-alive` after
/// `keepAliveSeconds` without an event, `event: cut` before it ends a client that fell ``maxLagBytes`` behind.
final class LiveLogStream: ResponseStream, @unchecked Sendable {
    // @unchecked: `cursor`, `started` and `ending` are touched only in `next`, which the connection's thread alone
    // calls; `closed` is a ConditionBox, set from any thread.
    /// How far a client may fall behind the end of the log (the backlog stays in the file, but a client this slow
    /// holds a connection for a view it cannot keep up with).
    static let maxLagBytes: Int64 = 16 << 20

    private var cursor: DeliveryLogCursor
    private let pattern: [UInt8]?
    private let slot: LiveLogSlot?
    private let keepAliveSeconds: Double
    private let maxLag: Int64
    private let closed = ConditionBox(false)
    private var started = false
    private var ending = false
    private var firstEvents: [UInt8] = []

    init(path: String, campaign: String?, after: Int64?, slot: LiveLogSlot?, keepAliveSeconds: Double = 15, maxLag: Int64 = maxLagBytes) {
        self.slot = slot
        self.keepAliveSeconds = keepAliveSeconds
        self.maxLag = maxLag
        pattern = campaign.map { Array(("\"campaign\":" + JSONText.quoted($0)).utf8) }
        cursor = DeliveryLogCursor(path: path, after: after)
        if let after, cursor.lag > maxLag {
            cursor = DeliveryLogCursor(path: path, after: nil)
            firstEvents = Self.event("gap", "{\"after\":\(after),\"reason\":\"more than \(maxLag) bytes of log behind: following from now\"}")
        } else if let gap = cursor.gap {
            firstEvents = Self.event("gap", "{\"from\":\(gap.lowerBound),\"to\":\(gap.upperBound),\"reason\":\"in a rotated log file\"}")
        }
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

    func next(max: Int) -> [UInt8]? {
        if ending || isClosed { return nil }
        if !started {
            started = true
            return Array(": loa delivery log\nretry: 3000\n\n".utf8) + firstEvents
        }
        let keepAliveAt = MonotonicDeadline.after(seconds: keepAliveSeconds)
        while true {
            if cursor.lag > maxLag {
                ending = true
                return Self.event("cut", "{\"reason\":\"more than \(maxLag) bytes of log behind: reconnect to follow from now\"}")
            }
            let lines = cursor.read(limit: min(max, 64 * 1024))
            var out: [UInt8] = []
            for line in lines {
                guard let seq = DeliveryLogCursor.seq(of: line), matches(line) else { continue }
                out += Array("id: \(seq)\ndata: ".utf8)
                out += line
                out += [10, 10]
            }
            if !out.isEmpty { return out }
            if !lines.isEmpty { continue }  // lines of other campaigns: there may be more to read at once
            if keepAliveAt.hasPassed { return Array(": keep-alive\n\n".utf8) }
            // Nothing new: look again in 200 ms, or at once when the stream is closed.
            let until = Swift.min(keepAliveAt, MonotonicDeadline.after(seconds: 0.2))
            if closed.wait(until: until, { $0 ? true : nil }) == true { return nil }
        }
    }

    /// Whether the line is of the stream's campaign (always, without a filter). The key is matched as the writer
    /// writes it (`"campaign":"id"`); inside a string value its quotes would be escaped, so only the key matches.
    private func matches(_ line: [UInt8]) -> Bool {
        guard let pattern else { return true }
        guard line.count >= pattern.count else { return false }
        let first = pattern[0]
        var i = 0
        while i <= line.count - pattern.count {
            if line[i] == first && line[i..<(i + pattern.count)].elementsEqual(pattern) {
                // The value must end there: `"c1"` is not `"c10"` (the quoted pattern ends with its closing quote).
                return true
            }
            i += 1
        }
        return false
    }

    static func event(_ name: String, _ data: String) -> [UInt8] { Array("event: \(name)\ndata: \(data)\n\n".utf8) }
}
