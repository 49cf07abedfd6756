import Foundation

/// A campaign's daily send windows in a named time zone: nothing is sent outside them.
///
/// Pure: every question takes the time as input, so window edges are tested on a manual clock.
/// A window `22:00-06:00` wraps midnight. Times may carry seconds (`07:00:30`).
///
/// | windows (Asia/Ho_Chi_Minh) | at (local) | open? | next open |
/// |---|---|---|---|
/// | 07:00-22:00 | 21:59:59 | yes | now |
/// | 07:00-22:00 | 22:00:00 | no | 07:00 next day |
/// | 07:00-11:30, 13:30-21:00 | 12:00 | no | 13:30 same day |
/// | 22:00-06:00 | 02:00 | yes | now |
public struct SendWindows: Sendable, Equatable {
    public struct Window: Sendable, Equatable {
        /// Seconds after local midnight.
        public var start: Int
        public var end: Int
    }

    public let windows: [Window]
    public let timeZone: TimeZone

    public static let defaultZone = "Asia/Ho_Chi_Minh"

    /// 07:00–22:00 in Asia/Ho_Chi_Minh: the hours Decree 91/2020 allows for advertising, a sensible default for all.
    public static let standard = try! SendWindows(["07:00-22:00"], timeZone: defaultZone)

    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    public init(_ specs: [String], timeZone: String) throws(Invalid) {
        guard let tz = TimeZone(identifier: timeZone) else { throw Invalid(description: "unknown time zone '\(timeZone)'") }
        guard !specs.isEmpty else { throw Invalid(description: "at least one window is required") }
        var ws: [Window] = []
        for spec in specs {
            let parts = spec.split(separator: "-").map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let a = SendWindows.seconds(parts[0]), let b = SendWindows.seconds(parts[1]), a != b else {
                throw Invalid(description: "window '\(spec)' is not HH:MM-HH:MM (24-hour, e.g. 07:00-22:00)")
            }
            ws.append(Window(start: a, end: b))
        }
        windows = ws
        self.timeZone = tz
    }

    static func seconds(_ s: String) -> Int? {
        let f = s.split(separator: ":").map { Int($0) }
        guard (2...3).contains(f.count), f.allSatisfy({ $0 != nil }) else { return nil }
        let h = f[0]!, m = f[1]!, sec = f.count == 3 ? f[2]! : 0
        guard (0...24).contains(h), (0..<60).contains(m), (0..<60).contains(sec), h * 3600 + m * 60 + sec <= 86_400 else { return nil }
        return h * 3600 + m * 60 + sec
    }

