import Foundation
import LoaCarriers
import LoaCore
import Testing

/// The whole path through real parts: `loa campaign submit` → the real daemon → SQLite → the Kannel adapter →
/// a real Kannel (bearerbox, smsbox, fake SMSC) → receipts back over dlr-url → store → delivery log.
@Suite(.ownThreads, .serialized) struct FoundationPathTests {
    static let recipients = 3000

    /// A campaign of `n` numbers with Vietnamese names, written every way people write numbers.
    static func writeCampaign(_ work: WorkDir, id: String, n: Int) -> [String: String] {
        var expected: [String: String] = [:]  // e164 → rendered text
        var csv = "phone,name,ward\n"
        let wards = ["Phường Bến Nghé", "Phường Sài Gòn", "Xã Cần Giờ"]
        let prefixes = ["091", "096", "032", "070", "083", "056", "059", "087"]
        for i in 0..<n {
            let national = prefixes[i % prefixes.count] + String(format: "%07d", 1_000_000 + i * 7)
            let written: String
            switch i % 4 {
            case 0: written = national
            case 1: written = "+84 " + national.dropFirst()
            case 2: written = "84" + national.dropFirst()
            default: written = String(national.prefix(4)) + " " + national.dropFirst(4).prefix(3) + " " + national.suffix(3)
            }
            let name = "Nguyễn Văn \(i)"
            let ward = wards[i % wards.count]
            csv += "\"\(written)\",\(name),\(ward)\n"
            expected["+84" + national.dropFirst()] = "Kính gửi \(name) (\(ward)): góp ý dự thảo trên VNeID trước 30/11. Đăng nhập ngay!"
        }
        // A duplicate row: sent once.
        csv += "\(prefixes[0])1000000,Trùng,Phường Sài Gòn\n"
        work.write("campaign/segment.csv", csv)
        work.write("campaign/slogan.txt", "Kính gửi {{name}} ({{ward}}): góp ý dự thảo trên VNeID trước 30/11. Đăng nhập ngay!\n")
        work.write("campaign/campaign.json", """
            {
              "id": "\(id)",
              "sender": "UBND-HCM",
              "templates": ["slogan.txt"],
              "segments": ["segment.csv"],
              "start": "2026-01-01T07:00:00+07:00",
              "deadline": "2099-01-01T22:00:00+07:00",
              // Tests run at any hour: the default window (07:00-22:00 Vietnam time) would hold them.
              "windows": ["00:00-24:00"],
            }
            """)
        return expected
    }

    @Test(.timeLimit(.minutes(5))) func campaignThroughRealKannel() async throws {
        let work = WorkDir("foundation")
        let kannel = try Kannel(dir: work.file("kannel"))
        defer { kannel.stop() }
        let loa = try LoaDaemonProcess(work: work, carrierURL: kannel.sendsmsURL, username: kannel.username, password: kannel.password,
                                       rate: 1000, maxInFlight: 32)
        let expected = Self.writeCampaign(work, id: "it-foundation", n: Self.recipients)

        let check = try loa.cli(["check", work.file("campaign/campaign.json")])
        #expect(check.status == 0, "loa check: \(check.output)")

        try await loa.start()
        let submit = try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")])
        try #require(submit.status == 0, "submit failed: \(submit.output)")
        #expect(submit.output.contains("\(Self.recipients) recipients, 0 rejected, 1 duplicates"))

        try await poll(180, every: 0.5, "every recipient delivered") {
            let c = try await loa.campaign("it-foundation")
            let states = c["states"] as? [String: Int] ?? [:]
            return states["delivered"] == Self.recipients && c["state"] as? String == "completed"
        }
        let c = try await loa.campaign("it-foundation")
        #expect(c["state"] as? String == "completed")
        #expect((c["states"] as? [String: Int])?.keys.sorted() == ["delivered"])

        // What the SMSC side actually received: every recipient exactly once, with the right text.
        let received = try SMSCLog.messages(kannel.smscLog)
        var byNumber: [String: [String]] = [:]
        for m in received { byNumber["+" + m.to.filter(\.isNumber), default: []].append(m.text) }
        #expect(byNumber.count == Self.recipients, "distinct recipients at the SMSC: \(byNumber.count)")
        var wrong = 0, twice = 0
        for (number, text) in expected {
            let got = byNumber[number] ?? []
            if got.count != 1 { twice += 1 }
            if got.first != text { wrong += 1 }
        }
        #expect(twice == 0, "\(twice) recipients not received exactly once")
        #expect(wrong == 0, "\(wrong) recipients got the wrong text; e.g. \(byNumber[expected.keys.first!] ?? [])")

        // The delivery log agrees: one delivered receipt per recipient, seq gapless.
        let events = loa.logEvents()
        let delivered = Set(events.filter { $0["status"] as? String == "delivered" && $0["event"] as? String == "receipt" }
            .compactMap { $0["recipient"] as? String })
        #expect(delivered == Set(expected.keys))
        let seqs = events.compactMap { $0["seq"] as? Int }
        #expect(seqs == Array(1...seqs.count))

        // A wrong receipt secret changes nothing.
        let anyID = events.first { $0["event"] as? String == "sending" }?["message"] as? Int ?? 1
        let forged = try await loa.engine.perform(HTTPRequest(url: loa.base + "/dlr/kannel?k=wrong&st=2&id=\(anyID)"))
        #expect(forged.status == 401)
        let missing = try await loa.engine.perform(HTTPRequest(url: loa.base + "/dlr/kannel?st=2&id=\(anyID)"))
        #expect(missing.status == 401)
        #expect(((try await loa.campaign("it-foundation"))["states"] as? [String: Int])?["delivered"] == Self.recipients)

        // The report: one CSV row per recipient (0600), and a self-contained HTML page with SVG charts.
        let csv = work.file("report.csv"), html = work.file("report.html")
        let report = try loa.cli(["report", "it-foundation", "--csv", csv, "--html", html])
        #expect(report.status == 0, "\(report.output)")
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        #expect(rows.count == Self.recipients + 1 && rows.dropFirst().allSatisfy { $0.contains(",delivered,") })
        #expect(try FileManager.default.attributesOfItem(atPath: csv)[.posixPermissions] as? Int == 0o600)
        let page = try String(contentsOfFile: html, encoding: .utf8)
        #expect(page.contains("<svg") && page.contains("Deliveries over time") && page.contains("Phường Bến Nghé") && page.contains("Xã Cần Giờ"))
        #expect(!page.contains("src=") && !page.contains("href=") && !page.contains("url(") && !page.contains("@import"), "no external assets")
        if let keep = ProcessInfo.processInfo.environment["LOA_REPORT_SAMPLE"] { try? page.write(toFile: keep, atomically: true, encoding: .utf8) }

        // SIGTERM: drain and exit 0.
        #expect(loa.stop() == 0, "daemon output:\n\(loa.child?.output.suffix(2000) ?? "")")
    }
}

