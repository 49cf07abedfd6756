/// Prometheus's text exposition format (version 0.0.4), written one metric family at a time: its `# HELP` and
/// `# TYPE` lines once, then its samples, label values escaped in one place.
///
/// Conventions kept by every family the daemon writes (https://prometheus.io/docs/practices/naming/):
/// base units (seconds, bytes), `_total` on counters, `_seconds` on durations, histograms as cumulative
/// `_bucket{le=…}` series with `_sum` and `_count`; a family's samples are contiguous, and every series a
/// dashboard or alert reads is written (at 0) before anything happened, so `rate()` starts from zero.
public struct PrometheusText: Sendable {
    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    public private(set) var text = ""
    /// The families written so far (a family written twice would be invalid exposition).
    public private(set) var families: [String] = []

    public init() {}

    /// Starts the family `name`. `help` is one line (backslashes and line breaks escaped).
    public mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        families.append(name)
        let h = help.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
        text += "# HELP \(name) \(h)\n# TYPE \(name) \(kind.rawValue)\n"
    }

    /// One sample of the current family, without labels.
    public mutating func sample(_ name: String, _ value: Int64) { line(name, [], String(value)) }
    public mutating func sample(_ name: String, _ value: Double) { line(name, [], Self.number(value)) }

    /// One sample of the current family.
    public mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String>, _ value: Int64) {
        line(name, Array(labels), String(value))
    }

    public mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String>, _ value: Double) {
        line(name, Array(labels), Self.number(value))
    }

    public mutating func sample(_ name: String, _ labels: [(key: String, value: String)], _ value: Int64) {
        line(name, labels, String(value))
    }

    /// A histogram's samples (`_bucket` per bound and `+Inf`, `_sum`, `_count`) with `labels` on each.
    public mutating func histogram(_ name: String, _ labels: KeyValuePairs<String, String> = [:], _ h: LatencyHistogram) {
        let base = Array(labels)
        let c = h.cumulative
        for (i, b) in h.bounds.enumerated() { line(name + "_bucket", base + [("le", LatencyHistogram.le(b))], String(c[i])) }
        line(name + "_bucket", base + [("le", "+Inf")], String(h.count))
        line(name + "_sum", base, Self.number(h.sumSeconds))
        line(name + "_count", base, String(h.count))
    }

    /// Appends text written elsewhere in this format (whole families).
    public mutating func append(_ other: String) { text += other }

    private mutating func line(_ name: String, _ labels: [(key: String, value: String)], _ value: String) {
        text += name
        if !labels.isEmpty {
            text += "{"
            for (i, l) in labels.enumerated() {
                if i > 0 { text += "," }
                text += l.key + "=\"" + Self.labelValue(l.value) + "\""
            }
            text += "}"
        }
        text += " " + value + "\n"
    }

    /// A label value as the format wants it: backslash, double quote and line feed escaped.
    public static func labelValue(_ s: String) -> String {
        guard s.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return s }
        var out = ""
        for ch in s {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(ch)
            }
        }
        return out
    }

    /// A float as Prometheus parses it (`+Inf`, `-Inf`, `NaN` by name).
    public static func number(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d > 0 ? "+Inf" : "-Inf" }
        return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
    }
}