    /// Local seconds since the epoch (UTC + the zone's offset at that instant).
    private func local(_ t: UnixMillis) -> Int64 {
        t / 1000 + Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(t) / 1000)))
    }

    public func isOpen(at t: UnixMillis) -> Bool {
        let l = local(t)
        let sod = Int(((l % 86_400) + 86_400) % 86_400)
        return windows.contains { w in
            w.start < w.end ? (sod >= w.start && sod < w.end) : (sod >= w.start || sod < w.end)
        }
    }

    /// The next instant at or after `t` when a window is open (`t` itself if open now). Around a change of the
    /// zone's offset a window's local start maps to one instant or another (or none, in a spring-forward gap,
    /// where the window opens at the change itself): each candidate is checked with ``isOpen(at:)``.
    public func nextOpen(after t: UnixMillis) -> UnixMillis {
        if isOpen(at: t) { return t }
        let l = local(t)
        let dayStart = l - (((l % 86_400) + 86_400) % 86_400)
        var best = Int64.max
        func consider(_ u: UnixMillis) { if u > t && u < best && isOpen(at: u) { best = u } }
        for day in 0...2 {
            for w in windows {
                let localStart = dayStart + Int64(day) * 86_400 + Int64(w.start)
                // Back to UTC with the offset in force a day either side: one of them is the offset at the start.
                for side in [-86_400, 86_400] as [Int64] {
                    let offset = Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(localStart + side))))
                    consider((localStart - offset) * 1000)
                }
            }
        }
        var change = t
        while let next = offsetChange(after: change), next < t + 3 * Self.day {
            consider(next)
            change = next
        }
        return best == Int64.max ? t + Self.day : best
    }

    /// The end of the window open at `t`, or nil if none is. The dispatcher uses it as the limit of a claim.
    public func closes(after t: UnixMillis) -> UnixMillis? {
        guard isOpen(at: t) else { return nil }
        // The end is reckoned at the offset in force at `from`. A change of offset before it moves the local clock:
        // the end is the change itself if the clock jumps out of every window, else it is reckoned again from there.
        var from = t
        for _ in 0..<4 {
            let end = endOfWindow(openAt: from)
            guard let change = offsetChange(after: from), change < end else { return end }
            if !isOpen(at: change) { return change }
            from = change
        }
        return endOfWindow(openAt: from)
    }

    /// The end of the window open at `t` (which is open), reckoned at the zone's offset at `t`.
    private func endOfWindow(openAt t: UnixMillis) -> UnixMillis {
        let l = local(t)
        let sod = Int(((l % 86_400) + 86_400) % 86_400)
        var best = Int64.max
        for w in windows {
            let inside = w.start < w.end ? (sod >= w.start && sod < w.end) : (sod >= w.start || sod < w.end)
            guard inside else { continue }
            let untilEnd = w.end > sod ? w.end - sod : 86_400 - sod + w.end
            best = min(best, t + Int64(untilEnd) * 1000 - (t % 1000))
        }
        return best
    }

    /// Seconds of open window between `from` and `to` (for deadline feasibility). While the zone's offset from
    /// UTC holds, every 24 hours open alike, so whole days are counted at once and only the rest is walked edge
    /// by edge: a deadline years away costs as little as one days away.
    public func openSeconds(from: UnixMillis, to: UnixMillis) -> Double {
        // Within years 1970-9999: the walk adds a day to its position, and a deadline of `.max` (a store written by
        // hand, an old benchmark) overflowed that addition and trapped the daemon in the campaign view.
        let to = min(max(to, 0), Self.latest)
        var t = min(max(from, 0), to)
        var total: Int64 = 0
        var steps = 0
        while t < to && steps < Self.stepLimit {
            let steady = min(to, offsetChange(after: t) ?? .max)
            let days = (steady - t) / Self.day
            if days > 0 {
                total += days * walkOpen(from: t, to: t + Self.day, steps: &steps)
                t += days * Self.day
            }
            total += walkOpen(from: t, to: steady, steps: &steps)
            t = steady
        }
        return Double(total) / 1000
    }

    /// The instant by which `seconds` of open window have passed, starting at `from` (nil if not within `limit`).
    /// Whole days are skipped at once while the zone's offset holds, as in ``openSeconds(from:to:)``. No time
    /// at all is spent at `from`.
    public func advance(from: UnixMillis, openSeconds seconds: Double, limit: UnixMillis) -> UnixMillis? {
        let limit = min(max(limit, 0), Self.latest)  // as in openSeconds(from:to:)
        var t = min(max(from, 0), limit)
        // Bounded (10^15 ms is 31,000 years): `seconds` may come from a division by a tiny rate.
        var left = Int64((seconds * 1000).clampedInt(0...1_000_000_000_000_000))
        if left <= 0 { return from }
        var steps = 0
        while t < limit && steps < Self.stepLimit {
            let steady = min(limit, offsetChange(after: t) ?? .max)
            let days = (steady - t) / Self.day
            if days > 0 {
                let perDay = walkOpen(from: t, to: t + Self.day, steps: &steps)
                if perDay > 0 {
                    // Whole days that leave part of `left` for the walk below.
                    let skip = max(0, min(days, (left - 1) / perDay))
                    left -= skip * perDay
                    t += skip * Self.day
                }
            }
            while t < steady && steps < Self.stepLimit {
                steps += 1
                if let close = closes(after: t) {
                    // Up to the stretch's end at most: whole days are counted again from there.
                    let end = min(close, steady)
                    if end - t >= left { return t + left }
                    left -= end - t
                    t = end
                } else {
                    t = nextOpen(after: t)
                }
            }
        }
        return nil
    }

    private static let day: Int64 = 86_400_000
    /// The last millisecond of year 9999: where the walks stop, far from Int64's edge.
    static let latest: UnixMillis = 253_402_300_799_999
    /// Window edges walked at most per question: a bound on work, far above what a few days of edges take.
    private static let stepLimit = 10_000

    /// Open milliseconds in [from, to), walked window edge by window edge (each edge counted in `steps`).
    private func walkOpen(from: UnixMillis, to: UnixMillis, steps: inout Int) -> Int64 {
        var t = from
        var total: Int64 = 0
        while t < to && steps < Self.stepLimit {
            steps += 1
            if let close = closes(after: t) {
                let end = min(close, to)
                total += end - t
                t = end
            } else {
                t = nextOpen(after: t)
            }
        }
        return total
    }

    /// The zone's next change of offset from UTC after `t` (daylight saving, or a change of its rules), or nil if
    /// it has none ahead.
    private func offsetChange(after t: UnixMillis) -> UnixMillis? {
        guard let next = timeZone.nextDaylightSavingTimeTransition(after: Date(timeIntervalSince1970: Double(t) / 1000)) else { return nil }
        return max(t + 1, UnixMillis((next.timeIntervalSince1970 * 1000).rounded()))
    }
}

/// Whether a campaign can finish before its deadline at the carriers' rates and within its windows.
public struct Feasibility: Sendable, Equatable, Codable {
    /// Seconds of sending the remaining messages need (carriers in parallel, each at its rate).
    public var neededSeconds: Double
    /// Seconds of open window left before the deadline.
    public var windowSeconds: Double
    /// When sending should end, if before the deadline.
    public var eta: UnixMillis?
    public var onTime: Bool
    public var warning: String?

    /// `remaining` maps carrier → messages still to send; `rates` carrier → messages/s; `maxRate` the campaign's own cap.
    public static func estimate(remaining: [String: Int64], rates: [String: Double], maxRate: Double?, windows: SendWindows,
                                start: UnixMillis, deadline: UnixMillis, now: UnixMillis) -> Feasibility {
        var needed = 0.0
        for (carrier, n) in remaining where n > 0 {
            needed = max(needed, Double(n) / max(rates[carrier] ?? 1, 0.001))
        }
        if let maxRate, maxRate > 0 { needed = max(needed, Double(remaining.values.reduce(0, +)) / max(maxRate, 0.001)) }
        let from = max(now, start)
        let window = from >= deadline ? 0 : windows.openSeconds(from: from, to: deadline)
        let eta = needed == 0 ? from : windows.advance(from: from, openSeconds: needed, limit: deadline)
        let onTime = eta != nil && needed <= window
        let warning = onTime ? nil : String(format: "needs %.1f h of sending; %.1f h of window left before the deadline", needed / 3600, window / 3600)
        return Feasibility(neededSeconds: needed, windowSeconds: window, eta: eta, onTime: onTime, warning: warning)
    }
}
