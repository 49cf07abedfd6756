import Foundation
import LoaCarriers
import LoaCore
import Testing

/// A carrier gateway that refuses every request with an answer that echoes it, as Kannel's smsbox does: the
/// password (as sent, percent-encoded, and decoded), then an escape sequence that retitles a terminal window, a
/// BEL, a CR LF and a line that could pass for one of Loa's own.
final class EchoGateway: @unchecked Sendable {
    private let listener: Int32
    let port: Int
    private let done = DispatchSemaphore(value: 0)

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard fd >= 0, bound == 0, listen(fd, 64) == 0 else { close(fd); throw HarnessError(message: "echo gateway: cannot listen") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        listener = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        let done = done
        Thread {
            // Bounded: the test sends a handful of requests.
            for _ in 0..<10_000 {
                let c = accept(fd, nil, nil)
                if c < 0 { break }
                EchoGateway.answer(c)
                close(c)
            }
            done.signal()
        }.start()
    }

    static func answer(_ c: Int32) {
        var request = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while request.count < 64 * 1024 {
            let n = read(c, &buf, buf.count)
            if n <= 0 { break }
            request += buf[0..<n]
            if request.count >= 4, request.suffix(4).elementsEqual([13, 10, 13, 10]) { break }
        }
        let head = String(decoding: request, as: UTF8.self)
        let requestLine = String(head.prefix { $0 != "\r" && $0 != "\n" })
        let query = requestLine.split(separator: " ").dropFirst().first.flatMap { $0.split(separator: "?", maxSplits: 1).last } ?? ""
        var password = ""
        for pair in query.split(separator: "&") where pair.hasPrefix("password=") {
            password = String(pair.dropFirst(9)).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
        }
        let body = "pw=\(password) \u{1B}]0;owned\u{07}\r\n2026-01-01T00:00:00Z error loa: FORGED; request: \(requestLine)"
        let response = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        _ = Array(response.utf8).withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        _ = done.wait(timeout: .now() + 5)
    }
}

/// What Loa writes for people and spreadsheets stays what it says: CSV exports quote CR LF and neutralize formulas
/// (the raw value recoverable), a NUL refuses a row instead of cutting it, a gateway answer that echoes the
/// request loses the carrier's secrets before it is stored, and no control character from outside reaches a
/// terminal or splits a line of the daemon's log.
@Suite(.ownThreads, .serialized) struct OutputSafetyTests {
    static let password = "Pa ss/w0rd+9!"

    /// The forms of the password a leak could take.
    static let leaks = [password, URLQuery.escape(password), URLQuery.escape(password).replacingOccurrences(of: "%20", with: "+")]

