import Foundation
import LoaDaemon
import LoaSim
import LoaCore

/// The text `loa preview` prints.
enum PreviewReport {
    static func render(_ s: CampaignScan) -> String {
        let spec = s.campaign.spec
        var out: [String] = []
        out.append("campaign \(spec.id): \(s.campaign.templates.count) template(s), \(s.campaign.segments.count) segment(s), \(s.campaign.exclusions.count) exclusion file(s), encoding \((spec.encoding ?? .auto).rawValue)")
        if !s.samples.isEmpty {
            out.append("")
            out.append("sample messages:")
            for (i, m) in s.samples.enumerated() {
                out.append("  \(i + 1). \(PathText.lastComponent(of: m.source)):\(m.line)  \(m.phone.masked)  \(s.router.network(of: m.phone).rawValue) → \(m.carrier)  \(m.encoding.rawValue), \(m.segments) part(s)")
                out.append("     \(TerminalText.sanitize(m.text))")  // one line: a line break in the text shows as \n
            }
        }
        out.append("")
        let optOutNote = s.optOuts.map { "\(s.optedOut)  (the daemon's global list of \($0.count))" }
            ?? "not checked: the daemon was not reachable (it applies its opt-out list at submit)"
        out += totalsLines(s.totals, optOutNote: optOutNote)
        func row(_ k: String, _ v: String) { out.append("  " + k.padding(toLength: 22, withPad: " ", startingAt: 0) + v) }
        let saving = s.partsIfUnicode - s.partsIfASCII
        let pct = s.partsIfUnicode == 0 ? 0 : Double(saving) * 100 / Double(s.partsIfUnicode)
        row("if encoding unicode", "\(s.partsIfUnicode) parts")
        row("if encoding ascii", "\(s.partsIfASCII) parts: saves \(saving) parts (\(String(format: "%.0f", pct))%) over unicode, without Vietnamese diacritics")
        return out.joined(separator: "\n")
    }

    /// The totals block, the same for a campaign's files (`loa preview`) and for what the daemon counted of an
    /// uploaded campaign (`loa campaign preview`).
    static func totalsLines(_ t: PreviewTotals, optOutNote: String) -> [String] {
        var out = ["totals:"]
        func row(_ k: String, _ v: String) { out.append("  " + k.padding(toLength: 22, withPad: " ", startingAt: 0) + v) }
        func list(_ d: [String: Int64]) -> String {
            d.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        row("rows read", "\(t.rows)")
        row("recipients", "\(t.recipients)")
        row("duplicates", "\(t.duplicates)")
        row("excluded", "\(t.excluded)  (the campaign's exclusion files)")
        row("opted out", optOutNote)
        row("suppressed", "\(t.suppressed)  (opted out or excluded: not sent)")
        row("rejected", "\(t.rejected)" + (t.rejectedByReason.isEmpty ? "" : "  (" + list(t.rejectedByReason) + ")"))
        row("per carrier", t.perCarrier.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        row("per network", list(t.perNetwork))
        if !t.perWard.isEmpty {
            let top = t.perWard.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            row("per ward", top.prefix(10).map { "\($0.key) \($0.value)" }.joined(separator: ", ") + (top.count > 10 ? ", … \(top.count - 10) more" : ""))
        }
        row("SMS parts", "\(t.parts)  (\(t.ucs2Messages) messages in UCS-2, \(t.gsm7Messages) in GSM-7)")
        return out
    }

    /// `loa preview --json`: the totals in the shape `GET /api/v1/campaigns/{id}/preview` gives them (snake_case,
    /// flat), with the samples (numbers masked) and what the other encodings would cost.
    static func json(_ s: CampaignScan) -> String {
        struct Out: Encodable {
            var id: String
            var totals: PreviewTotals
            var samples: [Sample]
            var partsIfUnicode: Int
            var partsIfAscii: Int
            struct Sample: Encodable { var phone, carrier, encoding, text, source: String; var parts, line: Int }
            func encode(to encoder: any Encoder) throws {
                try totals.encode(to: encoder)
                var c = encoder.container(keyedBy: K.self)
                try c.encode(id, forKey: .id)
                try c.encode(samples, forKey: .samples)
                try c.encode(partsIfUnicode, forKey: .partsIfUnicode)
                try c.encode(partsIfAscii, forKey: .partsIfAscii)
            }
            enum K: String, CodingKey { case id, samples, partsIfUnicode, partsIfAscii }
        }
        let out = Out(id: s.campaign.spec.id, totals: s.totals, samples: s.samples.map {
            Out.Sample(phone: $0.phone.masked, carrier: $0.carrier, encoding: $0.encoding.rawValue, text: $0.text,
                       source: PathText.lastComponent(of: $0.source), parts: $0.segments, line: $0.line)
        }, partsIfUnicode: s.partsIfUnicode, partsIfAscii: s.partsIfASCII)
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: (try? e.encode(out)) ?? Data("{}".utf8), as: UTF8.self)
    }
}

/// Progress on stderr: a redrawn bar on a terminal, a plain line every 10% otherwise.
final class ProgressReporter {
    let label: String
    let isTerminal = isatty(STDERR_FILENO) == 1
    private var lastTenth = -1
    private var lastDraw: UInt64 = 0

    init(label: String) { self.label = label }

    func update(_ done: Int64, _ total: Int64) {
        guard total > 0 else { return }
        let fraction = min(1, Double(done) / Double(total))
        if isTerminal {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now - lastDraw > 100_000_000 || fraction >= 1 else { return }
            lastDraw = now
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(String(format: "%3.0f", fraction * 100))%".utf8))
        } else {
            let tenth = Int(fraction * 10)
            guard tenth > lastTenth else { return }
            lastTenth = tenth
            FileHandle.standardError.write(Data("\(label): \(tenth * 10)% (\(done / 1024) KiB of \(total / 1024) KiB)\n".utf8))
        }
    }

    func finish() {
        if isTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
