/// How much more a carrier may be handed now so that its gateway can pass on everything before the deadline.
///
/// A gateway with a queue (Kannel's store, Jasmin's) accepts at whatever rate Loa sends and passes messages
/// on to the SMSC at its own pace. Loa's deadline used to end at the hand-off: at 50/s into a Kannel whose
/// SMSC link passes 5/s, everything was handed over early and the queue delivered hundreds of messages after
/// the deadline. This window keeps what is handed over but not yet passed on within what the gateway can
/// still pass on before the earliest deadline among the carrier's running campaigns.
///
/// Pure, on the caller's clock, one per carrier. The dispatcher tells it:
/// - ``handedOver(_:at:)`` when requests start (in flight counts: the gateway will have it),
/// - ``withdrawn(_:)`` when the gateway did not take a message (refused, throttled, failed),
/// - ``passedOn(_:at:)`` when a receipt says the gateway passed the message on (smsc-accepted, buffered at the
///   SMSC, or any final receipt),
/// - ``throttled(at:)`` when the gateway pushes back,
/// and asks ``room(deadline:now:)`` how many more may go now.
///
/// **The pace** is learned from pass-on receipts, counting only *busy* intervals: the time between two
/// pass-ons where the second message was already handed over before the first pass-on (it was waiting in
/// the gateway's queue). Idle time and receipt latency are thereby left out: a gateway that is faster than
/// Loa is measured at Loa's own rate at most, which only limits the last seconds before a deadline, where the
/// receipt latency would make a message late anyway. Busy intervals are summed into samples of at least
/// `sampleMillis` and smoothed (`smoothing`, an exponential moving average). A throttling answer lowers the
/// pace by `throttleFactor` (at most once a second).
///
/// **The room**: with `usable = (deadline − now) × (1 − marginFraction) − marginSeconds`, the window is
/// `⌊pace × usable⌋` and the room is `window − outstanding`. The fraction covers an error in the learned
/// pace, the seconds cover receipt latency. Before any pace is known, the window is `probeMessages` (0 too once
/// `usable` is not positive).
///
/// | pace | deadline in | usable | window | outstanding | room |
/// |---|---|---|---|---|---|
/// | unknown | 30 s | 25 s | 100 (probe) | 0 | 100 |
/// | 5/s | 30 s | 25 s | 125 | 100 | 25 |
/// | 5/s | 12 s | 8.8 s | 44 | 50 | 0 |
/// | 5/s | 2 s | < 0 | 0 | 3 | 0 |
///
/// **Never stall**: when messages are outstanding and no pass-on receipt at all came for `silenceMillis`
/// (the gateway sends none: receipts not configured, or a gateway that reports only much later), the window
/// stops limiting (``isSilent``, reported once through ``Event/silenced(outstanding:)``) and forgets what is
/// outstanding; the next receipt resumes it. Outstanding messages older than `receiptTimeoutMillis` drop out
/// (the store makes them `unknown` then too).
public struct HandoffWindow: Sendable, Equatable {
    public struct Settings: Sendable, Equatable {
        /// Messages handed over before any pace is known.
        public var probeMessages: Int
        public var marginSeconds: Double = 2
        public var marginFraction: Double = 0.1
        public var silenceMillis: Int64 = 60_000
        public var receiptTimeoutMillis: Int64 = 72 * 3_600_000
        public var sampleMillis: Int64 = 1_000
        public var smoothing: Double = 0.3
        public var throttleFactor: Double = 0.7

        public init(probeMessages: Int, receiptTimeoutMillis: Int64 = 72 * 3_600_000) {
            self.probeMessages = max(1, probeMessages)
            self.receiptTimeoutMillis = receiptTimeoutMillis
        }
    }

    /// What the caller should log (once per change).
    public enum Event: Sendable, Equatable {
        /// No pass-on receipt for `silenceMillis` while messages were outstanding: the window stopped limiting.
        case silenced(outstanding: Int)
        /// A pass-on receipt came after a silence: the window limits again.
        case resumed
    }

    public let settings: Settings
    /// Handed over, not yet passed on: message id → when it was handed over.
    public private(set) var outstanding: [Int64: UnixMillis] = [:]
    /// The learned pass-on pace in messages per second (nil: not known yet).
    public private(set) var pace: Double?
    public private(set) var isSilent = false
    /// The last pass-on receipt, or when messages became outstanding after none were.
    private var quietSince: UnixMillis
    private var lastPassOn: UnixMillis?
    private var busyCount = 0
    private var busyMillis: Int64 = 0
    private var lastThrottle: UnixMillis?
    private var lastDropCheck: UnixMillis

