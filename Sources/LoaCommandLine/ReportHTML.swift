import Foundation
import LoaCore

/// `loa report --html`: one self-contained page with inline SVG charts, each with titled axes, ticks, a grid and
/// a legend, and every time in the campaign's own zone (named on the page).
extension CampaignReport {
    static let palette = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#5d4037", "#9e9d24"]
    static let stateColor: [String: String] = ["delivered": "#2e7d32", "failed": "#c62828", "rejected": "#8e24aa", "expired": "#ef6c00",
                                               "unknown": "#757575", "cancelled": "#5d4037", "suppressed": "#00838f", "sent": "#1565c0",
                                               "queued": "#b0bec5", "sending": "#90caf9"]
    static let classColor: [String: String] = ["undelivered": "#c62828", "refused": "#8e24aa", "expired": "#ef6c00", "not sent": "#00838f"]

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// Round tick values from 0 to at least `maxValue`: steps of 1, 2 or 5 times a power of ten, 4-6 of them.
    static func ticks(_ maxValue: Int) -> [Int] {
        let top = max(1, maxValue)
        var magnitude = 1
        while magnitude * 10 <= top { magnitude *= 10 }
        let step = [1, 2, 5, 10].map { $0 * magnitude }.first { (top + $0 - 1) / $0 <= 5 } ?? magnitude * 10
        var out = [0]
        while out.last! < top { out.append(out.last! + step) }
        return out
    }

    /// A legend: coloured swatches with their labels, in a row.
    static func legend(_ items: [(String, String)], x: Double, y: Double) -> String {
        var svg = ""
        var at = x
        for (label, color) in items {
            svg += "<rect x=\"\(at)\" y=\"\(y - 10)\" width=\"12\" height=\"12\" fill=\"\(color)\"/>"
            svg += "<text x=\"\(at + 16)\" y=\"\(y)\" font-size=\"12\">\(esc(label))</text>"
            at += 28 + Double(label.count) * 7
        }
        return svg
    }

