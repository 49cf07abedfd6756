/// What a gateway's rate-limit headers say about when to send again: one parser for every adapter.
///
/// Providers say "not before" in several dialects; all are read here, in this order of precedence:
///
/// | header | forms read | example |
/// |---|---|---|
/// | `Retry-After` (RFC 9110 §10.2.3) | delta-seconds, HTTP-date | `120`, `Wed, 21 Oct 2026 07:28:00 GMT` |
/// | `RateLimit` (draft-ietf-httpapi-ratelimit-headers) | structured list `"name";r=0;t=30` (drafts 08+) or dictionary `limit=10, remaining=0, reset=30` (drafts up to 07) | `"default";r=0;t=30` |
/// | `RateLimit-Reset` (drafts up to 07) | delta-seconds | `30` |
/// | `X-RateLimit-Reset`, `X-Rate-Limit-Reset` (SpeedSMS, GitHub, SendGrid, Twitter) | delta-seconds, epoch seconds, epoch milliseconds, HTTP-date | `17`, `1392815263` |
///
/// A reset that is a plain number is told apart by size: below 10^9 it is seconds from now (10^9 s is 31 years, no
/// window is that long); from 10^9 it is a Unix time in seconds (10^9 is September 2001), from 10^12 in milliseconds.
/// A time already past means "now" (0 s). `RateLimit-Policy` (`"default";q=100;w=60`, or `100;w=60` in the older
/// drafts) gives the quota and its window, kept for the operator's view. Pure: the caller passes the clock.
///
/// | headers | now | wait (s) |
/// |---|---|---|
/// | `Retry-After: 5` | any | 5 |
/// | `X-Rate-Limit-Reset: 1700000060` | 1700000000 s | 60 |
/// | `X-RateLimit-Reset: 1700000060000` | 1700000000 s | 60 |
/// | `RateLimit: "default";r=0;t=12` | any | 12 |
/// | `RateLimit: limit=10, remaining=3, reset=12` | any | nil (requests remain) |
public struct RateLimitHeaders: Sendable, Equatable {
    /// Seconds to wait before the next request, when the headers say (never negative).
    public var waitSeconds: Double?
    /// Requests left in the current window, when said.
    public var remaining: Int?
    /// The quota of the window (`RateLimit-Policy` `q`, or the older `limit`), when said.
    public var limit: Int?
    /// The window of the quota in seconds (`RateLimit-Policy` `w`), when said.
    public var windowSeconds: Double?

    public init(waitSeconds: Double? = nil, remaining: Int? = nil, limit: Int? = nil, windowSeconds: Double? = nil) {
        self.waitSeconds = waitSeconds
        self.remaining = remaining
        self.limit = limit
        self.windowSeconds = windowSeconds
    }

    /// The header names this parser reads (for the HTTP engine's list of headers to keep).
    public static let names = ["Retry-After", "RateLimit", "RateLimit-Policy", "RateLimit-Reset", "RateLimit-Remaining",
                               "X-RateLimit-Reset", "X-Rate-Limit-Reset"]

    /// Reads the headers through `header` (a case-insensitive lookup by name). `now`: ms since the epoch, for
    /// HTTP dates and epoch resets.
    public static func parse(now: UnixMillis, header: (String) -> String?) -> RateLimitHeaders {
        var out = RateLimitHeaders()
        let nowSeconds = Double(now) / 1000
        if let p = header("RateLimit-Policy") { (out.limit, out.windowSeconds) = policy(p) }
        var resetFromRateLimit: Double?
        if let v = header("RateLimit") {
            let f = rateLimitField(v)
            out.remaining = f.remaining
            if out.limit == nil { out.limit = f.limit }
            resetFromRateLimit = f.reset
        }
        if out.remaining == nil, let r = header("RateLimit-Remaining").flatMap({ Int(trim($0)) }) { out.remaining = r }
        if let ra = header("Retry-After").flatMap({ retryAfter($0, nowSeconds: nowSeconds) }) {
            out.waitSeconds = ra
            return out
        }
        // A reset says when the window renews; it is a wait only when nothing remains (or the count is not said).
        var wait: Double? = resetFromRateLimit
        if wait == nil, let v = header("RateLimit-Reset"), let n = seconds(v) { wait = n }
        if wait == nil, let v = header("X-RateLimit-Reset") { wait = reset(v, nowSeconds: nowSeconds) }
        if wait == nil, let v = header("X-Rate-Limit-Reset") { wait = reset(v, nowSeconds: nowSeconds) }
        if let wait, (out.remaining ?? 0) <= 0 { out.waitSeconds = wait }
        return out
    }

    /// `Retry-After`: delta-seconds or an HTTP-date (seconds from now, at least 0).
    public static func retryAfter(_ value: String, nowSeconds: Double) -> Double? {
        let t = trim(value)
        if let n = Double(t), n.isFinite { return max(0, n) }
        return HTTPDate.parse(t).map { max(0, Double($0) - nowSeconds) }
    }