    public init(settings: Settings, now: UnixMillis) {
        self.settings = settings
        quietSince = now
        lastDropCheck = now
    }

    public var outstandingCount: Int { outstanding.count }

    /// Messages the gateway was handed (requests started) at `at`.
    public mutating func handedOver(_ ids: some Sequence<Int64>, at: UnixMillis) {
        if outstanding.isEmpty { quietSince = at }
        for id in ids { outstanding[id] = at }
    }

    /// A message the gateway did not take after all (refused, throttled, failed, no answer): not outstanding.
    public mutating func withdrawn(_ id: Int64) {
        outstanding.removeValue(forKey: id)
    }

    /// A receipt says the gateway passed a message on. `id` nil: a receipt that names only the gateway's id;
    /// the oldest outstanding message counts as passed on (gateways pass on in order). Returns whether it was
    /// outstanding (a repeat or a second receipt of the same message changes nothing, nor the pace).
    /// `pace` false: it left the gateway without taking the link's time (dropped from its queue at validity end).
    @discardableResult
    public mutating func passedOn(_ id: Int64?, at: UnixMillis, pace countsForPace: Bool = true) -> Bool {
        let key: Int64?
        if let id { key = id } else { key = outstanding.min { ($0.value, $0.key) < ($1.value, $1.key) }?.key }
        guard let key, let handed = outstanding.removeValue(forKey: key) else { return false }
        quietSince = at
        guard countsForPace else { return true }
        if let last = lastPassOn, handed <= last, at >= last {
            // Busy: it was waiting in the gateway's queue since the previous pass-on.
            busyCount += 1
            busyMillis += at - last
            if busyMillis >= settings.sampleMillis {
                let sample = Double(busyCount) * 1000 / Double(busyMillis)
                pace = pace.map { $0 + settings.smoothing * (sample - $0) } ?? sample
                busyCount = 0
                busyMillis = 0
            }
        }
        lastPassOn = max(lastPassOn ?? at, at)
        return true
    }

    /// Any pass-on receipt, also for a message this window does not track (handed over before a silence):
    /// proof the gateway sends receipts, which ends a silence.
    @discardableResult
    public mutating func heardFrom(at: UnixMillis) -> Event? {
        quietSince = max(quietSince, at)
        guard isSilent else { return nil }
        isSilent = false
        return .resumed
    }

    /// The gateway throttled: it passes on less than learned.
    public mutating func throttled(at: UnixMillis) {
        guard let p = pace, lastThrottle.map({ at - $0 >= 1000 }) ?? true else { return }
        pace = p * settings.throttleFactor
        lastThrottle = at
    }

    /// Drops timed-out messages and notices a silence; call before ``room(deadline:now:)``.
    @discardableResult
    public mutating func advance(to now: UnixMillis) -> Event? {
        if now - lastDropCheck >= 1000 {
            lastDropCheck = now
            let cutoff = now - settings.receiptTimeoutMillis
            if outstanding.values.contains(where: { $0 < cutoff }) { outstanding = outstanding.filter { $0.value >= cutoff } }
        }
        if outstanding.isEmpty { quietSince = max(quietSince, now - 1); return nil }
        guard !isSilent, now - quietSince >= settings.silenceMillis else { return nil }
        isSilent = true
        let n = outstanding.count
        // Not tracked while silent: no pass-on would ever take them out, and the map would only grow.
        outstanding.removeAll()
        lastPassOn = nil
        return .silenced(outstanding: n)
    }

    /// The most messages that can go now: nil when the window does not limit (silent), else `window − outstanding`
    /// (0 at least).
    public func room(deadline: UnixMillis, now: UnixMillis) -> Int? {
        if isSilent { return nil }
        return max(0, window(deadline: deadline, now: now) - outstanding.count)
    }

    /// What may be outstanding at `now` for a deadline (see the table above).
    public func window(deadline: UnixMillis, now: UnixMillis) -> Int {
        let usable = Double(deadline - now) / 1000 * (1 - settings.marginFraction) - settings.marginSeconds
        guard usable > 0 else { return 0 }
        guard let pace else { return settings.probeMessages }
        return Int(min(pace * usable, 1e9))
    }
}
