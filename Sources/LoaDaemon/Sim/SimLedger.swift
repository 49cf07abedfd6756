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
    }

    enum Counter { case request, rejected, throttled, error, timeout, reset }

    private let state: Mutex<Counts>
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
        state = Mutex(counts)
    }

    private static func record(_ c: inout Counts, shape: SimShape, to: String) {
        c.accepted += 1
        c.sequence += 1
        c.byShape[shape, default: 0] += 1
        let before = c.perRecipient[to, default: 0]
        if before > 0 { c.duplicates += 1 }
        c.perRecipient[to] = before + 1
    }

    func count(_ counter: Counter, _ n: Int = 1) {
        state.withLock { c in
            switch counter {
            case .request: c.requests += n
            case .rejected: c.rejected += n
            case .throttled: c.throttled += n
            case .error: c.errors += n
            case .timeout: c.timeouts += n
            case .reset: c.resets += n
            }
        }
    }

    /// Accepts messages: counts them, journals them, and returns each one's sim message number.
    /// `messages` are (recipient digits, ref or Loa id or "-").
    func accept(_ shape: SimShape, _ messages: [(to: String, ref: String)], id: (Int) -> String) -> [Int] {
        state.withLock { c in
            var numbers: [Int] = []
            var lines = ""
            for m in messages {
                SimLedger.record(&c, shape: shape, to: m.to)
                numbers.append(c.sequence)
                lines += "\(shape.rawValue) \(m.to) \(SimLedger.field(m.ref)) \(id(c.sequence))\n"
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

    var snapshot: Counts { state.withLock { $0 } }

    /// Zeroes the counts and the duplicate set (the journal is kept; ids keep counting up).
    func reset() {
        state.withLock { c in
            let sequence = c.sequence
            c = Counts()
            c.sequence = sequence
        }
    }

    func close() {
        guard journalFD >= 0 else { return }
        state.withLock { _ in
            fsync(journalFD)
            Glibc.close(journalFD)
        }
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

/// A start-up failure of the simulator.
struct SimError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