    /// An `X-RateLimit-Reset`-style value: delta-seconds, epoch seconds, epoch milliseconds or an HTTP-date.
    public static func reset(_ value: String, nowSeconds: Double) -> Double? {
        let t = trim(value)
        if let n = Double(t), n.isFinite {
            if n >= 1e12 { return max(0, n / 1000 - nowSeconds) }
            if n >= 1e9 { return max(0, n - nowSeconds) }
            return max(0, n)
        }
        return HTTPDate.parse(t).map { max(0, Double($0) - nowSeconds) }
    }

    /// The `RateLimit` field: the dictionary form (`limit=10, remaining=0, reset=30`) or the list form
    /// (`"default";r=0;t=30`, several policies possible: the one with the least remaining and longest reset wins).
    static func rateLimitField(_ value: String) -> (limit: Int?, remaining: Int?, reset: Double?) {
        var limit: Int?
        var remaining: Int?
        var reset: Double?
        for member in value.split(separator: ",") {
            let parts = member.split(separator: ";").map { trim(String($0)) }
            guard let head = parts.first else { continue }
            if let eq = head.firstIndex(of: "="), !head.hasPrefix("\"") {
                // Dictionary form: `key=value`.
                let key = head[..<eq].lowercased()
                let v = String(head[head.index(after: eq)...])
                switch key {
                case "limit": limit = Int(v)
                case "remaining": remaining = Int(v)
                case "reset": reset = seconds(v)
                default: break
                }
                continue
            }
            // List form: a policy name with `r` (remaining) and `t` (seconds to reset) parameters.
            var r: Int?
            var t: Double?
            for p in parts.dropFirst() {
                guard let eq = p.firstIndex(of: "=") else { continue }
                let key = p[..<eq].lowercased()
                let v = String(p[p.index(after: eq)...])
                if key == "r" { r = Int(v) }
                if key == "t" { t = seconds(v) }
            }
            if let r { remaining = min(remaining ?? r, r) }
            if let t, (r ?? 0) <= 0 { reset = max(reset ?? t, t) }
        }
        return (limit, remaining, reset)
    }

    /// `RateLimit-Policy`: `"default";q=100;w=60` (drafts 08+) or `100;w=60` (older): the first policy's quota and window.
    static func policy(_ value: String) -> (Int?, Double?) {
        guard let first = value.split(separator: ",").first else { return (nil, nil) }
        let parts = first.split(separator: ";").map { trim(String($0)) }
        var q = parts.first.flatMap { Int($0) }
        var w: Double?
        for p in parts.dropFirst() {
            guard let eq = p.firstIndex(of: "=") else { continue }
            let key = p[..<eq].lowercased()
            let v = String(p[p.index(after: eq)...])
            if key == "q" { q = Int(v) }
            if key == "w" { w = seconds(v) }
        }
        return (q, w)
    }

    /// A gateway's number of seconds: finite and at least 0, or nil (`nan`, `inf` and words are not waits).
    static func seconds(_ s: String) -> Double? {
        guard let n = Double(trim(s)), n.isFinite else { return nil }
        return max(0, n)
    }

    static func trim(_ s: String) -> String {
        var u = Substring(s)
        while let c = u.first, c == " " || c == "\t" { u.removeFirst() }
        while let c = u.last, c == " " || c == "\t" { u.removeLast() }
        return String(u)
    }
}

/// HTTP-dates (RFC 9110 §5.6.7): IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete RFC 850
/// `Sunday, 06-Nov-94 08:49:37 GMT` and asctime `Sun Nov  6 08:49:37 1994`, read by their parts, all as UTC.
public enum HTTPDate {
    static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    /// Seconds since the epoch, or nil when `text` is not an HTTP-date.
    public static func parse(_ text: String) -> Int64? {
        let tokens = text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "-" }).map(String.init)
        var day: Int?
        var month: Int?
        var year: Int?
        var time: (Int, Int, Int)?
        for t in tokens {
            if let m = months.firstIndex(of: t.lowercased()) { month = m + 1; continue }
            if t.contains(":") {
                let p = t.split(separator: ":").compactMap { Int($0) }
                guard p.count == 3 else { return nil }
                time = (p[0], p[1], p[2])
                continue
            }
            guard let n = Int(t) else { continue }
            if t.count == 4 { year = n } else if day == nil { day = n } else if year == nil { year = n < 70 ? 2000 + n : 1900 + n }
        }
        // Every part in its range before any arithmetic: the text is a gateway's.
        guard let day, let month, let year, let (h, mi, s) = time, (1...31).contains(day), (1...9999).contains(year),
              (0..<24).contains(h), (0..<60).contains(mi), (0..<61).contains(s) else { return nil }
        return daysFromCivil(year, month, day) * 86_400 + Int64(h * 3600 + mi * 60 + s)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int64 {
        let y = Int64(m <= 2 ? y0 - 1 : y0)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = Int64((m + 9) % 12)
        let doy = (153 * mp + 2) / 5 + Int64(d) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
