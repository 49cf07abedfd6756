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
/// `⌊pace × min(usable, horizonSeconds)⌋` and the room is `window − outstanding`. The fraction covers an error
/// in the learned pace, the seconds cover receipt latency. The horizon keeps at most ten minutes of the
/// gateway's work outstanding however far the deadline: the gateway stays busy all the same, and if its pace
/// drops (a link slows down, another client shares its queue) what it already holds is late by at most about
/// that much, where a backlog up to a deadline hours away would be late by hours. Messages Loa still holds can
/// be paused, cancelled or expired; those in a gateway's queue cannot. Not shorter: the pace is learned from
/// receipts, and when receipts lag (Loa's store busy, the gateway's callbacks slow) it is the receipts' pace;
/// a one-minute horizon then holds a fast campaign down to that pace (with it, the crash test's 2,500/s campaign
/// timed out twice when the whole suite ran on a loaded machine). Before any pace
/// is known, the window is `probeMessages` (0 too once `usable` is not positive).
///
/// | pace | deadline in | usable | window | outstanding | room |
/// |---|---|---|---|---|---|
/// | unknown | 30 s | 25 s | 100 (probe) | 0 | 100 |
/// | 5/s | 30 s | 25 s | 125 | 100 | 25 |
/// | 5/s | 12 s | 8.8 s | 44 | 50 | 0 |
/// | 5/s | 2 s | < 0 | 0 | 3 | 0 |
/// | 5/s | 1 h | 3 238 s | 3 000 (horizon 600 s) | 100 | 2 900 |
///
/// **Lost receipts** must not hold the window shut, but the order of pass-ons says nothing about them: Kannel's
/// bearerbox does not pass on in hand-over order (in the SMPP deadline run 194 of 253 messages reached the SMSC
/// after one handed over later), so taking the older unreported messages as passed on undercounted what Kannel
/// held and let 78 reach the SMSC after the deadline. A message is taken as lost only when it has been outstanding
/// for `lostAfterSeconds` (twice the horizon: the window never holds more than a horizon of the gateway's work,
/// so a message that waited twice as long is not in its queue any more), or past the receipt timeout. After a
/// restart the messages the store says are still at the gateway (``restore(_:)``) count against the window, but
/// not against the probe: a restart with many receipts lost learns the pace again from new messages instead of
/// waiting.
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
        /// The most of the gateway's work (at the learned pace) outstanding, however far the deadline.
        public var horizonSeconds: Double = 600
        public var sampleMillis: Int64 = 1_000
        /// How long a message may stay outstanding before its receipt is taken as lost (see *Lost receipts*).
        public var lostAfterSeconds: Double = 1_200
        /// How far apart the hand-over times of one 64-id chunk may be (``HandedOverSet``): a message's time
        /// reads up to this much late.
        public var chunkSpanMillis: Int64 = 1_000
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
    /// Handed over, not yet passed on, with when (``HandedOverSet``: about 1.5 bytes a message).
    private var outstanding: HandedOverSet
    /// The learned pass-on pace in messages per second (nil: not known yet).
    public private(set) var pace: Double?
    public private(set) var isSilent = false

    public static func == (a: HandoffWindow, b: HandoffWindow) -> Bool {
        a.settings == b.settings && a.outstanding == b.outstanding && a.pace == b.pace && a.isSilent == b.isSilent
    }
    /// The last pass-on receipt, or when messages became outstanding after none were.
    private var quietSince: UnixMillis
    private var lastPassOn: UnixMillis?
    private var busyCount = 0
    private var busyMillis: Int64 = 0
    private var lastThrottle: UnixMillis?
    private var lastDropCheck: UnixMillis

    public init(settings: Settings, now: UnixMillis) {
        self.settings = settings
        outstanding = HandedOverSet(spanMillis: settings.chunkSpanMillis)
        quietSince = now
        lastDropCheck = now
    }

    public var outstandingCount: Int { outstanding.count }
    /// The outstanding message ids in rising order (builds an array of them all: for tests and diagnostics).
    public var outstandingIDs: [Int64] { outstanding.ids }
    /// When an outstanding message was handed over (up to `chunkSpanMillis` late, see ``HandedOverSet``).
    public func handedOverAt(_ id: Int64) -> UnixMillis? { outstanding.handedOverAt(id) }

    /// Messages the gateway was handed (requests started) at `at`.
    public mutating func handedOver(_ ids: some Sequence<Int64>, at: UnixMillis) {
        if outstanding.isEmpty { quietSince = at }
        for id in ids { outstanding.insert(id, at: at) }
    }

    /// Entries of the expiry queue kept (current or not yet skipped): for tests of its memory.
    var orderEntries: Int { outstanding.queueEntries }

    /// At start: messages handed over before, still without a pass-on receipt (from the store), in any order;
    /// may be called more than once (the store streams them). Those already outstanding keep their time.
    public mutating func restore(_ entries: some Sequence<(id: Int64, at: UnixMillis)>) {
        for e in entries where outstanding.handedOverAt(e.id) == nil {
            outstanding.insert(e.id, at: e.at, restored: true)
        }
    }

    /// A message the gateway did not take after all (refused, throttled, failed, no answer): not outstanding.
    public mutating func withdrawn(_ id: Int64) {
        outstanding.remove(id)
    }

    /// A receipt says the gateway passed a message on. `id` nil: a receipt that names only the gateway's id;
    /// the oldest outstanding message counts as passed on (gateways pass on in order). Returns whether it was
    /// outstanding (a repeat or a second receipt of the same message changes nothing, nor the pace).
    /// `pace` false: it left the gateway without taking the link's time (dropped from its queue at validity end).
    @discardableResult
    public mutating func passedOn(_ id: Int64?, at: UnixMillis, pace countsForPace: Bool = true) -> Bool {
        guard let key = id ?? outstanding.oldest(), let handed = outstanding.remove(key) else { return false }
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
            outstanding.removeHandedOver(before: lostCutoff(now: now))
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

    /// Messages handed over before this are taken as lost (see *Lost receipts*) or past the receipt timeout.
    public func lostCutoff(now: UnixMillis) -> UnixMillis {
        now - min(settings.receiptTimeoutMillis, Int64((settings.lostAfterSeconds * 1000).clampedInt(0...Int(Int64.max / 2))))
    }

    /// The most messages that can go now: nil when the window does not limit (silent), else `window − outstanding`
    /// (0 at least).
    public func room(deadline: UnixMillis, now: UnixMillis) -> Int? {
        if isSilent { return nil }
        // Before a pace is known, the probe is for this run's messages (see *Lost receipts*).
        let counted = pace == nil ? outstanding.count - outstanding.restoredCount : outstanding.count
        return max(0, window(deadline: deadline, now: now) - counted)
    }

    /// What may be outstanding at `now` for a deadline (see the table above).
    public func window(deadline: UnixMillis, now: UnixMillis) -> Int {
        let usable = Double(deadline - now) / 1000 * (1 - settings.marginFraction) - settings.marginSeconds
        guard usable > 0 else { return 0 }
        guard let pace else { return settings.probeMessages }
        return Int(min(pace * min(usable, settings.horizonSeconds), 1e9))
    }
}
