/// A cumulative histogram in the Prometheus sense: counts of observations at or below each upper bound,
/// plus their count and sum. Pure; the owner holds the lock.
public struct LatencyHistogram: Sendable, Equatable {
    /// Upper bounds in seconds. Receipts take from seconds (SMSC acknowledgements) to days (phones off).
    public static let receiptBounds: [Double] = [1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 24 * 3600, 72 * 3600]

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
        let s = Double(max(0, millis)) / 1000
        let i = bounds.firstIndex(where: { s <= $0 }) ?? bounds.count
        buckets[i] += 1
        count += 1
        sumSeconds += s
    }

    /// The Prometheus exposition lines for a histogram called `name` with extra `labels` (`a="b"`, may be empty).
    public func prometheus(_ name: String, labels: String = "") -> String {
        var out = ""
        var cumulative: Int64 = 0
        let sep = labels.isEmpty ? "" : ","
        for (i, b) in bounds.enumerated() {
            cumulative += buckets[i]
            let le = b == b.rounded() ? String(Int(b)) : String(b)
            out += "\(name)_bucket{\(labels)\(sep)le=\"\(le)\"} \(cumulative)\n"
        }
        cumulative += buckets[bounds.count]
        out += "\(name)_bucket{\(labels)\(sep)le=\"+Inf\"} \(cumulative)\n"
        let l = labels.isEmpty ? "" : "{\(labels)}"
        out += "\(name)_sum\(l) \(sumSeconds)\n\(name)_count\(l) \(count)\n"
        return out
    }
}