    /// Horizontal bars on a value axis with ticks, a grid and a title, each bar in its own colour.
    static func bars(_ values: [(label: String, value: Int, color: String)], axisTitle: String, legendItems: [(String, String)] = []) -> String {
        guard let maxV = values.map(\.value).max(), maxV > 0 else { return "<p>None.</p>" }
        let rowH = 24.0, labelW = 420.0, barW = 420.0, top = legendItems.isEmpty ? 8.0 : 30.0
        let axis = ticks(maxV)
        let scale = barW / Double(axis.last!)
        let height = top + rowH * Double(values.count) + 50
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(labelW + barW + 70))\" height=\"\(Int(height))\">"
        if !legendItems.isEmpty { svg += legend(legendItems, x: labelW, y: 16) }
        let bottom = top + rowH * Double(values.count)
        for t in axis {
            let x = labelW + Double(t) * scale
            svg += "<line x1=\"\(x)\" y1=\"\(top)\" x2=\"\(x)\" y2=\"\(bottom)\" stroke=\"#e0e0e0\"/>"
            svg += "<text x=\"\(x)\" y=\"\(bottom + 16)\" text-anchor=\"middle\" font-size=\"11\">\(t)</text>"
        }
        svg += "<line x1=\"\(labelW)\" y1=\"\(bottom)\" x2=\"\(labelW + barW)\" y2=\"\(bottom)\" stroke=\"#777\"/>"
        svg += "<text x=\"\(labelW + barW / 2)\" y=\"\(bottom + 36)\" text-anchor=\"middle\" font-size=\"12\">\(esc(axisTitle))</text>"
        for (i, v) in values.enumerated() {
            let y = top + Double(i) * rowH
            let len = max(1, Double(v.value) * scale)
            svg += "<text x=\"\(labelW - 8)\" y=\"\(y + 16)\" text-anchor=\"end\" font-size=\"12\">\(esc(v.label.count > 62 ? String(v.label.prefix(61)) + "…" : v.label))</text>"
            svg += "<rect x=\"\(labelW)\" y=\"\(y + 4)\" width=\"\(String(format: "%.1f", len))\" height=\"\(rowH - 8)\" fill=\"\(v.color)\"><title>\(esc(v.label)): \(v.value)</title></rect>"
            svg += "<text x=\"\(String(format: "%.1f", labelW + len + 6))\" y=\"\(y + 16)\" font-size=\"12\">\(v.value)</text>"
        }
        return svg + "</svg>"
    }

    /// Cumulative deliveries per carrier over time: a y axis of messages and an x axis of local times, both with
    /// ticks and a grid, and a legend of the carriers.
    static func timelineChart(_ timeline: [[String: Any]], bucket: Int64, zone: String?) -> String {
        let carriers = Array(Set(timeline.compactMap { $0["carrier"] as? String })).sorted()
        let starts = timeline.compactMap { Display.int64($0["start"]) }
        guard let lo = starts.min(), let hi = starts.max() else { return "<p>No deliveries yet.</p>" }
        let w = 720.0, h = 240.0, left = 70.0, top = 34.0
        var cumulative: [String: [(Int64, Int)]] = [:]
        var maxY = 1
        for carrier in carriers {
            var total = 0
            var pts: [(Int64, Int)] = [(lo, 0)]
            for b in timeline where b["carrier"] as? String == carrier {
                total += (b["delivered"] as? Int) ?? 0
                // Each bucket's deliveries counted at its end: a run of seconds still draws a slope.
                pts.append(((Display.int64(b["start"]) ?? lo) + bucket, total))
            }
            cumulative[carrier] = pts
            maxY = max(maxY, total)
        }
        let yTicks = ticks(maxY)
        let yMax = Double(yTicks.last!)
        let span = Double(max(10_000, hi + bucket - lo))
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + w + 30))\" height=\"\(Int(top + h + 60))\" role=\"img\" aria-label=\"deliveries over time\">"
        svg += legend(carriers.enumerated().map { ($0.element, palette[$0.offset % palette.count]) }, x: left, y: 16)
        for t in yTicks {
            let y = top + h - Double(t) / yMax * h
            svg += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(left + w)\" y2=\"\(y)\" stroke=\"#e0e0e0\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\" font-size=\"11\">\(t)</text>"
        }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = zone.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC")
        f.dateFormat = span > 86_400_000 ? "MM-dd HH:mm" : (span > 600_000 ? "HH:mm" : "HH:mm:ss")
        for i in 0...5 {
            let t = lo + Int64(span * Double(i) / 5)
            let x = left + Double(i) / 5 * w
            svg += "<line x1=\"\(x)\" y1=\"\(top)\" x2=\"\(x)\" y2=\"\(top + h)\" stroke=\"#eeeeee\"/>"
            svg += "<text x=\"\(x)\" y=\"\(top + h + 16)\" text-anchor=\"middle\" font-size=\"11\">\(esc(f.string(from: Date(timeIntervalSince1970: Double(t) / 1000))))</text>"
        }
        svg += "<line x1=\"\(left)\" y1=\"\(top + h)\" x2=\"\(left + w)\" y2=\"\(top + h)\" stroke=\"#777\"/><line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + h)\" stroke=\"#777\"/>"
        svg += "<text x=\"\(left + w / 2)\" y=\"\(top + h + 40)\" text-anchor=\"middle\" font-size=\"12\">time (\(esc(zone ?? "UTC")), from \(esc(Display.time(lo, zone: zone))))</text>"
        svg += "<text transform=\"translate(16,\(top + h / 2)) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">messages delivered (cumulative)</text>"
        for (i, carrier) in carriers.enumerated() {
            let pts = (cumulative[carrier] ?? []).map { p -> String in
                String(format: "%.1f,%.1f", left + Double(p.0 - lo) / span * w, top + h - Double(p.1) / yMax * h)
            }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(palette[i % palette.count])\" stroke-width=\"2\" points=\"\(pts)\"/>"
        }
        return svg + "</svg>"
    }

    /// Stacked bars per group of the breakdown column, with a legend of the states and a value axis.
    static func groupChart(_ groups: [[String: Any]], column: String) -> String {
        let order = MessageState.allCases.map(\.name)
        let totals = groups.map { (($0["states"] as? [String: Int]) ?? [:]).values.reduce(0, +) }
        let axis = ticks(totals.max() ?? 1)
        let present = order.filter { s in groups.contains { (($0["states"] as? [String: Int]) ?? [:])[s, default: 0] > 0 } }
        let rowH = 24.0, labelW = 220.0, barW = 560.0, top = 30.0
        let scale = barW / Double(axis.last!)
        let bottom = top + rowH * Double(groups.count)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(labelW + barW + 70))\" height=\"\(Int(bottom + 50))\">"
        svg += legend(present.map { ($0, stateColor[$0] ?? "#999") }, x: labelW, y: 16)
        for t in axis {
            let x = labelW + Double(t) * scale
            svg += "<line x1=\"\(x)\" y1=\"\(top)\" x2=\"\(x)\" y2=\"\(bottom)\" stroke=\"#e0e0e0\"/>"
            svg += "<text x=\"\(x)\" y=\"\(bottom + 16)\" text-anchor=\"middle\" font-size=\"11\">\(t)</text>"
        }
        svg += "<line x1=\"\(labelW)\" y1=\"\(bottom)\" x2=\"\(labelW + barW)\" y2=\"\(bottom)\" stroke=\"#777\"/>"
        svg += "<text x=\"\(labelW + barW / 2)\" y=\"\(bottom + 36)\" text-anchor=\"middle\" font-size=\"12\">recipients per \(esc(column)), by state</text>"
        var table = "<table><tr><th>\(esc(column))</th>" + order.map { "<th>\($0)</th>" }.joined() + "<th>delivered %</th></tr>"
        for (i, g) in groups.enumerated() {
            let name = "\(g["name"] ?? "")"
            let st = (g["states"] as? [String: Int]) ?? [:]
            let y = top + Double(i) * rowH
            var x = labelW
            svg += "<text x=\"\(labelW - 8)\" y=\"\(y + 16)\" text-anchor=\"end\" font-size=\"12\">\(esc(String(name.prefix(30))))</text>"
            for s in order {
                guard let v = st[s], v > 0 else { continue }
                let len = Double(v) * scale
                svg += "<rect x=\"\(String(format: "%.1f", x))\" y=\"\(y + 4)\" width=\"\(String(format: "%.1f", len))\" height=\"\(rowH - 8)\" fill=\"\(stateColor[s] ?? "#999")\"><title>\(s): \(v)</title></rect>"
                x += len
            }
            svg += "<text x=\"\(String(format: "%.1f", x + 6))\" y=\"\(y + 16)\" font-size=\"12\">\(totals[i])</text>"
            let pct = totals[i] == 0 ? 0 : Double(st["delivered"] ?? 0) * 100 / Double(totals[i])
            table += "<tr><td>\(esc(name))</td>" + order.map { "<td>\(st[$0] ?? 0)</td>" }.joined() + "<td>\(String(format: "%.1f", pct))</td></tr>"
        }
        return svg + "</svg>" + table + "</table>"
    }

    static func html(campaign c: [String: Any], data d: [String: Any]) -> String {
        let id = "\(c["id"] ?? "")"
        let zone = (c["spec"] as? [String: Any])?["time_zone"] as? String
        let states = (c["states"] as? [String: Int]) ?? [:]
        var body = "<h2>Deliveries over time, per carrier</h2>"
        body += timelineChart((d["timeline"] as? [[String: Any]]) ?? [], bucket: Display.int64(d["bucket_millis"]) ?? 1000, zone: zone)
        body += "<h2>Final states</h2>"
        body += bars(states.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .map { ($0.key, $0.value, stateColor[$0.key] ?? "#1565c0") }, axisTitle: "messages")
        // Reasons by code and class (ids and numbers taken out of the gateway's words: ``FailureReason``).
        let groups = ((d["reason_groups"] as? [[String: Any]]) ?? []).map {
            (code: Words.reason("\($0["code"] ?? "")"), cls: "\($0["class"] ?? "")", n: ($0["count"] as? Int) ?? 0)
        }
        let total = groups.map(\.n).reduce(0, +)
        body += "<h2>Failure and rejection reasons: \(total) messages in \(groups.count) groups</h2>"
        let shown = groups.prefix(15)
        body += bars(shown.map { ($0.code, $0.n, classColor[$0.cls] ?? "#757575") }, axisTitle: "messages",
                     legendItems: FailureReason.Class.allCases.map(\.rawValue).filter { c in groups.contains { $0.cls == c } }.map { ($0, classColor[$0] ?? "#757575") })
        if groups.count > shown.count {
            body += "<p class=\"meta\">\(groups.count - shown.count) smaller groups not drawn (\(groups.dropFirst(15).map(\.n).reduce(0, +)) messages); the CSV has every row's reason_code.</p>"
        }
        body += "<p class=\"meta\">undelivered: the gateway took the message and a receipt said the network could not deliver it · refused: the gateway refused it when sent · expired: its time ran out · not sent: rejected rows and suppressed numbers (opted out, excluded)</p>"
        let column = "\((c["spec"] as? [String: Any])?["breakdown_column"] ?? "group")"
        body += "<h2>By \(esc(column))</h2>"
        let wards = (d["groups"] as? [[String: Any]]) ?? []
        body += wards.isEmpty ? "<p>The segments have no breakdown column.</p>" : groupChart(wards, column: column)
        let title = "Loa report — \(esc(id))"
        func time(_ v: Any?) -> String { esc(Display.time(Display.int64(v) ?? 0, zone: zone)) }
        let suppressed = Words.suppressed((c["reasons"] as? [String: Int]) ?? [:])
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
            \(c["accepted"] ?? 0) recipients, \(c["rejected"] ?? 0) rejected, \(c["duplicates"] ?? 0) duplicates, \(esc(suppressed)), \(c["segments_total"] ?? 0) SMS parts<br>
            window \(time(c["start_at"])) → \(time(c["deadline_at"])) · times in \(esc(zone ?? "UTC")) · generated \(time(SystemTimeSource().now()))</p>
            \(body)
            </body></html>
            """
    }
}
