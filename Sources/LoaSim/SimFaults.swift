import Foundation
import LoaCore
import Synchronization

/// SplitMix64 behind a lock (``SimLock``): the gateway simulator's only source of chance.
///
/// Deterministic for a seed and an order of draws: one client sending one request at a time gets the same
/// answers on every run. Concurrent clients draw in arrival order, so only the totals are reproducible
/// (within sampling error). https://prng.di.unimi.it/splitmix64.c
final class SimRandom: Sendable {
    private let state: SimLock<UInt64>

    init(seed: UInt64) { state = SimLock(seed) }

    static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    func next() -> UInt64 {
        state.withLock { s in
            s &+= 0x9E37_79B9_7F4A_7C15
            return SimRandom.mix(s)
        }
    }

    /// Uniform in [0, 1).
    func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// True with probability `p`; draws nothing when p is 0 or 1, so unused faults do not shift the sequence.
    func chance(_ p: Double) -> Bool {
        if p <= 0 { return false }
        if p >= 1 { return true }
        return unit() < p
    }

    /// Uniform in 0...n.
    func upTo(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n + 1)) }
}

/// What the simulator does with one send request that passed validation, decided before any message
/// is counted. The order of the checks is fixed: rate limit, error, throttle, timeout, reset.
enum SimAdmission: Equatable {
    /// Accept, then answer at once.
    case accept
    /// Accept (count, journal, receipts), then hold the answer `hang-seconds`: the client times out
    /// while the gateway has the message.
    case acceptAndHang
    /// Accept, then close the connection without an answer.
    case acceptAndReset
    /// Close the connection without an answer; nothing accepted.
    case reset
    /// `429` (Jasmin: `403 User throughput exceeded`); nothing accepted. `limited` is the token bucket.
    case throttle(limited: Bool)
    /// `--error-status` (500); nothing accepted.
    case error
}

/// The fault flags and the `--max-rate` token bucket.
final class SimFaults: Sendable {
    let config: SimConfig
    let random: SimRandom
    private let bucket: SimLock<TokenBucket?>
    private let start = ContinuousClock.now

    init(config: SimConfig, random: SimRandom) {
        self.config = config
        self.random = random
        bucket = SimLock(config.maxRate > 0
            ? TokenBucket(rate: config.maxRate, burst: max(1, Int(config.maxRate.rounded(.up))), now: 0) : nil)
    }

    /// Milliseconds since start on the monotonic clock.
    var elapsedMillis: UnixMillis {
        let d = ContinuousClock.now - start
        return d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
    }

    /// Milliseconds until the `--max-rate` bucket has a token again (0 without a limit).
    func millisUntilToken() -> Int64 {
        let now = elapsedMillis
        return bucket.withLock { b in b.map { b in
            var b = b
            return b.whenAvailable(1, now: now) - now
        } ?? 0 }
    }

    func admit() -> SimAdmission {
        if config.maxRate > 0 {
            let now = elapsedMillis
            if bucket.withLock({ $0!.take(upTo: 1, now: now) }) == 0 { return .throttle(limited: true) }
        }
        if random.chance(config.errorRate) { return .error }
        if random.chance(config.throttleRate) { return .throttle(limited: false) }
        if random.chance(config.timeoutRate) { return .acceptAndHang }
        if random.chance(config.resetRate) { return random.chance(config.resetAfterAccept) ? .acceptAndReset : .reset }
        return .accept
    }

    /// Sleeps `latency-ms` plus up to `latency-jitter-ms` on the calling (connection) thread.
    func delay(until stopping: () -> Bool) {
        let ms = config.latencyMs + random.upTo(config.latencyJitterMs)
        if ms > 0 { sleep(ms, until: stopping) }
    }

    /// Holds the calling (connection) thread `hang-seconds`.
    func hang(until stopping: () -> Bool) { sleep(Int(config.hangSeconds * 1000), until: stopping) }

    /// Sleeps `ms` in slices of at most 20 ms, so a shutdown ends it early.
    private func sleep(_ ms: Int, until stopping: () -> Bool) {
        let deadline = ContinuousClock.now + .milliseconds(ms)
        while !stopping() {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return }
            usleep(UInt32(min(20_000, left.components.seconds * 1_000_000 + left.components.attoseconds / 1_000_000_000_000)))
        }
    }
}
