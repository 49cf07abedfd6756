/// Splits a carrier's grant among the campaigns that want it, by weight, exactly over time.
///
/// Each campaign earns `grant × weight / Σweight` per round in fractional credit; it receives the whole
/// messages its credit covers, and the fractions carry over, so over many rounds every campaign's share
/// converges to its weight ratio even when each round grants only a few messages. A campaign's credit is capped
/// so one that was idle cannot burst. `urgent` campaigns weigh `urgentFactor` times more: they take most of the
/// capacity first, yet `bulk` ones keep a share and never starve.
///
/// | campaigns (weight, priority) | share of a carrier's rate |
/// |---|---|
/// | A (1, bulk), B (1, bulk) | 50% / 50% |
/// | A (3, bulk), B (1, bulk) | 75% / 25% |
/// | A (1, urgent), B (1, bulk) | 90% / 10% |
public struct FairShare: Sendable {
    public static let urgentFactor = 9

    public struct Claimant: Sendable, Equatable {
        public var id: String
        public var weight: Int
        public var urgent: Bool
        public init(id: String, weight: Int = 1, urgent: Bool = false) {
            self.id = id
            self.weight = weight
            self.urgent = urgent
        }
        /// In `Double`, so no weight can overflow (weights are checked 1-1000 at submit).
        var effectiveWeight: Double { Double(max(1, weight)) * Double(urgent ? FairShare.urgentFactor : 1) }
    }

    private var credit: [String: Double] = [:]

    public init() {}

    /// How many of `grant` messages each claimant may take this round (ids absent get none). The sum never exceeds `grant`.
    public mutating func split(_ grant: Int, among claimants: [Claimant]) -> [String: Int] {
        guard grant > 0, !claimants.isEmpty else { return [:] }
        let total = claimants.reduce(0) { $0 + $1.effectiveWeight }
        var out: [String: Int] = [:]
        var given = 0
        for c in claimants {
            let earned = Double(grant) * c.effectiveWeight / total
            let cr = min((credit[c.id] ?? 0) + earned, earned + 1)
            let whole = cr.rounded(.down).clampedInt(0...grant)
            out[c.id] = whole
            credit[c.id] = cr - Double(whole)
            given += whole
        }
        // Rounding may leave a message or two: hand them to the largest credits.
        var rest = grant - given
        for c in claimants.sorted(by: { (credit[$0.id] ?? 0) > (credit[$1.id] ?? 0) }) where rest > 0 {
            out[c.id, default: 0] += 1
            credit[c.id, default: 0] -= 1
            rest -= 1
        }
        let live = Set(claimants.map(\.id))
        credit = credit.filter { live.contains($0.key) }
        return out
    }

    /// Returns messages a claimant was given but did not use (it had fewer queued), so it is not charged for them.
    public mutating func refund(_ n: Int, to id: String) {
        guard n > 0 else { return }
        credit[id] = min((credit[id] ?? 0) + Double(n), 1)
    }
}

/// The contact policy: at most `maxPerWindow` messages to one number across all campaigns per rolling window.
///
/// Pure decision; the store supplies the times of the number's recent sends.
public struct ContactPolicy: Sendable, Equatable {
    public var maxPerWindow: Int
    public var windowMillis: Int64

    public init(maxPerWindow: Int = 1, windowMillis: Int64 = 86_400_000) {
        self.maxPerWindow = maxPerWindow
        self.windowMillis = windowMillis
    }

    public enum Decision: Sendable, Equatable {
        case send
        /// Wait until this time, when the oldest counted contact leaves the window.
        case holdUntil(UnixMillis)
    }

    /// `recent` are the times of other messages sent to the number (any campaign), newest or oldest first.
    public func decide(recent: [UnixMillis], now: UnixMillis) -> Decision {
        guard maxPerWindow > 0 else { return .send }
        let inWindow = recent.filter { $0 > now - windowMillis }.sorted()
        guard inWindow.count >= maxPerWindow else { return .send }
        // The (count - max + 1)-th oldest must leave the window before another message may go.
        return .holdUntil(inWindow[inWindow.count - maxPerWindow] + windowMillis)
    }
}
