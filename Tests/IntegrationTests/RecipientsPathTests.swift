import Foundation
import LoaCarriers
import LoaCore
import Testing

/// Messy segments through the real daemon and a real Kannel: the SMSC receives exactly the accepted,
/// deduplicated, unsuppressed set, in the campaign's encoding; every row not sent is in the rejects report.
@Suite(.ownThreads, .serialized) struct RecipientsPathTests {
    @Test(.timeLimit(.minutes(4))) func messyCampaignThroughKannel() async throws {
        let work = WorkDir("recipients")
        let kannel = try Kannel(dir: work.file("kannel"))
        defer { kannel.stop() }
        let loa = try LoaDaemonProcess(work: work, carrierURL: kannel.sendsmsURL, username: kannel.username, password: kannel.password, rate: 1000)

        let names = ["Nguyễn Thị Hà", "Trần Văn Đức", "Lê Hoàng Yến", "Phạm Quốc Việt"]
        var valid: [String: String] = [:]   // e164 -> name (first occurrence)
        var order: [String] = []
        var csv = "\u{FEFF}phone,name,ward\r\n"
        func national(_ i: Int) -> String { ["091", "096", "032", "070", "083", "088"][i % 6] + String(format: "%07d", 2_000_000 + i * 11) }
        for i in 0..<300 {
            let n = national(i)
            let written = [n, "+84 " + n.dropFirst(), "84" + n.dropFirst(), "(" + n.prefix(4) + ") " + n.dropFirst(4)][i % 4]
            let name = names[i % names.count]
            csv += "\"\(written)\",\(name),\"Phường 1, Quận 3\"\r\n"
            let e164 = "+84" + n.dropFirst()
            if valid[e164] == nil { valid[e164] = name; order.append(e164) }
        }
        csv += "0911 000 000,Dup,x\r\n".replacingOccurrences(of: "0911 000 000", with: national(1))   // duplicate of row 2
        csv += "\(national(2)),Dup,x\r\n"
        csv += "02838221234,Fixed,x\r\n0912abc678,Letters,x\r\n113,Short,x\r\n0992345678,Unallocated,x\r\n,Empty,x\r\n"
        csv += "01681234567,Legacy,x\r\n"                                 // 0168 → 038
        valid["+84381234567"] = "Legacy"; order.append("+84381234567")
        work.write("c/a.csv", csv)
        var lines = ""
        for i in 0..<100 { lines += "0979\(String(format: "%06d", i))\n" }
        for i in 0..<10 { lines += national(100 + i) + "\n" }            // duplicates across segments
        for i in 0..<100 { valid["+84979\(String(format: "%06d", i))"] = "bạn"; order.append("+84979\(String(format: "%06d", i))") }
        work.write("c/b.txt", lines)
        let excluded = (0..<20).map { "+84" + national(200 + $0).dropFirst() }
        work.write("c/took-part.txt", excluded.map { "0" + $0.dropFirst(3) }.joined(separator: "\n") + "\n")
        let optedBefore = (0..<10).map { "+84979\(String(format: "%06d", $0))" }
        let optedAfter = (0..<5).map { "+84" + national(250 + $0).dropFirst() }
        let template = "Kính gửi {{name|bạn}}: góp ý dự thảo trên VNeID trước 30/11."
        work.write("c/t.txt", template + "\n")
        // Late enough that the submit and the late opt-outs finish first even on a loaded machine.
        let start = ISOTime.format(SystemTimeSource().now() + 15_000)
        work.write("c/campaign.json", """
            {"id": "messy", "sender": "UBND", "templates": ["t.txt"], "segments": ["a.csv", "b.txt"],
             "exclude": ["took-part.txt"], "encoding": "ascii", "max_segments": 2,
             "start": "\(start)", "deadline": "2099-01-01T00:00:00+07:00", "windows": ["00:00-24:00"]}
            """)

        try await loa.start()
        let before = try loa.cli(["optout", "add"] + optedBefore)
        try #require(before.status == 0, "\(before.output)")
        let submit = try loa.cli(["campaign", "submit", work.file("c/campaign.json")])
        try #require(submit.status == 0, "\(submit.output)")
        let after = try loa.cli(["optout", "add"] + optedAfter)
        try #require(after.status == 0, "\(after.output)")
        let scheduled = try await loa.campaign("messy")
        try #require(scheduled["state"] as? String == "scheduled", "the campaign started before the late opt-outs; raise the start delay")

        let expected = Set(order).subtracting(excluded).subtracting(optedBefore).subtracting(optedAfter)
        // Before anything is sent, the store holds each number once: the 12 duplicates (2 in a.csv, 10 across
        // the segments) are counted, not queued; the late opt-outs are still queued (found at claim time).
        #expect(scheduled["duplicates"] as? Int == 12, "\(scheduled)")
        try #require(scheduled["states"] as? [String: Int] == ["queued": expected.count + optedAfter.count, "suppressed": 30, "rejected": 5],
                     "\(scheduled["states"] ?? "")")

