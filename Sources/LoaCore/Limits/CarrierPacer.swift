/// A carrier's limits as providers state them, and the one decision made from them: how many messages to
/// claim now, or when to look again.
///
/// Four limits, each held on its own: messages (or SMS parts) per second (`rate`), requests per second
/// (`requests_per_second`), requests in flight (`max_in_flight`) and recipients per request (`batch.max`).
/// A provider that counts requests (Infobip, SpeedSMS: 60 a minute) is not a provider that counts messages, and
/// one limit must not be paid in the other's coin: batches fill to `batch.max` whatever the request rate, and
/// the request rate holds whatever the batch size.
///
/// Pure, on the caller's clock; the caller owns the lock. One round:
/// 1. ``decide(now:)``: `.claim(n, requests: k)` takes the tokens for up to `n` messages in `k` requests, or
///    `.wait(until:)` says when tokens or a full batch will be there (nil: only a finishing request frees room).
/// 2. The caller claims up to `n` messages, sends them in requests of at most `batch.max`, and reports with
///    ``settle(granted:used:now:)`` what it used; unused tokens go back.
/// 3. Each finished request: ``finished(now:)``; each throttled one: ``throttled(retryAfterSeconds:now:)``.
///
/// **Batch fill.** A batching carrier's message bucket holds up to one second of messages, at least one full
/// batch when the rate allows it (`min(batch.max, rate × 1 s)`, and never less than the 0.1 s burst of fast
/// carriers). A batch waits for that many tokens (at most a second: the bucket fills in that time) unless the
/// last claim found the queue shorter than asked: then what is there goes now.
///
/// | rate | requests/s | batch.max | message burst | batches | recipients/s |
/// |---|---|---|---|---|---|
/// | 1000 | 2 | 100 | 100 | 100 every 0.5 s | 200 (request-limited) |
/// | 50 | none | 100 | 50 | 50 every 1 s | 50 (message-limited) |
/// | 10000 | none | 100 | 1000 | 10 × 100 every 0.1 s | 10000 |
/// | 30 | none | 1 | 3 | 1 | 30 |
///
/// **Adaptive slowing acts on the limit the provider signals.** A throttled request of a carrier that batches
/// or states `requests_per_second` lowers the request rate (halving at most once a second, ``AdaptiveRate``):
/// its batches stay full. On a carrier of one message per request the two rates are one, and the message rate
/// is lowered. A `Retry-After` (or reset) pauses either.
///
/// **A node's share in a cluster** (issue 21, ``apply(fraction:now:)``): several daemons on one store split each
/// carrier's limits, each using a fraction `f` of them (``ClusterShare``). The message rate, the request rate and
/// the message bucket's burst are scaled by `f`, so the cluster's rate and burst stay the configured ones; the
/// message burst is at least one (at least `batch.min` on a batching carrier). A request rate cannot be split into
/// buckets of less than one request (n nodes would start one each at once): the nodes take turns in time slots
/// instead (``stagger(index:of:)``), so the cluster's requests hold the rate and a burst of one.
///
/// **Claiming ahead.** Where requests are paced again as they leave (``claimAheadSeconds``, the dispatcher's pace at
/// the engine), the message bucket also holds that many seconds of messages beyond the burst: a claim's transaction
/// or a stalled thread then leaves messages waiting at the pace instead of the node's share unused.
/// Requests in flight are `max(1, ⌊max_in_flight × f⌋)`, so their sum never exceeds `max_in_flight` while
/// there are at most `max_in_flight` nodes; with more nodes than that each still keeps one (the cluster may then
/// have one request in flight per node). Adaptive slowing stays in the cluster's units: a throttling answer
/// lowers the cluster's rate, of which this node takes its fraction. `f` = 0: nothing is claimed.
///
/// | max_in_flight | nodes (f) | in flight per node | cluster |
/// |---|---|---|---|
/// | 32 | 3 (1/3) | 10 | 30 |
/// | 4 | 3 (1/3) | 1 | 3 |
/// | 2 | 3 (1/3) | 1 | 3 (more than 2: one each) |
public struct CarrierPacer: Sendable, Equatable {
    public enum Decision: Sendable, Equatable {
        /// Tokens for up to `messages` messages in up to `requests` requests are taken.
        case claim(messages: Int, requests: Int)
        /// Nothing now; look again at the time given (nil: when a request finishes).
        case wait(until: UnixMillis?)
    }

