import Foundation
import Synchronization

/// The gateway shapes the simulator speaks.
enum SimShape: String, Sendable, CaseIterable {
    case kannel, jasmin, generic
}

/// The simulator's counts (the proof the fault tests rely on) and its journal, under one lock so a
/// count and its journal line never disagree.
///
/// Counts, all since start or the last `POST /sim/reset-stats`:
/// - `requests`: send requests (any shape, any answer; `/sim/…` not counted).
/// - `accepted`: messages the sim took (including those answered late by a timeout or not at all by
///   a reset after accepting); `by_shape` splits them per shape.
/// - `duplicates`: accepted messages whose recipient was accepted before; `unique_recipients` the others.
/// - `rejected`: requests refused for credentials or missing arguments, plus generic-shape messages with
///   an invalid number.
/// - `throttled`, `errors`, `timeouts` (answers held), `resets` (connections closed unanswered).
/// - the timeline: messages accepted per 100 ms since start (or the reset), on the monotonic clock, for the first
///   hour (`GET /sim/timeline`); `busiest_second` is the most accepted in any one second of it (a window sliding by
///   100 ms): what a test of a rate limit held across several senders measures at the gateway.
///
/// Journal: one line per accepted message, `<shape> <to digits> <ref-or-loa-id> <sim id>`, written with
/// one `write(2)` before the answer, so it survives a crash of the sim. Read back at start to restore the
/// counts and the duplicate set; created 0600 since it holds phone numbers.
final class SimLedger: Sendable {
    struct Counts: Sendable {
        var requests = 0, accepted = 0, duplicates = 0, rejected = 0, throttled = 0, errors = 0, timeouts = 0, resets = 0
        var byShape: [SimShape: Int] = [:]
        /// Accepted messages per recipient (digits); its size is `unique_recipients`.
        var perRecipient: [String: Int] = [:]
        /// The last sim message number handed out; never reset, so ids stay unique.
        var sequence = 0
        /// `perRecipient.count`, set in snapshots (which leave `perRecipient` empty).
        var unique = 0
        /// Accepted messages per ``SimLedger/bucketMillis`` since `since`.
        var timeline: [Int] = []
        var since = ContinuousClock.now
    }

    /// The timeline's resolution, and how many buckets it keeps (an hour's).
    static let bucketMillis = 100
    static let maxBuckets = 36_000

    enum Counter { case request, rejected, throttled, error, timeout, reset }

    /// Accepted messages, the per-recipient map and the journal: one short critical section per request.
    private let state: SimLock<Counts>
    /// The plain counters, lock-free (`requests` … `resets`).
    private let requests = Atomic(0), rejected = Atomic(0), throttled = Atomic(0), errors = Atomic(0),
        timeouts = Atomic(0), resets = Atomic(0)
    private let journalFD: Int32

    /// Opens (or creates) the journal and restores counts from it.
    init(journal: String?) throws {
        var counts = Counts()
        var fd: Int32 = -1
        if let journal {
            if let data = FileManager.default.contents(atPath: journal) {
                for line in data.split(separator: UInt8(ascii: "\n")) {
                    let f = line.split(separator: UInt8(ascii: " "))
                    guard f.count >= 4, let shape = SimShape(rawValue: String(decoding: f[0], as: UTF8.self)) else { continue }
                    SimLedger.record(&counts, shape: shape, to: String(decoding: f[1], as: UTF8.self))
                }
            }
            fd = open(journal, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw SimError("\(journal): cannot open the journal: \(String(cString: strerror(errno)))") }
        }
        journalFD = fd
        state = SimLock(counts)
    }

    private static func record(_ c: inout Counts, shape: SimShape, to: String) {
        c.accepted += 1
        c.sequence += 1
        c.byShape[shape, default: 0] += 1
        // One lookup of the number, not two (the map grows to every recipient of a load run).
        if increment(&c.perRecipient[to, default: 0]) > 1 { c.duplicates += 1 }
    }

    private static func increment(_ n: inout Int) -> Int {
        n += 1
        return n
    }

    func count(_ counter: Counter, _ n: Int = 1) {
        switch counter {
        case .request: requests.add(n, ordering: .relaxed)
        case .rejected: rejected.add(n, ordering: .relaxed)
        case .throttled: throttled.add(n, ordering: .relaxed)
        case .error: errors.add(n, ordering: .relaxed)
        case .timeout: timeouts.add(n, ordering: .relaxed)
        case .reset: resets.add(n, ordering: .relaxed)
        }
    }

