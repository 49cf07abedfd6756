import LoaCarriers
import LoaCore
import Synchronization

/// A carrier's rate where its requests leave (``SendPace``): the engine asks it just before each request's handle is
/// added, so the gateway sees this bucket's schedule (issue 21: no one-second window at the gateway above the
/// carrier's rate plus its burst, for one daemon or for the sum of a cluster's).
///
/// Why not the claim's tokens alone: they are taken before the claim's transaction, and the messages reach the
/// engine that transaction later. The delay varies (tens of milliseconds on PostgreSQL under load), so a late
/// claim's messages arrived together with the next claim's on-time ones and a second at the gateway held up to 335
/// for a limit of 300 and a burst of 30. With the pace here the claims run ahead of the sending instead
/// (``CarrierPacer/claimAheadSeconds``), and a slow claim no longer leaves the node's share unused.
///
/// Only for carriers of one message per request started on the engine thread (``OneExchangeAdapter``); the rate
/// and burst follow the pacer's (its share in a cluster, adaptive slowing) at every launch.
///
/// It also holds the node's share of `max_in_flight` on the wire (admitted and not yet over). The messages waiting
/// here hold slots too (the pacer counts from the claim to the answer), so a node killed leaves at most its share of
/// `max_in_flight` `unknown`, as before; and they leave only under the lease they were claimed under
/// (``Dispatcher/leaseTerm``).
final class CarrierSendPace: SendPace {
    private struct State {
        var bucket: TokenBucket
        var onWire = 0
        var limit: Int
    }

    private let state: Mutex<State>
    private let clock: any TimeSource
    /// The carrier's rate counts SMS parts: a request costs its message's parts, else one.
    private let inParts: Bool
    /// The daemon's cap over all carriers (`global_rate`) where requests leave, shared by every carrier's pace.
    private let global: GlobalSendPace?

    init(rate: Double, burst: Int, inFlight: Int, inParts: Bool, global: GlobalSendPace? = nil, clock: any TimeSource) {
        self.clock = clock
        self.inParts = inParts
        self.global = global
        state = Mutex(State(bucket: TokenBucket(rate: rate, burst: burst, now: clock.now()), limit: inFlight))
    }

    /// Takes up the pacer's allowed rate, its send burst and its requests in flight (cheap when they did not change).
    func follow(rate: Double, burst: Int, inFlight: Int) {
        let now = clock.now()
        state.withLock { s in
            if abs(s.bucket.rate - rate) > 1e-9 { s.bucket.setRate(rate, now: now) }
            if s.bucket.burst != burst { s.bucket.setBurst(burst, now: now) }
            s.limit = inFlight
        }
    }

    func admit(cost parts: Int) -> Int64? {
        let now = clock.now()
        let cost = inParts ? max(1, parts) : 1
        return state.withLock { s in
            // Full on the wire: an answer makes the engine ask again at once.
            if s.onWire >= s.limit { return 1000 }
            // A message of more parts than the burst goes once the bucket is full, the rest charged as debt.
            if let wait = s.bucket.waitToSpend(cost, now: now) { return wait }
            // The global cap counts parts whatever the carrier's unit. Its lock is taken inside this one and never
            // the other way round.
            if let g = global, let wait = g.take(parts: max(1, parts), now: now) { return wait }
            s.bucket.spend(cost, now: now)
            s.onWire += 1
            return nil
        }
    }

    func done() {
        state.withLock { $0.onWire = max(0, $0.onWire - 1) }
    }

    /// How many seconds of messages a node may claim ahead of their sending, beyond the burst: enough to cover a
    /// claim's transaction and a stalled dispatcher thread on a loaded machine (a gap of about 330 ms across the
    /// cluster was seen at load 10 on 2 cores with a quarter of a second). Bounded by the node's share of
    /// `max_in_flight` too: the messages waiting here are claimed (`sending`) and hold their slots.
    static let claimAheadSeconds = 0.5
}

/// The global cap (`global_rate`, SMS parts a second over all carriers) where requests leave: every paced carrier's
/// ``CarrierSendPace`` takes a request's parts from this one bucket too, so the gateways together see this bucket's
/// schedule, not the claims'. The dispatcher's own global bucket still decides what is claimed; its claims reach the
/// engine a store transaction later, and a late claim's messages can then leave together with the next claim's, as
/// was measured for a carrier's rate (``CarrierSendPace``: 335 in a second for 300 and a burst of 30).
/// Carriers that send batches, or not on the engine thread, are held by the dispatcher's bucket alone.
final class GlobalSendPace: Sendable {
    private let bucket: Mutex<TokenBucket>

    init(rate: Double, burst: Int, now: UnixMillis) {
        bucket = Mutex(TokenBucket(rate: rate, burst: max(1, burst), now: now))
    }

    /// Takes up the node's share of the cap (a cluster's share; unchanged at a share of 0, as the dispatcher's).
    func follow(rate: Double, burst: Int, now: UnixMillis) {
        bucket.withLock { b in
            if abs(b.rate - rate) > 1e-9 { b.setRate(rate, now: now) }
            if b.burst != max(1, burst) { b.setBurst(max(1, burst), now: now) }
        }
    }

    /// nil when `parts` may leave now (taken; a message of more parts than the burst goes once the bucket is full,
    /// the rest charged as debt), else the milliseconds (at least 1) to wait.
    func take(parts: Int, now: UnixMillis) -> Int64? {
        bucket.withLock { b in
            if let wait = b.waitToSpend(parts, now: now) { return wait }
            b.spend(parts, now: now)
            return nil
        }
    }
}
