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
final class CarrierSendPace: SendPace {
    private let bucket: Mutex<TokenBucket>
    private let clock: any TimeSource

    init(rate: Double, burst: Int, clock: any TimeSource) {
        self.clock = clock
        bucket = Mutex(TokenBucket(rate: rate, burst: burst, now: clock.now()))
    }

    /// Takes up the pacer's allowed rate and its send burst (cheap when they did not change).
    func follow(rate: Double, burst: Int) {
        let now = clock.now()
        bucket.withLock { b in
            if abs(b.rate - rate) > 1e-9 { b.setRate(rate, now: now) }
            if b.burst != burst { b.setBurst(burst, now: now) }
        }
    }

    func admit() -> Int64? {
        let now = clock.now()
        return bucket.withLock { b in
            if b.take(upTo: 1, now: now) == 1 { return nil }
            return max(1, b.whenAvailable(1, now: now) - now)
        }
    }

    /// How many seconds of messages a node claims ahead of their sending, beyond the burst: enough to cover a
    /// claim's transaction and a stalled dispatcher thread on a loaded machine (measured: up to a few hundred ms at
    /// load 12 on 2 cores). The claims stay bounded by the node's share of `max_in_flight` (a message waiting here
    /// holds its slot); a node killed meanwhile leaves them `unknown` like the requests on the wire.
    static let claimAheadSeconds = 0.25
}
