/// A token bucket on a caller-supplied clock: `rate` tokens a second, holding at most `burst`.
///
/// Pure and deterministic so it is tested on a manual clock. Tokens are fractional, so slow rates polled often still accrue.
///
/// | rate | burst | after 0 ms | after 250 ms | after 10 s |
/// |---|---|---|---|---|
/// | 100/s | 10 | 10 (starts full) | 10 (capped) | 10 |
/// | 100/s | 10, take 10 at t=0 | 0 | 10 (25 accrued, capped) | 10 |
/// | 4/s | 1, take 1 at t=0 | 0 | 1 | 1 |
public struct TokenBucket: Sendable, Equatable {
    public private(set) var rate: Double
    public private(set) var burst: Int
    private var tokens: Double
    private var last: UnixMillis

    /// Rates below ``minRate`` or above ``maxRate`` (or not finite) are taken as the nearest bound, and a burst
    /// below 1 as 1: the limits are checked where they enter Loa, and a bucket never traps on what slipped past.
    public init(rate: Double, burst: Int, now: UnixMillis) {
        self.rate = TokenBucket.bounded(rate)
        self.burst = max(1, burst)
        self.tokens = Double(burst)
        self.last = now
    }

    private mutating func refill(_ now: UnixMillis) {
        guard now > last else { return }
        tokens = min(Double(burst), tokens + Double(now - last) * rate / 1000)
        last = now
    }

    /// Whole tokens available at `now`.
    public mutating func available(_ now: UnixMillis) -> Int {
        refill(now)
        return max(0, Int(tokens + 1e-9))
    }

    /// Takes up to `n` tokens; returns how many were taken.
    public mutating func take(upTo n: Int, now: UnixMillis) -> Int {
        refill(now)
        let got = max(0, min(n, Int(tokens + 1e-9)))
        tokens -= Double(got)
        return got
    }

    /// Charges `n` more tokens than were taken (e.g. the extra SMS parts of long messages); the bucket may go
    /// into debt, which later refills pay off, so the long-run rate stays exact in the charged unit.
    public mutating func charge(_ n: Int, now: UnixMillis) {
        guard n > 0 else { return }
        refill(now)
        tokens -= Double(n)
    }

    /// Gives back tokens that were taken but not used (e.g. fewer messages were queued than granted).
    public mutating func giveBack(_ n: Int) {
        tokens = min(Double(burst), tokens + Double(n))
    }

    /// When at least `n` whole tokens will be available (now if they already are).
    public mutating func whenAvailable(_ n: Int = 1, now: UnixMillis) -> UnixMillis {
        refill(now)
        let need = Double(min(n, burst)) - tokens
        if need <= 1e-9 { return now }
        return now &+ Int64((need * 1000 / rate).rounded(.up).clampedInt(0...Int(Int64.max / 4)))
    }

    /// For a request of `cost` tokens that goes once `min(cost, burst)` of them are there (a message of more SMS
    /// parts than the burst goes once the bucket is full): nil when it may go now, else the milliseconds (at
    /// least 1) to wait. Takes nothing: ``spend(_:now:)`` does, once every other limit said yes too.
    public mutating func waitToSpend(_ cost: Int, now: UnixMillis) -> Int64? {
        let need = min(cost, burst)
        guard available(now) < need else { return nil }
        return max(1, whenAvailable(need, now: now) - now)
    }
    /// Spends `cost` tokens for a request ``waitToSpend(_:now:)`` let go: what the bucket holds of them, the rest
    /// charged as debt.
    public mutating func spend(_ cost: Int, now: UnixMillis) {
        let need = min(cost, burst)
        _ = take(upTo: need, now: now)
        charge(cost - need, now: now)
    }
    /// Changes the rate, keeping the tokens already accrued.
    public mutating func setRate(_ newRate: Double, now: UnixMillis) {
        refill(now)
        rate = TokenBucket.bounded(newRate)
    }

    /// Changes how many tokens the bucket holds at most (a cluster node's share of a carrier's burst), keeping
    /// the tokens accrued up to the new size: a smaller bucket drops what it can no longer hold.
    public mutating func setBurst(_ newBurst: Int, now: UnixMillis) {
        refill(now)
        burst = max(1, newBurst)
        tokens = min(tokens, Double(burst))
    }

    /// One token per 10^6 s at the least, 10^9 a second at the most.
    public static let minRate = 1e-6
    public static let maxRate = 1e9

    static func bounded(_ r: Double) -> Double { r.isNaN ? minRate : min(max(r, minRate), maxRate) }

    /// The burst for `rate` tokens a second over `seconds`: at least 1, and never a trap however large the rate.
    public static func burst(rate: Double, seconds: Double) -> Int {
        max(1, (bounded(rate) * seconds).rounded(.up).clampedInt(1...Int(Int32.max)))
    }
}

/// A carrier's sending allowance: its token bucket plus a cap on requests in flight.
///
/// The dispatcher asks ``grant(max:now:)`` how many messages it may start now and reports each finished
/// request with ``finished(_:)``. Pure: the caller owns the clock and the lock.
public struct CarrierLimiter: Sendable {
    public var bucket: TokenBucket
    public let maxInFlight: Int
    public private(set) var inFlight: Int = 0

    public init(rate: Double, maxInFlight: Int, now: UnixMillis, burstSeconds: Double = 0.1) {
        let burst = TokenBucket.burst(rate: rate, seconds: burstSeconds)
        bucket = TokenBucket(rate: rate, burst: burst, now: now)
        self.maxInFlight = max(1, maxInFlight)
    }

    /// Takes permission for up to `max` sends now; the caller must call ``unused(_:)`` for grants it did not use.
    public mutating func grant(max: Int, now: UnixMillis) -> Int {
        let room = maxInFlight - inFlight
        guard room > 0, max > 0 else { return 0 }
        let n = bucket.take(upTo: min(max, room), now: now)
        inFlight += n
        return n
    }

    /// Returns grants that found nothing to send.
    public mutating func unused(_ n: Int) {
        guard n > 0 else { return }
        inFlight -= n
        bucket.giveBack(n)
    }

    /// A request finished (whatever its outcome).
    public mutating func finished(_ n: Int = 1) {
        inFlight = max(0, inFlight - n)
    }

    /// The earliest time a grant could succeed, or nil when only a finishing request can free room.
    public mutating func nextGrant(now: UnixMillis) -> UnixMillis? {
        guard inFlight < maxInFlight else { return nil }
        return bucket.whenAvailable(1, now: now)
    }
}