    @Test(.timeLimit(.minutes(3))) func exportsTerminalsAndLogsStayClean() async throws {
        let work = WorkDir("output-safety")
        let gateway = try EchoGateway()
        defer { gateway.stop() }
        let gatewayURL = "http://127.0.0.1:\(gateway.port)"
        let loa = try LoaDaemonProcess(work: work, password: Self.password, carriers: """
            [{"name": "kannel", "kind": "kannel", "url": "\(gatewayURL)/cgi-bin/sendsms", "username": "loa-user",
              "password": {"env": "LOA_KANNEL_PASSWORD"}, "receipt_secret": {"env": "LOA_RECEIPT_SECRET"},
              "rate": 100, "max_in_flight": 4, "timeout_seconds": 5},
             {"name": "jas", "kind": "jasmin", "url": "\(gatewayURL)/send", "username": "loa-user",
              "password": {"env": "LOA_KANNEL_PASSWORD"}, "receipt_secret": {"env": "LOA_RECEIPT_SECRET"},
              "rate": 100, "max_in_flight": 4, "timeout_seconds": 5}]
            """, defaultCarrier: "kannel", retry: #"{ "max_attempts": 1, "base_seconds": 0.2, "max_seconds": 1 }"#)

        var segment = Array("phone,name\n".utf8)
        segment += Array("0912345678,\"=HYPERLINK(\"\"http://evil.example/\"\",\"\"click\"\")\"\n".utf8)   // sent; the name is in the text only
        segment += Array("0912345679,@SUM(1+1)\n".utf8)                                                      // sent
        segment += Array("0912\u{0}345670,Cut\n".utf8)                                                       // NUL in the phone: refused whole
        segment += Array("0912345671,An\u{0}Evil\n".utf8)                                                    // NUL in the name: refused
        segment += Array("0912345672,".utf8) + [0xC3, 0x28] + Array("\n".utf8)                               // invalid UTF-8 in the name
        segment += Array("\"=cmd|' /C calc'!A0\",Formula\n".utf8)                                           // a formula as the phone
        segment += Array("0912345673,\u{1B}]0;owned\u{07}\n".utf8)                                          // ESC and BEL in the name
        work.write("c/t.txt", "Chào {{name}}\n")
        try Data(segment).write(to: URL(fileURLWithPath: work.file("c/seg.csv")))
        work.write("c/campaign.json", """
            {"id": "out", "sender": "UBND", "templates": ["t.txt"], "segments": ["seg.csv"],
             "start": "2026-01-01T00:00:00+07:00", "deadline": "2099-01-01T00:00:00+07:00", "windows": ["00:00-24:00"]}
            """)

        // loa check lists the refused rows without a raw control character.
        let check = try loa.cli(["check", "--allow-rejects", work.file("c/campaign.json")])
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output.contains("control-character: column 'name' holds the control character U+0000"), "\(check.output)")
        #expect(check.output.contains("invalid UTF-8 in column 'name'"), "\(check.output)")
        #expect(!Self.hasRawControl(check.output, allowingNewlines: true), "\(check.output.debugDescription)")

        try await loa.start()
        let submit = try loa.cli(["campaign", "submit", work.file("c/campaign.json")])
        try #require(submit.status == 0, "\(submit.output)")
        try await poll(60, every: 0.1, "the campaign to end") {
            (try await loa.campaign("out"))["state"] as? String == "completed"
        }
        let c = try await loa.campaign("out")
        #expect(c["accepted"] as? Int == 2, "\(c)")
        #expect((c["states"] as? [String: Int])?["failed"] == 2, "\(c)")

        // The rejects export: one record per refused row, raw values recoverable, the NUL kept, never cut.
        let rejectsFile = work.file("rejects.csv")
        let rej = try loa.cli(["campaign", "rejects", "out", "--csv", rejectsFile])
        #expect(rej.status == 0, "\(rej.output)")
        let rejects = try Self.readCSV(rejectsFile)
        #expect(rejects.first == ["file", "line", "value", "reason", "detail"])
        let byLine = Dictionary(rejects.dropFirst().map { ($0[1], $0) }, uniquingKeysWith: { a, _ in a })
        #expect(rejects.count == 1 + 5, "\(rejects)")
        #expect(rejects.dropFirst().allSatisfy { $0.count == 5 }, "\(rejects)")
        #expect(byLine["4"]?[2] == "0912\u{0}345670" && byLine["4"]?[3] == "control-character", "\(byLine["4"] ?? [])")
        #expect(byLine["5"]?[2] == "0912345671" && byLine["5"]?[4].contains("column 'name'") == true, "\(byLine["5"] ?? [])")
        #expect(byLine["6"]?[2] == "0912345672" && byLine["6"]?[4] == "invalid UTF-8 in column 'name'", "\(byLine["6"] ?? [])")
        // The formula is written with its leading apostrophe; dropping it gives the raw value back.
        #expect(byLine["7"]?[2] == "'=cmd|' /C calc'!A0", "\(byLine["7"] ?? [])")
        #expect(byLine["7"].map { CSVWriter.recover($0[2]) } == "=cmd|' /C calc'!A0")
        #expect(byLine["8"]?[3] == "control-character", "\(byLine["8"] ?? [])")

        // The same on stdout: readable, nothing a terminal would obey.
        let rejOut = try loa.cli(["campaign", "rejects", "out"])
        #expect(rejOut.status == 0 && rejOut.output.contains("0912\\x00345670"), "\(rejOut.output.debugDescription)")
        #expect(!Self.hasRawControl(rejOut.output, allowingNewlines: true), "\(rejOut.output.debugDescription)")

        // The report: the gateway's answer (with its CR LF) stays in one quoted field; no password in any form.
        let reportFile = work.file("report.csv")
        let rep = try loa.cli(["report", "out", "--csv", reportFile])
        #expect(rep.status == 0, "\(rep.output)")
        let reportText = try String(contentsOfFile: reportFile, encoding: .utf8)
        let report = try Self.readCSV(reportFile)
        #expect(report.count == 1 + 7, "\(reportText.debugDescription)")
        #expect(report.allSatisfy { $0.count == 13 }, "\(report)")
        let reasons = report.filter { $0[3] == "failed" }.map { $0[4] }
        #expect(reasons.count == 2 && reasons.allSatisfy { $0.contains("pw=***") && $0.contains("\r\n") }, "\(reasons)")
        #expect(report.contains { $0[1] == "0912\u{0}345670" && $0[4] == "control-character" }, "\(report)")
        #expect(report.contains { $0[1] == "'=cmd|' /C calc'!A0" }, "\(report)")
        for leak in Self.leaks { #expect(!reportText.contains(leak), "report: \(leak)") }

        // Stored answers: the messages API and the delivery log hold no password in any form.
        let messages = try await loa.api("/api/v1/campaigns/out/messages").bodyText
        #expect(messages.contains("pw=***"), "\(messages)")
        let log = (try? String(contentsOfFile: work.file("data/delivery.log"), encoding: .utf8)) ?? ""
        for leak in Self.leaks {
            #expect(!messages.contains(leak), "messages API: \(leak)")
            #expect(!log.contains(leak), "delivery log: \(leak)")
        }
        #expect(!log.contains(loa.receiptSecret), "delivery log: the receipt secret")

        // loa tail: one line per event, nothing a terminal would obey.
        let tail = try loa.cli(["tail"])
        #expect(tail.status == 0)
        #expect(!Self.hasRawControl(tail.output, allowingNewlines: true), "\(tail.output.debugDescription)")
        #expect(tail.output.split(separator: "\n").count == loa.logEvents().count, "\(tail.output)")
        #expect(!tail.output.split(separator: "\n").contains { $0.hasPrefix("2026-01-01T00:00:00Z error") }, "\(tail.output)")

        // A receipt field with a newline and an escape sequence: the daemon's log keeps one record per line.
        let forged = "9\n2026 FORGED\u{1B}[2J"  // within the 20 characters the refusal quotes
        let receipt = try await loa.engine.perform(HTTPRequest(
            url: loa.base + "/dlr/jas?k=\(URLQuery.escape(loa.receiptSecret))&id=abc&message_status=DELIVRD&level=\(URLQuery.escape(forged))", timeout: 5))
        #expect(receipt.status == 400)
        #expect(loa.stop() == 0)
        let stderr = (try? String(contentsOfFile: work.file("daemon.log"), encoding: .utf8)) ?? ""
        #expect(stderr.contains("receipt not understood"), "\(stderr)")
        #expect(!stderr.utf8.split(separator: 10).contains { $0.starts(with: "2026 FORGED".utf8) }, "\(stderr)")
        #expect(stderr.contains("'9\\n2026 FORGED\\u001b[2J'"), "\(stderr)")
        #expect(!Self.hasRawControl(stderr, allowingNewlines: true), "\(stderr.debugDescription)")
        for leak in Self.leaks { #expect(!stderr.contains(leak), "daemon log: \(leak)") }
    }

    /// True when `s` holds a control character a terminal would obey (line feeds allowed where lines are expected).
    static func hasRawControl(_ s: String, allowingNewlines: Bool) -> Bool {
        s.unicodeScalars.contains { TerminalText.isControl($0) && !(allowingNewlines && $0 == "\n") }
    }

    /// The records of a CSV file, read with Loa's RFC 4180 reader.
    static func readCSV(_ path: String) throws -> [[String]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        var parser = CSVPushParser()
        var rows: [[String]] = []
        data.withUnsafeBytes { parser.feed($0) { if case .record(_, let f) = $0 { rows.append(f) } } }
        parser.finish { if case .record(_, let f) = $0 { rows.append(f) } }
        return rows
    }
}
