/// The messages a gateway was handed and has not reported passed on, with when each was handed over, in about
/// 1.5 bytes per message: a bitmap over the message-id range with one hand-over time per 64-id chunk.
///
/// ``HandoffWindow`` holds every such message for up to `lostAfterSeconds` (20 minutes) when receipts are lost,
/// so what it holds grows with the sending rate times twenty minutes. As a dictionary of id → time plus a
/// hand-over order it cost about 48 bytes a message: in `rss.sh 1000000` (a simulator that dropped 90% of its
/// receipts) it held 499,664 messages, a 32 MB block of the daemon's 87 MiB peak.
///
/// Message ids are the store's row ids: dense within a campaign, handed over mostly in rising order, a claim's
/// ids at one time. So an id's chunk is `id >> 6`, a dictionary entry holding which of its 64 ids are outstanding
/// and the span of their hand-over times (`first`...`last`); every id of the chunk counts as handed over at
/// `last`. Its ids join it while that span stays within `spanMillis` and in rising order (a lower id than one
/// still outstanding in it would be read as older than it is: ``oldest()`` takes the lowest id of the oldest
/// chunk). An id that fits neither — a retry of an older message, a claim that came more than `spanMillis` after
/// its chunk began (a slow campaign) — is a *straggler* with its own exact time, as every message was before.
///
/// What this changes for the window: a message's hand-over time reads up to `spanMillis` late. Late is the safe
/// side for both users of that time: a lost receipt is taken as lost up to a second later than twenty minutes,
/// and the pace counts a pass-on interval as busy only when the message was handed over before the previous
/// pass-on, so a later time can only leave an interval out (both its count and its length), never count idle
/// time as busy.
///
/// | per | bytes | what |
/// |---|---|---|
/// | 64 ids | 32 (48–96 in the dictionary's table) | chunk: index, bits, first and last time |
/// | chunk touched by a hand-over | 24 | an entry of the time-ordered queue that expiry walks |
/// | straggler | about 40 | dictionary entry id → time, and a queue entry |
/// | restored id | 1/8 (64 per 64 ids in their own bitmap) | messages read back from the store at a start |
///
/// Pure and a value type; not thread-safe by itself (the dispatcher keeps it under its lock).
public struct HandedOverSet: Sendable {
    /// Outstanding ids of one 64-id chunk and when they were handed over.
    struct Chunk: Sendable, Equatable {
        var bits: UInt64
        var first: UnixMillis
        var last: UnixMillis
    }

    /// An entry of the expiry queue: a chunk (by index) or a straggler (by id), at the time it was queued with.
    /// It is current while its chunk's `last` (the straggler's time) still equals `at`; older ones are skipped.
    struct Entry: Sendable {
        var key: Int64
        var at: UnixMillis
        var straggler: Bool
    }

    /// How far apart hand-over times in one chunk may be.
    public let spanMillis: Int64
    private(set) var chunks: [Int64: Chunk] = [:]
    private(set) var stragglers: [Int64: UnixMillis] = [:]
    private var queue: [Entry] = []
    private var head = 0
    /// Restores add in the store's order, not by time: the queue is sorted before its next use.
    private var queueUnsorted = false
    /// Ids read back from the store at a start and still outstanding (see ``HandoffWindow/restore(_:)``).
    private var restoredBits: [Int64: UInt64] = [:]
    public private(set) var count = 0
    public private(set) var restoredCount = 0

    public init(spanMillis: Int64 = 1_000) {
        self.spanMillis = max(0, spanMillis)
    }

    public var isEmpty: Bool { count == 0 }

    /// Queue entries kept (current or not yet skipped): for tests of its memory.
    var queueEntries: Int { queue.count - head }
    var chunkCount: Int { chunks.count }
    var stragglerCount: Int { stragglers.count }

    /// When `id` was handed over (its chunk's `last`), or nil when it is not outstanding.
    public func handedOverAt(_ id: Int64) -> UnixMillis? {
        if let c = chunks[id >> 6], c.bits & (1 << UInt64(id & 63)) != 0 { return c.last }
        return stragglers[id]
    }

    /// Every outstanding id, in rising order (for tests and diagnostics: it builds an array of them all).
    public var ids: [Int64] {
        var out: [Int64] = []
        out.reserveCapacity(count)
        for (index, c) in chunks {
            var b = c.bits
            while b != 0 {
                out.append(index << 6 | Int64(b.trailingZeroBitCount))
                b &= b - 1
            }
        }
        out.append(contentsOf: stragglers.keys)
        return out.sorted()
    }