    public let batchMax: Int
    /// The fewest recipients one request may carry (`batch.min`): tokens gather to at least this many.
    public let batchMin: Int
    public let maxInFlight: Int
    public let requestsPerSecond: Double?
    /// Messages (or parts) per second, as configured.
    public let rate: Double
    /// True when throttling lowers the request rate rather than the message rate.
    public let adaptsRequests: Bool
    public private(set) var messages: TokenBucket
    public private(set) var requests: TokenBucket?
    public private(set) var adaptive: AdaptiveRate
    /// Requests in flight.
    public private(set) var inFlight = 0
    /// The last claim found fewer messages than it asked for: a batch does not wait to fill.
    public private(set) var queueShort = false
    /// This node's fraction of the carrier's limits (1: a daemon alone; 0: it claims nothing).
    public private(set) var fraction: Double = 1
    /// The message bucket's burst at fraction 1 (without the claim-ahead).
    public let fullBurst: Int
    /// Seconds of messages (at this node's rate) claimed ahead of their sending, beyond the burst: set when the
    /// requests are paced where they leave (``sendBurst``), so that a claim's transaction or a stalled thread does
    /// not leave the node's share unused (0: the bucket holds the burst alone, and paces the gateway itself).
    public let claimAheadSeconds: Double

    /// The burst of the bucket that paces requests where they leave: this node's share of the carrier's burst,
    /// at least one message (at least `batch.min` on a batching carrier).
    public var sendBurst: Int { Self.share(of: fullBurst, fraction: fraction, least: batchMax > 1 ? batchMin : 1) }

    static func share(of burst: Int, fraction: Double, least: Int) -> Int {
        max(least, Int((Double(burst) * fraction + 1e-9).rounded(.down)))
    }

    /// The message bucket's size for `fraction`: the share of the burst and the claim-ahead at the share's rate.
    private func claimBurst(fraction f: Double) -> Int {
        let ahead = claimAheadSeconds > 0 ? TokenBucket.burst(rate: rate * f, seconds: claimAheadSeconds) : 0
        return Self.share(of: fullBurst, fraction: f, least: batchMax > 1 ? batchMin : 1) + ahead
    }

    public init(rate: Double, requestsPerSecond: Double? = nil, maxInFlight: Int, batchMax: Int = 1, batchMin: Int = 1,
                claimAheadSeconds: Double = 0, now: UnixMillis) {
        self.rate = rate
        self.batchMax = max(1, batchMax)
        self.batchMin = min(max(1, batchMin), self.batchMax)
        self.maxInFlight = max(1, maxInFlight)
        self.requestsPerSecond = requestsPerSecond
        let quick = TokenBucket.burst(rate: rate, seconds: 0.1)
        let burst = self.batchMax > 1 ? max(quick, self.batchMin, min(self.batchMax, TokenBucket.burst(rate: rate, seconds: 1))) : quick
        fullBurst = burst
        self.claimAheadSeconds = claimAheadSeconds.isFinite ? max(0, claimAheadSeconds) : 0
        messages = TokenBucket(rate: rate, burst: burst, now: now)
        // One request at a time: evenly spaced requests hold a per-second limit and a per-minute window alike.
        requests = requestsPerSecond.map { TokenBucket(rate: $0, burst: 1, now: now) }
        adaptsRequests = self.batchMax > 1 || requestsPerSecond != nil
        // Without a stated request rate, throttling may have to bring a batching carrier's requests far below its
        // message rate (2 requests a second of 100 recipients against 1000 messages a second): floor 0.2/s.
        adaptive = adaptsRequests && requestsPerSecond == nil
            ? AdaptiveRate(configured: rate, floor: 0.2, now: now)
            : AdaptiveRate(configured: adaptsRequests ? requestsPerSecond! : rate, decrease: requestsPerSecond != nil ? 0.9 : 0.5, now: now)
        windowStart = now
        if self.claimAheadSeconds > 0 { messages.setBurst(claimBurst(fraction: 1), now: now) }
    }

