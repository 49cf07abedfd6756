import Foundation
import Synchronization

/// Milliseconds since the Unix epoch: the one time unit the core, the store and the log share.
///
/// An integer keeps comparisons exact and makes the store's columns plain `INTEGER`s.
public typealias UnixMillis = Int64

/// A source of the current time, injected so the scheduler and limiters can run on a manual clock in tests.
public protocol TimeSource: Sendable {
    func now() -> UnixMillis
}

/// The wall clock.
public struct SystemTimeSource: TimeSource {
    public init() {}
    public func now() -> UnixMillis {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// A clock that only moves when a test moves it.
public final class ManualTimeSource: TimeSource {
    private let current: Mutex<UnixMillis>
    public init(_ start: UnixMillis = 1_764_000_000_000) { current = Mutex(start) }
    public func now() -> UnixMillis { current.withLock { $0 } }
    public func advance(byMillis delta: Int64) { current.withLock { $0 += delta } }
    public func set(_ value: UnixMillis) { current.withLock { $0 = value } }
}

/// ISO 8601 formatting and parsing with an explicit offset, as campaign files and the delivery log use.
public enum ISOTime {
    /// Formats as `2026-11-24T08:00:00.123Z` (UTC, milliseconds). Hand-written digits: it runs twice per
    /// message for the delivery log, and `String(format:)` is several times slower.
    public static func format(_ ms: UnixMillis) -> String {
        var secs = time_t(ms >= 0 ? ms / 1000 : (ms - 999) / 1000)
        var tmv = tm()
        gmtime_r(&secs, &tmv)
        let millis = Int(((ms % 1000) + 1000) % 1000)
        var b = [UInt8](repeating: 0, count: 24)
        func put(_ v: Int, _ at: Int, _ width: Int) {
            var v = v
            for i in stride(from: at + width - 1, through: at, by: -1) {
                b[i] = UInt8(48 + v % 10)
                v /= 10
            }
        }
        put(Int(tmv.tm_year) + 1900, 0, 4); b[4] = 45
        put(Int(tmv.tm_mon) + 1, 5, 2); b[7] = 45
        put(Int(tmv.tm_mday), 8, 2); b[10] = 84
        put(Int(tmv.tm_hour), 11, 2); b[13] = 58
        put(Int(tmv.tm_min), 14, 2); b[16] = 58
        put(Int(tmv.tm_sec), 17, 2); b[19] = 46
        put(millis, 20, 3); b[23] = 90
        return String(decoding: b, as: UTF8.self)
    }

    /// Parses `YYYY-MM-DDTHH:MM[:SS[.fff]](Z|±HH:MM)`; an offset is required so a campaign never depends on the host's zone.
    public static func parse(_ text: String) -> UnixMillis? {
        let b = Array(text.utf8)
        func num(_ from: Int, _ len: Int) -> Int? {
            guard from + len <= b.count else { return nil }
            var v = 0
            for i in from..<(from + len) {
                let c = b[i]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard b.count >= 17, let y = num(0, 4), b[4] == 45, let mo = num(5, 2), b[7] == 45, let d = num(8, 2),
              b[10] == 84 || b[10] == 32, let h = num(11, 2), b[13] == 58, let mi = num(14, 2)
        else { return nil }
        var i = 16
        var sec = 0
        var frac = 0
        if i < b.count, b[i] == 58 {
            guard let s = num(i + 1, 2) else { return nil }
            sec = s
            i += 3
            if i < b.count, b[i] == 46 {
                i += 1
                var digits = 0
                while i < b.count, b[i] >= 48, b[i] <= 57 {
                    if digits < 3 { frac = frac * 10 + Int(b[i] - 48) }
                    digits += 1
                    i += 1
                }
                guard digits > 0 else { return nil }
                for _ in digits..<3 where digits < 3 { frac *= 10 }
            }
        }
        guard i < b.count else { return nil }
        var offsetMinutes = 0
        if b[i] == 90 || b[i] == 122 {
            i += 1
        } else if b[i] == 43 || b[i] == 45 {
            let sign = b[i] == 43 ? 1 : -1
            guard let oh = num(i + 1, 2), i + 3 < b.count, b[i + 3] == 58, let om = num(i + 4, 2) else { return nil }
            offsetMinutes = sign * (oh * 60 + om)
            i += 6
        } else {
            return nil
        }
        guard i == b.count, (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, sec < 61 else { return nil }
        let days = daysFromCivil(y, mo, d)
        guard civilDayValid(y, mo, d) else { return nil }
        let seconds = Int64(days) * 86_400 + Int64(h * 3600 + mi * 60 + sec) - Int64(offsetMinutes * 60)
        return seconds * 1000 + Int64(frac)
    }

    private static func civilDayValid(_ y: Int, _ m: Int, _ d: Int) -> Bool {
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        return d <= lengths[m - 1]
    }

    /// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
    private static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
