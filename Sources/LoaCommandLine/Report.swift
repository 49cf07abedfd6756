import Foundation
import LoaDaemon
import LoaSim
import LoaCarriers
import LoaCore

/// `loa report`: one row per recipient as CSV, and a self-contained HTML page with inline SVG charts.
enum CampaignReport {
    /// Writes the CSV page by page from the API into a new 0600 file (it holds phone numbers).
    static func writeCSV(_ id: String, to path: String, client: APIClient) async throws -> Int {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw APIClient.Failure(description: "\(path): cannot create (\(String(cString: strerror(errno)))); it must not exist yet") }
        let out = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        out.write(Data("message_id,recipient,carrier,final_state,reason,attempts,last_change,segment,line,group,gateway_id\n".utf8))
        var after: Int64 = 0
        var n = 0
        while true {
            let r = try await client.request("GET", "/api/v1/campaigns/\(URLQuery.escape(id))/messages?after=\(after)&limit=10000")
            guard r.status == 200, let page = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
                  let rows = page["rows"] as? [[Any]] else { throw APIClient.Failure(description: APIClient.errorText(r)) }
            var text = ""
            for row in rows where row.count == 11 {
                var fields = row.map { "\($0)" }
                fields[6] = ISOTime.format(Int64(fields[6]) ?? 0)
                text += CSVWriter.record(fields)
            }
            out.write(Data(text.utf8))
            n += rows.count
            guard let next = page["next"] as? Int else { break }
            after = Int64(next)
        }
        return n
    }

    static func html(campaign c: [String: Any], data d: [String: Any]) -> String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
                .replacingOccurrences(of: "\"", with: "&quot;")
        }
        let id = "\(c["id"] ?? "")"
        let states = (c["states"] as? [String: Int]) ?? [:]
        let palette = ["#2e7d32", "#1565c0", "#ef6c00", "#6a1b9a", "#c62828", "#00838f", "#5d4037", "#9e9d24"]
        let stateColor: [String: String] = ["delivered": "#2e7d32", "failed": "#c62828", "rejected": "#8e24aa", "expired": "#ef6c00",
                                            "unknown": "#757575", "cancelled": "#5d4037", "suppressed": "#00838f", "sent": "#1565c0",
                                            "queued": "#b0bec5", "sending": "#90caf9"]
        var body = ""
        // 1. Deliveries over time per carrier (cumulative).
        let timeline = (d["timeline"] as? [[String: Any]]) ?? []
        let carriers = Array(Set(timeline.compactMap { $0["carrier"] as? String })).sorted()
        let starts = timeline.compactMap { ($0["start"] as? Int).map(Int64.init) }
        body += "<h2>Deliveries over time, per carrier</h2>"
        if let lo = starts.min(), let hi = starts.max() {
            let w = 760.0, h = 240.0, left = 60.0, bottom = 30.0
            var cumulative: [String: [(Int64, Int)]] = [:]
            var maxY = 1
            for carrier in carriers {
                var total = 0
                var pts: [(Int64, Int)] = [(lo, 0)]
                for b in timeline where b["carrier"] as? String == carrier {
                    total += (b["delivered"] as? Int) ?? 0
                    pts.append((Int64((b["start"] as? Int) ?? 0), total))
                }
                cumulative[carrier] = pts
                maxY = max(maxY, total)
            }
            let span = Double(max(1, hi - lo))
            var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w + left + 20))\" height=\"\(Int(h + bottom + 20))\" role=\"img\" aria-label=\"deliveries over time\">"
            svg += "<line x1=\"\(left)\" y1=\"\(h + 10)\" x2=\"\(left + w)\" y2=\"\(h + 10)\" stroke=\"#999\"/><line x1=\"\(left)\" y1=\"10\" x2=\"\(left)\" y2=\"\(h + 10)\" stroke=\"#999\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"16\" text-anchor=\"end\" font-size=\"11\">\(maxY)</text><text x=\"\(left - 6)\" y=\"\(h + 10)\" text-anchor=\"end\" font-size=\"11\">0</text>"
            svg += "<text x=\"\(left)\" y=\"\(h + 26)\" font-size=\"11\">\(esc(ISOTime.format(lo)))</text><text x=\"\(left + w)\" y=\"\(h + 26)\" text-anchor=\"end\" font-size=\"11\">\(esc(ISOTime.format(hi)))</text>"
            for (i, carrier) in carriers.enumerated() {
                let pts = (cumulative[carrier] ?? []).map { p -> String in
                    let x = left + Double(p.0 - lo) / span * w
                    let y = 10 + h - Double(p.1) / Double(maxY) * h
                    return String(format: "%.1f,%.1f", x, y)
                }.joined(separator: " ")
                svg += "<polyline fill=\"none\" stroke=\"\(palette[i % palette.count])\" stroke-width=\"2\" points=\"\(pts)\"/>"
                svg += "<text x=\"\(left + 8)\" y=\"\(28 + 14 * i)\" font-size=\"12\" fill=\"\(palette[i % palette.count])\">\(esc(carrier))</text>"
            }
            svg += "</svg>"
            body += svg
        } else {
            body += "<p>No deliveries yet.</p>"
        }
        // 2 and 3. Horizontal bars.
        func bars(_ title: String, _ values: [(String, Int)], colors: [String: String] = [:]) -> String {
            guard let maxV = values.map(\.1).max(), maxV > 0 else { return "<h2>\(esc(title))</h2><p>None.</p>" }
            let rowH = 22.0, labelW = 260.0, barW = 460.0
            var svg = "<h2>\(esc(title))</h2><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(labelW + barW + 90))\" height=\"\(Int(rowH * Double(values.count) + 10))\">"
            for (i, (label, v)) in values.enumerated() {
                let y = 5 + Double(i) * rowH
                let len = max(1, Double(v) / Double(maxV) * barW)
                svg += "<text x=\"\(labelW - 8)\" y=\"\(y + 15)\" text-anchor=\"end\" font-size=\"12\">\(esc(String(label.prefix(44))))</text>"
                svg += "<rect x=\"\(labelW)\" y=\"\(y + 3)\" width=\"\(String(format: "%.1f", len))\" height=\"\(rowH - 6)\" fill=\"\(colors[label] ?? "#1565c0")\"/>"
                svg += "<text x=\"\(labelW + len + 6)\" y=\"\(y + 15)\" font-size=\"12\">\(v)</text>"
            }
            return svg + "</svg>"
        }
        body += bars("Final states", states.sorted { $0.value > $1.value }.map { ($0.key, $0.value) }, colors: stateColor)
        let reasons = ((d["reasons"] as? [String: Int]) ?? [:]).sorted { $0.value > $1.value }.prefix(15).map { ($0.key, $0.value) }
        body += bars("Failure and rejection reasons", Array(reasons), colors: [:])
        // 4. Breakdown by the segment's column (stacked bars).
        let groups = (d["groups"] as? [[String: Any]]) ?? []
        body += "<h2>By \(esc("\((c["spec"] as? [String: Any])?["breakdown_column"] ?? "group")"))</h2>"
        if groups.isEmpty {
            body += "<p>The segments have no breakdown column.</p>"
        } else {
            let order = MessageState.allCases.map(\.name)
            let totals = groups.map { (($0["states"] as? [String: Int]) ?? [:]).values.reduce(0, +) }
            let maxT = max(1, totals.max() ?? 1)
            let rowH = 22.0, labelW = 200.0, barW = 520.0
            var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(labelW + barW + 90))\" height=\"\(Int(rowH * Double(groups.count) + 10))\">"
            var table = "<table><tr><th>\(esc("group"))</th>" + order.map { "<th>\($0)</th>" }.joined() + "<th>delivered %</th></tr>"
            for (i, g) in groups.enumerated() {
                let name = "\(g["name"] ?? "")"
                let st = (g["states"] as? [String: Int]) ?? [:]
                let y = 5 + Double(i) * rowH
                var x = labelW
                svg += "<text x=\"\(labelW - 8)\" y=\"\(y + 15)\" text-anchor=\"end\" font-size=\"12\">\(esc(String(name.prefix(30))))</text>"
                for s in order {
                    guard let v = st[s], v > 0 else { continue }
                    let len = Double(v) / Double(maxT) * barW
                    svg += "<rect x=\"\(String(format: "%.1f", x))\" y=\"\(y + 3)\" width=\"\(String(format: "%.1f", len))\" height=\"\(rowH - 6)\" fill=\"\(stateColor[s] ?? "#999")\"><title>\(s): \(v)</title></rect>"
                    x += len
                }
                svg += "<text x=\"\(x + 6)\" y=\"\(y + 15)\" font-size=\"12\">\(totals[i])</text>"
                let pct = totals[i] == 0 ? 0 : Double(st["delivered"] ?? 0) * 100 / Double(totals[i])
                table += "<tr><td>\(esc(name))</td>" + order.map { "<td>\(st[$0] ?? 0)</td>" }.joined() + "<td>\(String(format: "%.1f", pct))</td></tr>"
            }
            body += svg + "</svg>" + table + "</table>"
        }
        let title = "Loa report — \(esc(id))"
        return """
            <!DOCTYPE html>
            <html lang="vi"><head><meta charset="utf-8"><title>\(title)</title>
            <style>
            body { font-family: sans-serif; margin: 24px; color: #222; max-width: 980px; }
            h1 { font-size: 22px; } h2 { font-size: 16px; margin-top: 28px; }
            table { border-collapse: collapse; font-size: 12px; margin-top: 8px; } td, th { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
            td:first-child, th:first-child { text-align: left; } .meta { color: #555; font-size: 13px; }
            </style></head><body>
            <h1>\(title)</h1>
            <p class="meta">\((c["name"] as? String).map { esc($0) + " · " } ?? "")sender \(esc("\(c["sender"] ?? "")")) · state \(esc("\(c["state"] ?? "")")) ·
            \(c["accepted"] ?? 0) recipients, \(c["rejected"] ?? 0) rejected, \(c["duplicates"] ?? 0) duplicates, \(c["segments_total"] ?? 0) SMS parts ·
            \(esc(ISOTime.format(Int64("\(c["start_at"] ?? 0)") ?? 0))) → \(esc(ISOTime.format(Int64("\(c["deadline_at"] ?? 0)") ?? 0))) ·
            generated \(esc(ISOTime.format(SystemTimeSource().now())))</p>
            \(body)
            </body></html>
            """
    }
}
