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

    init(rate: Double, burst: Int, inFlight: Int, inParts: Bool, clock: any TimeSource) {
        self.clock = clock
        self.inParts = inParts
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

    func admit(cost: Int) -> Int64? {
        let now = clock.now()
        let cost = inParts ? max(1, cost) : 1
        return state.withLock { s in
            // Full on the wire: an answer makes the engine ask again at once.
            if s.onWire >= s.limit { return 1000 }
            // A message of more parts than the burst goes once the bucket is full, the rest charged as debt.
            let need = min(cost, s.bucket.burst)
            guard s.bucket.available(now) >= need else { return max(1, s.bucket.whenAvailable(need, now: now) - now) }
            _ = s.bucket.take(upTo: need, now: now)
            s.bucket.charge(cost - need, now: now)
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
