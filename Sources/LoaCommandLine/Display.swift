import Foundation
import LoaCore

/// How the CLI shows times, shares and colour: one place, so every command says them the same way.
enum Display {
    /// Colour and cursor control only on a terminal that takes them, and never when the operator said no:
    /// `--no-color`, `NO_COLOR` with any non-empty value (https://no-color.org), or `TERM=dumb`.
    static func colorAllowed(noColorFlag: Bool, fd: Int32 = STDOUT_FILENO,
                             environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        if noColorFlag { return false }
        if let v = environment["NO_COLOR"], !v.isEmpty { return false }
        if environment["TERM"] == "dumb" { return false }
        return isatty(fd) == 1
    }

    /// A share as a percentage with one decimal, rounded down: 99.96% is `99.9%`, never `100.0%` while
    /// anything is left (issue 19: `show` said 100.0% with messages still queued).
    static func percent(_ fraction: Double) -> String {
        guard fraction < 1 else { return "100.0%" }
        let tenths = (max(0, fraction) * 1000).rounded(.down)
        return String(format: "%.1f%%", min(999, tenths) / 10)
    }

    /// A time in the campaign's zone, to the second: `2026-12-02 14:05:07 +07:00`. Prose never shows
    /// milliseconds; JSON keeps the API's UTC numbers.
    static func time(_ t: UnixMillis, zone: String?) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = zone.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss xxx"
        return f.string(from: Date(timeIntervalSince1970: Double(t) / 1000))
    }

    /// A duration in words to the minute or second: `2 h 05 min`, `3 min 20 s`, `45 s`.
    static func duration(_ millis: Int64) -> String {
        let s = max(0, millis / 1000)
        if s >= 3600 { return String(format: "%d h %02d min", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return "\(s / 60) min \(s % 60) s" }
        return "\(s) s"
    }

    /// A JSON number as Int64 (JSONSerialization gives Int, Int64 or Double).
    static func int64(_ v: Any?) -> Int64? {
        (v as? NSNumber)?.int64Value ?? (v as? String).flatMap { Int64($0) }
    }
}

/// The words for rows that are not sent, one meaning each (defined in the README, "Words"):
/// - **opted out**: the number is on the daemon's global opt-out list (`loa optout add`, an opt-out reply);
/// - **excluded**: the number is on one of this campaign's exclusion files (`exclude` in the campaign file);
/// - **suppressed**: the message state of both: not sent because the number is opted out or excluded.
enum Words {
    /// A stored reason code in words (`opt-out` → `opted out`); other codes (`duplicate`, `invalid-number`, …)
    /// as they are.
    static func reason(_ code: String) -> String {
        switch code {
        case "opt-out": "opted out"
        default: code
        }
    }

    /// `3 suppressed (2 opted out, 1 excluded)` from a campaign's reason counts.
    static func suppressed(_ reasons: [String: Int]) -> String {
        let opted = reasons["opt-out"] ?? 0, excluded = reasons["excluded"] ?? 0
        return "\(opted + excluded) suppressed (\(opted) opted out, \(excluded) excluded)"
    }
}