        // preview reads the same files, with the daemon's opt-out list, and agrees.
        let preview = try loa.cli(["preview", work.file("c/campaign.json"), "--sample", "1"])
        #expect(preview.status == 0, "\(preview.output)")
        #expect(preview.output.contains("recipients            \(expected.count)"), "\(preview.output)")
        #expect(preview.output.contains("duplicates            12"))
        #expect(preview.output.contains("excluded              20"))
        #expect(preview.output.contains("opted out             15  (the daemon's global list of 15)"))
        #expect(preview.output.contains("rejected              5  ("))
        // Waits for the end (complete, every receipt in), then counts exactly: a duplicate that got through
        // shows as one message too many at once, not as a poll that never ends.
        try await poll(120, every: 0.25, "the campaign to complete with every receipt in") {
            let c = try await loa.campaign("messy")
            let states = c["states"] as? [String: Int] ?? [:]
            return c["state"] as? String == "completed" && states["queued"] == nil && states["sending"] == nil && states["sent"] == nil
        }
        let c = try await loa.campaign("messy")
        #expect(c["states"] as? [String: Int] == ["delivered": expected.count, "suppressed": 35, "rejected": 5], "\(c["states"] ?? "")")
        #expect(c["duplicates"] as? Int == 12, "\(c)")
        let reasons = c["reasons"] as? [String: Int] ?? [:]
        #expect(reasons["duplicate"] == 12 && reasons["excluded"] == 20 && reasons["opt-out"] == 15, "\(reasons)")
        #expect(reasons["fixed-line"] == 1 && reasons["invalid-characters"] == 1 && reasons["special-number"] == 1
                && reasons["unallocated"] == 1 && reasons["empty"] == 1, "\(reasons)")

        // The SMSC side: exactly the expected set, once each, in GSM-7 without diacritics.
        let received = try SMSCLog.messages(kannel.smscLog, ucs2: false)
        var byNumber: [String: [String]] = [:]
        for m in received { byNumber["+" + m.to.filter(\.isNumber), default: []].append(m.text) }
        #expect(Set(byNumber.keys) == expected)
        #expect(byNumber.values.allSatisfy { $0.count == 1 })
        let sample = try #require(byNumber["+84381234567"]?.first)
        #expect(sample == "Kinh gui Legacy: gop y du thao tren VNeID truoc 30/11.")
        #expect(byNumber[order[0]]?.first == SMSText.transliterateVietnamese(template.replacingOccurrences(of: "{{name|bạn}}", with: valid[order[0]]!)))

        // The rejects report: every row not sent, 0600.
        let report = work.file("rejects.csv")
        let r = try loa.cli(["campaign", "rejects", "messy", "--csv", report])
        #expect(r.status == 0, "\(r.output)")
        let rows = try String(contentsOfFile: report, encoding: .utf8).split(separator: "\n")
        #expect(rows.first == "file,line,value,reason,detail")
        #expect(rows.count - 1 == 12 + 20 + 15 + 5)
        #expect(rows.contains { $0.hasPrefix("a.csv,304,02838221234,fixed-line,") })
        let mode = try FileManager.default.attributesOfItem(atPath: report)[.posixPermissions] as! Int
        #expect(mode == 0o600)
        #expect(loa.stop() == 0)
    }
}