/// Reads what Kannel's fake SMSC received (format: kannel/kannel-harness.sh, FORMAT), reassembling
/// concatenated parts. Parts with a UDH carry raw bytes without their coding: they are decoded as UTF-16BE
/// when `ucs2` says the test sent Unicode, else as UTF-8.
enum SMSCLog {
    struct Message { var from: String; var to: String; var text: String }

    static func messages(_ path: String, ucs2: Bool = true) throws -> [Message] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var singles: [Message] = []
        var parts: [String: [Int: [UInt8]]] = [:]  // "to|ref" -> seq -> bytes
        var totals: [String: Int] = [:]
        var senders: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let open = line.range(of: "Got message "), let lt = line[open.upperBound...].firstIndex(of: "<"), line.hasSuffix(">") else { continue }
            let body = line[line.index(after: lt)..<line.index(before: line.endIndex)]
            let f = body.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
            guard f.count == 4 else { continue }
            let (from, to, type, rest) = (f[0], f[1], f[2], f[3])
            switch type {
            case "text": singles.append(Message(from: from, to: to, text: rest))
            case "ucs-2": singles.append(Message(from: from, to: to, text: utf16BE(urlDecode(rest))))
            case "udh":
                let u = rest.split(separator: " ", maxSplits: 2).map(String.init)
                guard u.count == 3 else { continue }
                let udh = urlDecode(u[0])
                guard udh.count >= 6 else { continue }
                let key = "\(to)|\(udh[3])"
                parts[key, default: [:]][Int(udh[5])] = urlDecode(u[2])
                totals[key] = Int(udh[4])
                senders[key] = from
            default: continue
            }
        }
        for (key, seqs) in parts where seqs.count == totals[key] {
            let bytes = seqs.keys.sorted().flatMap { seqs[$0]! }
            let to = String(key.split(separator: "|")[0])
            singles.append(Message(from: senders[key] ?? "", to: to, text: ucs2 ? utf16BE(bytes) : String(decoding: bytes, as: UTF8.self)))
        }
        return singles
    }

    static func urlDecode(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == 0x25, i + 2 < b.count, let v = UInt8(String(decoding: b[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                out.append(v)
                i += 3
            } else {
                out.append(b[i] == 0x2B ? 0x20 : b[i])
                i += 1
            }
        }
        return out
    }

    static func utf16BE(_ bytes: [UInt8]) -> String {
        var units: [UInt16] = []
        var i = 0
        while i + 1 < bytes.count {
            units.append(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]))
            i += 2
        }
        return String(decoding: units, as: UTF16.self)
    }
}

/// Kannel's POST interface (X-Kannel-* headers, the text as the body) through the real Kannel.
@Suite(.ownThreads, .serialized) struct KannelPOSTTests {
    @Test(.timeLimit(.minutes(2))) func postModeDeliversTheSameTexts() async throws {
        let work = WorkDir("post")
        let kannel = try Kannel(dir: work.file("kannel"))
        defer { kannel.stop() }
        let loa = try LoaDaemonProcess(work: work, carrierURL: kannel.sendsmsURL, username: kannel.username, password: kannel.password,
                                       method: "POST")
        let expected = FoundationPathTests.writeCampaign(work, id: "it-post", n: 300)
        try await loa.start()
        try #require(try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")]).status == 0)
        try await poll(60, every: 0.25, "every recipient delivered") {
            ((try await loa.campaign("it-post"))["states"] as? [String: Int])?["delivered"] == 300
        }
        var byNumber: [String: [String]] = [:]
        for m in try SMSCLog.messages(kannel.smscLog) { byNumber["+" + m.to.filter(\.isNumber), default: []].append(m.text) }
        #expect(byNumber.count == 300 && byNumber.values.allSatisfy { $0.count == 1 })
        #expect(expected.allSatisfy { byNumber[$0.key]?.first == $0.value }, "e.g. \(byNumber.first.map { "\($0)" } ?? "")")
        #expect(loa.stop() == 0)
    }
}
