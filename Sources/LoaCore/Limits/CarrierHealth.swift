/// How fast to send to a carrier that pushes back: multiplicative decrease on throttling, additive probe back up.
///
/// Pure, on the caller's clock. A throttling answer halves the rate (at most once a second, so a burst of
/// answers to requests already in flight counts once) and honours `Retry-After` by pausing; every second
/// without throttling adds 5% of the configured rate back, up to it.
///
/// | event | rate (configured 100/s) |
/// |---|---|
/// | start | 100 |
/// | throttled at t=0 | 50 |
/// | throttled again at t=0.5 s | 50 (same second) |
/// | throttled at t=1.2 s | 25 |
/// | 10 quiet seconds later | 75 |
///
/// `decrease` is the factor a throttling answer applies: ½ by default, when the gateway's limit is not known;
/// 0.9 for a limit the provider states (`requests_per_second`), where a throttling answer is jitter at the edge of
/// a known limit (Jasmin's minimum spacing between submits refuses a request that came 5 ms early), not a wrong
/// estimate: halving there lost a third of a run's pace to one answer, while a stated limit that is wrong still
/// comes down by a tenth a second.
public struct AdaptiveRate: Sendable, Equatable {
    public let configured: Double
    /// The lowest rate throttling brings it to (5% of the configured rate unless given).
    public let floor: Double
    public private(set) var current: Double
    private var lastDecrease: UnixMillis?
    private var lastIncrease: UnixMillis
    public private(set) var pausedUntil: UnixMillis = 0

    public let decrease: Double

    public init(configured: Double, floor: Double? = nil, decrease: Double = 0.5, now: UnixMillis) {
        self.decrease = min(max(decrease, 0.05), 0.99)
        self.configured = configured
        self.floor = min(configured, floor ?? configured * 0.05)
        current = configured
        lastIncrease = now
    }

    /// `observed`: the rate actually reached when it is below the allowed one (a limit never reached says
    /// nothing about the gateway's): halving starts from it.
    public mutating func throttled(retryAfterSeconds: Double?, now: UnixMillis, observed: Double? = nil) {
        if lastDecrease.map({ now - $0 >= 1000 }) ?? true {
            current = max(floor, min(current, observed.map { max($0, floor) } ?? current) * decrease)
            lastDecrease = now
        }
        if let ra = retryAfterSeconds, ra > 0 { pausedUntil = max(pausedUntil, now + Int64(min(ra, 3600) * 1000)) }
        lastIncrease = max(now, pausedUntil)  // a pause is not a quiet second
    }

    /// The rate to use now (0 while paused by Retry-After).
    public mutating func rate(now: UnixMillis) -> Double {
        if now < pausedUntil { return 0 }
        let seconds = (now - lastIncrease) / 1000
        if seconds > 0 {
            current = min(configured, current + configured * 0.05 * Double(seconds))
            lastIncrease += seconds * 1000
        }
        return current
    }
}

/// A circuit breaker per carrier: after `threshold` consecutive failed requests it opens and the carrier gets
/// no traffic (its messages wait, they do not fail); after a cooldown one probe request is let through
/// (half-open); its success closes the breaker, its failure reopens it with a doubled cooldown (capped).
public struct CircuitBreaker: Sendable, Equatable {
    public enum State: String, Sendable, Codable { case closed, open, halfOpen = "half-open" }

    public let threshold: Int
    public let baseCooldownMillis: Int64
    public let maxCooldownMillis: Int64
    public private(set) var state: State = .closed
    private var failures = 0
    private var cooldown: Int64
    private var openedAt: UnixMillis = 0
    private var probeOut = false

    public init(threshold: Int = 5, baseCooldownMillis: Int64 = 5_000, maxCooldownMillis: Int64 = 300_000) {
        self.threshold = max(1, threshold)
        self.baseCooldownMillis = baseCooldownMillis
        self.maxCooldownMillis = maxCooldownMillis
        cooldown = baseCooldownMillis
    }

    /// How many requests may start now (nil: no limit from the breaker).
    public mutating func allowance(now: UnixMillis) -> Int? {
        switch state {
        case .closed: return nil
        case .open:
            guard now - openedAt >= cooldown else { return 0 }
            state = .halfOpen
            probeOut = false
            return allowance(now: now)
        case .halfOpen:
            return probeOut ? 0 : 1
        }
    }

    /// A request started (counts the half-open probe).
    public mutating func started() {
        if state == .halfOpen { probeOut = true }
    }

    /// When the breaker lets traffic through again, if open.
    public func reopensAt() -> UnixMillis? { state == .open ? openedAt + cooldown : nil }

    public mutating func succeeded() {
        failures = 0
        if state != .closed {
            state = .closed
            cooldown = baseCooldownMillis
        }
    }

    public mutating func failed(now: UnixMillis) {
        switch state {
        case .closed:
            failures += 1
            if failures >= threshold { open(now) }
        case .halfOpen:
            cooldown = min(maxCooldownMillis, cooldown * 2)
            open(now)
        case .open:
            break
        }
    }

    /// Opens at once, whatever the count: an answer that no retry soon can change (the gateway refused the
    /// credentials). After the cooldown one probe goes as usual; a refused probe doubles the cooldown.
    public mutating func trip(now: UnixMillis) {
        switch state {
        case .closed: open(now)
        case .halfOpen: failed(now: now)
        case .open: break
        }
    }

    private mutating func open(_ now: UnixMillis) {
        state = .open
        openedAt = now
        failures = 0
        probeOut = false
    }
}