    /// Requests started since `windowStart`, and the request rate of the last whole window (for throttling).
    private var windowStart: UnixMillis
    private var windowRequests = 0
    public private(set) var observedRequestRate: Double?

    /// The most messages one request carries given the message bucket: a full batch when the rate allows it.
    public var batchTarget: Int { min(batchMax, messages.burst) }

    /// The message rate allowed now (below `rate` after throttling a carrier of one message per request).
    public var allowedRate: Double { (adaptsRequests ? rate : adaptive.current) * fraction }

    /// The request rate allowed now, when requests are limited or adapted (nil: only by the message rate).
    public var allowedRequestRate: Double? {
        adaptsRequests && (requestsPerSecond != nil || adaptive.current < adaptive.configured) ? adaptive.current * fraction : nil
    }

    /// Requests this node may have in flight: its share of `max_in_flight`, at least one while it has a share.
    public var inFlightLimit: Int { Self.inFlight(maxInFlight, fraction: fraction) }

    /// `max(1, ⌊maxInFlight × fraction⌋)`, 0 for no share (the table in the type's comment).
    public static func inFlight(_ maxInFlight: Int, fraction: Double) -> Int {
        fraction <= 0 ? 0 : max(1, Int((Double(maxInFlight) * fraction + 1e-9).rounded(.down)))
    }

    /// This node's place among ``slotNodes`` live nodes for its request slots (``stagger(index:of:)``).
    public private(set) var slotIndex = 0
    public private(set) var slotNodes = 1
    /// The last cluster slot this node started a request in, and the one before (given back by an unused claim).
    private var lastSlot: Int64 = .min
    private var slotBefore: Int64 = .min

    /// Staggers this node's requests among `n` live nodes (issue 21): with a request rate, the cluster's time is cut
    /// into slots of one request at the cluster's rate (`1 / requests_per_second`, after adaptive slowing), slot `q`
    /// belonging to the node whose `index` is `q mod n`, and a node starts at most one request in each of its own
    /// slots, inside the slot. The nodes' slots never overlap, so the cluster's requests hold its rate *and* its burst
    /// of one request; a bucket of one request per node (what this replaces) let the n nodes start one each at once.
    /// The nodes read their time from their own clocks: a skew between them shortens the spacing, not the count.
    /// While a node joins or leaves, two may take the same place for a renewal round. `n` ≤ 1: the request bucket alone.
    public mutating func stagger(index: Int, of n: Int) {
        slotNodes = max(1, n)
        slotIndex = n > 1 ? min(max(0, index), n - 1) : 0
    }

    /// Takes `fraction` (0…1) of the carrier's limits from now on (``ClusterShare``): the rates and the message burst
    /// scaled, the tokens held cut to the new burst. Requests already in flight stay; new ones wait for room.
    public mutating func apply(fraction f: Double, now: UnixMillis) {
        let f = f.isNaN ? 0 : min(max(f, 0), 1)
        guard f != fraction else { return }
        fraction = f
        guard f > 0 else { return }
        messages.setBurst(claimBurst(fraction: f), now: now)
        // The adapted rates are scaled in decide(); the message rate of a carrier adapting its requests only here.
        if adaptsRequests { messages.setRate(rate * f, now: now) }
    }

    /// Until when a throttling answer's wait pauses the carrier (0: not paused).
    public func pausedUntil(now: UnixMillis) -> UnixMillis { adaptive.pausedUntil > now ? adaptive.pausedUntil : 0 }

