/// A cumulative histogram in the Prometheus sense: counts of observations at or below each upper bound,
/// plus their count and sum. Pure; the owner holds the lock.
public struct LatencyHistogram: Sendable, Equatable {
    /// Upper bounds in seconds. Receipts take from seconds (SMSC acknowledgements) to days (phones off).
    public static let receiptBounds: [Double] = [1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 24 * 3600, 72 * 3600]
    /// Upper bounds in seconds for a gateway request, from its start in Loa to its answer: a loopback gateway
    /// answers in a millisecond or two, a remote one in tens to hundreds, and `timeout_seconds` is at most 300.
    /// Prometheus's default buckets (5 ms … 10 s) with 30 s, 60 s and 300 s for the slow and the timed out.
    public static let requestBounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

    public let bounds: [Double]
    /// Non-cumulative counts per bucket; the last one is above every bound (+Inf).
    public private(set) var buckets: [Int64]
    public private(set) var count: Int64 = 0
    public private(set) var sumSeconds: Double = 0

    public init(bounds: [Double] = LatencyHistogram.receiptBounds) {
        self.bounds = bounds.sorted()
        buckets = Array(repeating: 0, count: bounds.count + 1)
    }

    public mutating func observe(millis: Int64) {
        observe(seconds: Double(max(0, millis)) / 1000)
    }

    /// One observation in seconds (negative ones count as 0: a clock that stepped back is not a latency).
    public mutating func observe(seconds: Double) {
        let s = max(0, seconds)
        let i = bounds.firstIndex(where: { s <= $0 }) ?? bounds.count
        buckets[i] += 1
        count += 1
        sumSeconds += s
    }

    /// The cumulative counts, one per bound and then +Inf's (the total).
    public var cumulative: [Int64] {
        var running: Int64 = 0
        return buckets.map { running += $0; return running }
    }

    /// A bound as Prometheus's `le` label writes it: whole numbers without a fraction (`5`, not `5.0`).
    public static func le(_ b: Double) -> String { b == b.rounded() && abs(b) < 1e15 ? String(Int(b)) : String(b) }

    /// The Prometheus exposition lines for a histogram called `name` with extra `labels` (`a="b"`, may be empty).
    public func prometheus(_ name: String, labels: String = "") -> String {
        var out = ""
        let sep = labels.isEmpty ? "" : ","
        let c = cumulative
        for (i, b) in bounds.enumerated() {
            out += "\(name)_bucket{\(labels)\(sep)le=\"\(Self.le(b))\"} \(c[i])\n"
        }
        out += "\(name)_bucket{\(labels)\(sep)le=\"+Inf\"} \(count)\n"
        let l = labels.isEmpty ? "" : "{\(labels)}"
        out += "\(name)_sum\(l) \(sumSeconds)\n\(name)_count\(l) \(count)\n"
        return out
    }
}
