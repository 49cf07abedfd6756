/// What is actually leaving a campaign: samples of its messages still to send (queued or in flight), from which
/// the measured rate over the last minute and the time it last moved follow.
///
/// Why measured and not configured: a campaign whose gateway is down, whose breaker is open or whose carrier is
/// throttled sends nothing while the configured rates still promise an end on time (issue 19: `campaign show`
/// said "on time" through an outage). The rate here is the fall of the remaining count over the newest samples,
/// so a stall reads 0 within a window, whatever the configuration says.
///
/// Worked example (samples every 2 s, ``window`` 60 s): remaining 1,000 at t = 0 s, 700 at t = 30 s, 400 at
/// t = 60 s: rate (1,000 − 400) / 60 s = 10 messages/s. Nothing leaves from t = 60 s on: at t = 120 s the window
/// holds only samples of 400, the rate is 0, and ``lastMovedAt`` stays at the sample of t = 60 s.
public struct CampaignPace: Sendable, Equatable {
    public struct Sample: Sendable, Equatable {
        public var at: UnixMillis
        public var remaining: Int64
    }

    /// How far back the rate looks.
    public static let window: Int64 = 60_000
    /// The least span of samples a rate is given for: over a shorter one a single batch answer makes it jump.
    public static let minimumSpan: Int64 = 10_000

    public private(set) var samples: [Sample] = []
    /// The first sample's time: since when this daemon has watched the campaign.
    public private(set) var watchedSince: UnixMillis?
    /// When the remaining count last fell (nil: not seen to fall since watching began).
    public private(set) var lastMovedAt: UnixMillis?

    public init() {}

    /// Adds a reading of the messages still to send. Readings closer than a second to the last one replace it
    /// (a polling `--watch` and the sampler both read); samples older than the window plus one are dropped, so
    /// the memory per campaign stays bounded (at most ~62 at one per second).
    public mutating func record(remaining: Int64, at now: UnixMillis) {
        if watchedSince == nil { watchedSince = now }
        if let last = samples.last {
            if remaining < last.remaining { lastMovedAt = now }
            if now - last.at < 1_000 && samples.count > 1 {
                samples[samples.count - 1] = Sample(at: now, remaining: remaining)
                trim(now)
                return
            }
        }
        samples.append(Sample(at: now, remaining: remaining))
        trim(now)
    }

    private mutating func trim(_ now: UnixMillis) {
        // Keep one sample at or before the window's start, so the rate spans the whole window.
        while samples.count > 2, samples[1].at <= now - Self.window { samples.removeFirst() }
    }

    /// Messages per second that left over the last ``window`` (or the samples' span when shorter); nil while the
    /// samples span less than ``minimumSpan``.
    public func rate(at now: UnixMillis) -> Double? {
        guard let last = samples.last, let earliest = samples.first else { return nil }
        let base = samples.last(where: { $0.at <= now - Self.window }) ?? earliest
        let span = last.at - base.at
        guard span >= Self.minimumSpan else { return nil }
        return max(0, Double(base.remaining - last.remaining)) * 1000 / Double(span)
    }
}
