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
        func row(_ k: String, _ v: String) { out.append("  " + k.padding(toLength: 22, withPad: " ", startingAt: 0) + v) }
        out.append("")
        out.append("totals:")
        row("rows read", "\(s.rows)")
        row("recipients", "\(s.accepted)")
        row("duplicates", "\(s.duplicates)")
        row("excluded", "\(s.excluded)  (the campaign's exclusion files)")
        if let list = s.optOuts {
            row("opted out", "\(s.optedOut)  (the daemon's global list of \(list.count))")
        } else {
            row("opted out", "not checked: the daemon was not reachable (it applies its opt-out list at submit)")
        }
        row("suppressed", "\(s.excluded + s.optedOut)  (opted out or excluded: not sent)")
        let reasons = s.rejectedByReason.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        row("rejected", "\(s.rejected)" + (reasons.isEmpty ? "" : "  (" + reasons.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"))
        row("per carrier", s.perCarrier.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        row("per network", s.perNetwork.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        row("SMS parts", "\(s.parts)  (\(s.ucs2Messages) messages in UCS-2, \(s.accepted - s.ucs2Messages) in GSM-7)")
        let saving = s.partsIfUnicode - s.partsIfASCII
        let pct = s.partsIfUnicode == 0 ? 0 : Double(saving) * 100 / Double(s.partsIfUnicode)
        row("if encoding unicode", "\(s.partsIfUnicode) parts")
        row("if encoding ascii", "\(s.partsIfASCII) parts: saves \(saving) parts (\(String(format: "%.0f", pct))%) over unicode, without Vietnamese diacritics")
        return out.joined(separator: "\n")
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