    /// How many messages may be claimed now, in how many requests; takes their tokens.
    /// `maxRequests`: a cap from outside (a half-open breaker lets one probe request through).
    public mutating func decide(now: UnixMillis, maxRequests: Int = .max) -> Decision {
        guard fraction > 0 else { return .wait(until: nil) }
        let cluster = adaptive.rate(now: now)
        if cluster <= 0 { return .wait(until: adaptive.pausedUntil) }
        let adapted = cluster * fraction
        if adaptsRequests {
            if cluster < adaptive.configured || requests != nil {
                if requests == nil { requests = TokenBucket(rate: adapted, burst: 1, now: now) }
                if abs(requests!.rate - adapted) > 1e-9 { requests!.setRate(adapted, now: now) }
            }
        } else if abs(messages.rate - adapted) > 1e-9 {
            messages.setRate(adapted, now: now)
        }
        let room = inFlightLimit - inFlight
        guard room > 0 else { return .wait(until: nil) }
        var k = min(room, maxRequests)
        guard k > 0 else { return .wait(until: nil) }
        var slot: Int64?
        if requests != nil && slotNodes > 1 {
            // One request per own slot, started inside it (``stagger(index:of:)``), in the cluster's units.
            let length = 1000 / cluster
            let q = Int64((Double(now) / length).rounded(.down).clampedInt(0...Int(Int64.max / 4)))
            let n = Int64(slotNodes), mine = Int64(slotIndex)
            if q % n == mine && q > lastSlot {
                slot = q
                k = 1
            } else {
                let next = q + ((mine - q % n + n) % n == 0 ? n : (mine - q % n + n) % n)
                return .wait(until: max(now + 1, Int64((Double(next) * length).rounded(.up).clampedInt(0...Int(Int64.max / 4)))))
            }
        } else if requests != nil {
            let r = requests!.available(now)
            if r == 0 { return .wait(until: requests!.whenAvailable(1, now: now)) }
            k = min(k, r)
        }
        let have = messages.available(now)
        if have == 0 { return .wait(until: messages.whenAvailable(1, now: now)) }
        if have < batchMin {
            return .wait(until: messages.whenAvailable(batchMin, now: now))
        }
        if batchMax > 1 && have < batchTarget && !queueShort {
            // Let a full batch gather (at most a second: the bucket holds one second's messages).
            return .wait(until: messages.whenAvailable(batchTarget, now: now))
        }
        let n = messages.take(upTo: min(have, k * batchMax), now: now)
        let requestsNeeded = min(k, (n + batchMax - 1) / batchMax)
        if let slot {
            slotBefore = lastSlot
            lastSlot = slot
        } else if requests != nil { _ = requests!.take(upTo: requestsNeeded, now: now) }
        inFlight += requestsNeeded
        count(requestsNeeded, now: now)
        return .claim(messages: n, requests: requestsNeeded)
    }

    /// What a claim used of a grant: `used.messages` messages in `used.requests` requests (more requests than
    /// granted when batches must share a text, each its own request), with `extraParts` charged to a rate in
    /// parts. Unused tokens go back; a short claim marks the queue short.
    public mutating func settle(granted: (messages: Int, requests: Int), used: (messages: Int, requests: Int), extraParts: Int = 0,
                                now: UnixMillis) {
        if used.messages < granted.messages {
            messages.giveBack(granted.messages - used.messages)
            queueShort = true
        } else {
            queueShort = false
        }
        if extraParts > 0 { messages.charge(extraParts, now: now) }
        // A slot whose claim found nothing may serve the next claim.
        if used.requests == 0 && granted.requests > 0 { lastSlot = slotBefore }
        let extraRequests = used.requests - granted.requests
        if extraRequests < 0 {
            requests?.giveBack(-extraRequests)
        } else if extraRequests > 0 {
            requests?.charge(extraRequests, now: now)
        }
        inFlight = max(0, inFlight + extraRequests)
        count(extraRequests, now: now)
    }

    private mutating func count(_ n: Int, now: UnixMillis) {
        if now - windowStart >= 1000 {
            observedRequestRate = Double(windowRequests) * 1000 / Double(now - windowStart)
            windowStart = now
            windowRequests = 0
        }
        windowRequests += n
    }

    /// New work may exist (a campaign committed): the next batch waits to fill again.
    public mutating func workArrived() { queueShort = false }

    /// A request finished, whatever its outcome.
    public mutating func finished() { inFlight = max(0, inFlight - 1) }

    /// The gateway throttled a request: slow the limit it signals, and pause for the wait it gave.
    public mutating func throttled(retryAfterSeconds: Double?, now: UnixMillis) {
        // The observed rate is this node's: in the cluster's units it is that over the node's fraction.
        let observed = adaptsRequests ? observedRequestRate.map { fraction > 0 ? $0 / fraction : $0 } : nil
        adaptive.throttled(retryAfterSeconds: retryAfterSeconds, now: now, observed: observed)
    }

    /// Tokens in the message bucket now (for the operator's view).
    public mutating func tokens(now: UnixMillis) -> Int { messages.available(now) }
}