    /// `id` was handed over at `at` (again, if it was outstanding: the new time counts). `restored`: read back
    /// from the store at a start.
    public mutating func insert(_ id: Int64, at: UnixMillis, restored: Bool = false) {
        remove(id)
        count += 1
        if restored {
            restoredBits[id >> 6, default: 0] |= 1 << UInt64(id & 63)
            restoredCount += 1
        }
        let index = id >> 6
        let bit = UInt64(id & 63)
        guard var c = chunks[index] else {
            chunks[index] = Chunk(bits: 1 << bit, first: at, last: at)
            enqueue(Entry(key: index, at: at, straggler: false))
            return
        }
        // Joins the chunk only above its highest outstanding id and within the span (see the type's comment).
        let highest = UInt64(63 - c.bits.leadingZeroBitCount)
        if bit > highest && max(c.last, at) - min(c.first, at) <= spanMillis {
            c.bits |= 1 << bit
            c.first = min(c.first, at)
            let moved = at > c.last
            if moved { c.last = at }
            chunks[index] = c
            if moved { enqueue(Entry(key: index, at: at, straggler: false)) }
        } else {
            stragglers[id] = at
            enqueue(Entry(key: id, at: at, straggler: true))
        }
    }

    /// Takes `id` out; returns when it was handed over, or nil when it was not outstanding.
    @discardableResult
    public mutating func remove(_ id: Int64) -> UnixMillis? {
        let index = id >> 6
        let mask: UInt64 = 1 << UInt64(id & 63)
        let at: UnixMillis
        if var c = chunks[index], c.bits & mask != 0 {
            c.bits &= ~mask
            chunks[index] = c.bits == 0 ? nil : c
            at = c.last
        } else if let s = stragglers.removeValue(forKey: id) {
            at = s
        } else {
            return nil
        }
        count -= 1
        if restoredCount > 0, let r = restoredBits[index], r & mask != 0 {
            restoredBits[index] = r & ~mask == 0 ? nil : r & ~mask
            restoredCount -= 1
        }
        return at
    }

    /// Takes out every message handed over before `cutoff`, oldest first, up to the first one that was not.
    public mutating func removeHandedOver(before cutoff: UnixMillis) {
        sortIfNeeded()
        while head < queue.count {
            let e = queue[head]
            if isCurrent(e) {
                guard e.at < cutoff else { break }
                if e.straggler {
                    remove(e.key)
                } else if let c = chunks.removeValue(forKey: e.key) {
                    count -= c.bits.nonzeroBitCount
                    forgetRestored(index: e.key, bits: c.bits)
                }
            }
            head += 1
        }
        trimHead()
    }

    /// The outstanding message handed over first (the lowest id of its chunk); nil when there is none.
    public mutating func oldest() -> Int64? {
        sortIfNeeded()
        while head < queue.count {
            let e = queue[head]
            if isCurrent(e) {
                if e.straggler { return e.key }
                return e.key << 6 | Int64(chunks[e.key]!.bits.trailingZeroBitCount)
            }
            head += 1
        }
        trimHead()
        return nil
    }

    public mutating func removeAll() {
        chunks.removeAll()
        stragglers.removeAll()
        queue.removeAll()
        head = 0
        queueUnsorted = false
        restoredBits.removeAll()
        count = 0
        restoredCount = 0
    }

    private func isCurrent(_ e: Entry) -> Bool {
        e.straggler ? stragglers[e.key] == e.at : chunks[e.key]?.last == e.at
    }

    private mutating func forgetRestored(index: Int64, bits: UInt64) {
        guard restoredCount > 0, let r = restoredBits[index], r & bits != 0 else { return }
        restoredCount -= (r & bits).nonzeroBitCount
        restoredBits[index] = r & ~bits == 0 ? nil : r & ~bits
    }

    private mutating func enqueue(_ e: Entry) {
        if let last = queue.last, head < queue.count, e.at < last.at { queueUnsorted = true }
        queue.append(e)
        compactIfSparse()
    }

    /// By time, and within one time by id (a claim's ids are handed over in rising order).
    private mutating func sortIfNeeded() {
        guard queueUnsorted else { return }
        queue = queue[head...].filter(isCurrent)
        queue.sort { ($0.at, $0.straggler ? $0.key : $0.key << 6) < ($1.at, $1.straggler ? $1.key : $1.key << 6) }
        head = 0
        queueUnsorted = false
    }

    /// Drops entries no longer current once they outnumber the current ones (on insert only: never inside a walk
    /// of the queue). The skip at the head stops at the
    /// oldest outstanding message, and one whose receipt never comes holds it for `lostAfterSeconds`: without
    /// this, an entry for every chunk touched behind it stayed that long. Amortized O(1) per entry.
    private mutating func compactIfSparse() {
        let kept = queue.count - head
        guard kept > 4096, kept > 2 * (chunks.count + stragglers.count) else { return }
        queue = queue[head...].filter(isCurrent)
        head = 0
    }

    private mutating func trimHead() {
        if head > 1024 && head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
    }
}

extension HandedOverSet: Equatable {
    /// The same messages with the same hand-over times, and the same of them restored; the queue's layout is
    /// not compared.
    public static func == (a: HandedOverSet, b: HandedOverSet) -> Bool {
        a.count == b.count && a.restoredCount == b.restoredCount && a.chunks == b.chunks && a.stragglers == b.stragglers
            && a.restoredBits == b.restoredBits
    }
}