    /// Accepts messages: counts them, journals them, and returns each one's sim message number.
    /// `messages` are (recipient digits, ref or Loa id or "-").
    func accept(_ shape: SimShape, _ messages: [(to: String, ref: String)], id: (Int) -> String) -> [Int] {
        state.withLock { c in
            var numbers: [Int] = []
            numbers.reserveCapacity(messages.count)
            var lines = ""
            let elapsed = ContinuousClock.now - c.since
            let bucket = Int(elapsed.components.seconds) * (1000 / SimLedger.bucketMillis)
                + Int(elapsed.components.attoseconds / 1_000_000_000_000_000) / SimLedger.bucketMillis
            if bucket < SimLedger.maxBuckets {
                if c.timeline.count <= bucket { c.timeline.append(contentsOf: repeatElement(0, count: bucket + 1 - c.timeline.count)) }
                c.timeline[bucket] += messages.count
            }
            for m in messages {
                SimLedger.record(&c, shape: shape, to: m.to)
                numbers.append(c.sequence)
                if journalFD >= 0 { lines += "\(shape.rawValue) \(m.to) \(SimLedger.field(m.ref)) \(id(c.sequence))\n" }
            }
            if journalFD >= 0 { writeAll(journalFD, Array(lines.utf8)) }
            return numbers
        }
    }

    /// A journal field: no spaces or newlines, never empty.
    private static func field(_ s: String) -> String {
        let cleaned = String(s.prefix(64).map { $0 == " " || $0.isNewline ? "_" : $0 })
        return cleaned.isEmpty ? "-" : cleaned
    }

    /// The counts without the per-recipient map: a copy of the map would make the next accept copy it
    /// whole under the lock.
    var snapshot: Counts {
        var c = state.withLock { s in
            var c = s
            c.perRecipient = [:]
            c.timeline = []
            c.unique = s.perRecipient.count
            return c
        }
        c.requests = requests.load(ordering: .relaxed)
        c.rejected = rejected.load(ordering: .relaxed)
        c.throttled = throttled.load(ordering: .relaxed)
        c.errors = errors.load(ordering: .relaxed)
        c.timeouts = timeouts.load(ordering: .relaxed)
        c.resets = resets.load(ordering: .relaxed)
        return c
    }

    /// Zeroes the counts and the duplicate set (the journal is kept; ids keep counting up).
    func reset() {
        state.withLock { c in
            let sequence = c.sequence
            c = Counts()
            c.sequence = sequence
        }
        requests.store(0, ordering: .relaxed)
        rejected.store(0, ordering: .relaxed)
        throttled.store(0, ordering: .relaxed)
        errors.store(0, ordering: .relaxed)
        timeouts.store(0, ordering: .relaxed)
        resets.store(0, ordering: .relaxed)
    }

    func close() {
        guard journalFD >= 0 else { return }
        state.withLock { _ in
            fsync(journalFD)
            Glibc.close(journalFD)
        }
    }

    /// `GET /sim/timeline`: `{"bucket_ms":100,"accepted":[…]}`, accepted messages per bucket since start or reset.
    func timelineJSON() -> String {
        let t = state.withLock { $0.timeline }
        return "{\"bucket_ms\":\(SimLedger.bucketMillis),\"accepted\":[" + t.map(String.init).joined(separator: ",") + "]}"
    }

    /// The most messages accepted in any one second (ten buckets in a row) of the timeline.
    var busiestSecond: Int {
        let t = state.withLock { $0.timeline }
        let width = 1000 / SimLedger.bucketMillis
        var sum = 0, best = 0
        for i in t.indices {
            sum += t[i]
            if i >= width { sum -= t[i - width] }
            best = max(best, sum)
        }
        return best
    }

    /// `GET /sim/accepted`: `<to digits> <count>` per line, sorted by number.
    func acceptedText() -> String {
        let per = state.withLock { $0.perRecipient }
        var out = ""
        for key in per.keys.sorted() { out += "\(key) \(per[key]!)\n" }
        return out
    }
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { raw in
        var offset = 0
        var attempts = 0
        while offset < raw.count && attempts < 1000 {
            attempts += 1
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n > 0 { offset += n } else if n < 0 && errno != EINTR { return }
        }
    }
}

/// A value behind a `pthread_mutex_t`.
///
/// Not `Synchronization.Mutex`: on Linux it spins and then takes a priority-inheritance futex, and with
/// 64 connection threads on two cores the sim spent a third of its time in its slow path (perf, wrk
/// `-c64`). glibc's plain mutex parks waiters at once.
final class SimLock<State>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var state: State

    init(_ state: State) {
        self.state = state
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: (inout State) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state)
    }
}

/// A start-up failure of the simulator.
struct SimError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
