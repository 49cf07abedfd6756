import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import Synchronization
import Testing

/// A Kannel-like gateway that is down (HTTP 500, echoing the request's password as some gateways echo the request)
/// for its first `outage` seconds, then accepts everything and sends no receipts.
final class OutageGateway: HTTPService {
    let outage: Double
    let firstRequest = Mutex<Date?>(nil)

    init(outage: Double) { self.outage = outage }

    func route(_ head: RequestHead) -> Route {
        let since = firstRequest.withLock { first -> Double in
            if first == nil { first = Date() }
            return Date().timeIntervalSince(first!)
        }
        if since < outage { return .respond(.text(500, "down; request had password=\(head.query["password"] ?? "")")) }
        return .respond(.text(202, "0: Accepted for delivery"))
    }
}

/// One line of the daemon's stderr as the journal would store it: the `<N>` priority, the level word, the message
/// and the logfmt pairs.
struct JournalLine {
    var priority: Int
    var level: String
    var message: String
    var pairs: [String: String]

    /// Parses `<N>level loa: message key=value …`; nil when the line does not have that shape.
    init?(_ line: Substring) {
        guard line.hasPrefix("<"), let close = line.firstIndex(of: ">"), let p = Int(line[line.index(after: line.startIndex)..<close]) else { return nil }
        priority = p
        let rest = line[line.index(after: close)...]
        guard let space = rest.firstIndex(of: " ") else { return nil }
        level = String(rest[..<space])
        let body = rest[rest.index(after: space)...]
        guard body.hasPrefix("loa: ") else { return nil }
        let text = body.dropFirst(5)
        // The message runs to the first ` key=`: messages are constant text with no `=`.
        let firstPair = text.firstRange(of: #/ [A-Za-z_.]+=/#)?.lowerBound ?? text.endIndex
        message = String(text[..<firstPair])
        pairs = Self.logfmt(text[firstPair...])
    }

    /// `key=value` and `key="quoted"` pairs with go-logfmt's escapes.
    static func logfmt(_ s: Substring) -> [String: String] {
        var out: [String: String] = [:]
        var scalars = s.unicodeScalars[...]
        while true {
            while scalars.first == " " { scalars.removeFirst() }
            guard !scalars.isEmpty else { return out }
            var key = ""
            while let c = scalars.first, c != "=", c != " " { key.unicodeScalars.append(c); scalars.removeFirst() }
            guard scalars.first == "=" else { out[key] = ""; continue }
            scalars.removeFirst()
            var value = ""
            if scalars.first == "\"" {
                scalars.removeFirst()
                while let c = scalars.popFirst(), c != "\"" {
                    guard c == "\\" else { value.unicodeScalars.append(c); continue }
                    switch scalars.popFirst() {
                    case "n": value += "\n"
                    case "r": value += "\r"
                    case "t": value += "\t"
                    case "u":
                        let hex = String(String.UnicodeScalarView(scalars.prefix(4)))
                        scalars = scalars.dropFirst(4)
                        value.unicodeScalars.append(Unicode.Scalar(UInt32(hex, radix: 16) ?? 0xFFFD) ?? "?")
                    case let e?: value.unicodeScalars.append(e)
                    case nil: break
                    }
                }
            } else {
                while let c = scalars.first, c != " " { value.unicodeScalars.append(c); scalars.removeFirst() }
            }
            out[key] = value
        }
    }
}

@Suite(.ownThreads, .serialized) struct JournalTests {
    /// With stderr as the journal (JOURNAL_STREAM naming its device and inode, as systemd sets it), every line of the
    /// daemon's stderr carries the `<N>` priority of its level and no time of its own, and the events an operator waits
    /// for are each there once, at their level, with their pairs readable as logfmt: the start's recovery, campaigns
    /// started, completed (final counts), expired (messages left), paused, resumed, cancelled; the breaker opened with
    /// its cause (the carrier's password masked) and closed; receipts overdue.
    @Test(.timeLimit(.minutes(3))) func theJournalReadsPrioritiesAndLogfmtPairs() async throws {
        let gateway = OutageGateway(outage: 2.5)
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: gateway)
        defer { server.stop() }
        let work = WorkDir("journal")
        let password = "journal-pw-" + String(UUID().uuidString.prefix(8))
        // Receipts are overdue 1.8 s after the gateway took a message (it sends none).
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:\(server.port)/cgi-bin/sendsms", username: "u", password: password,
                                       rate: 200, maxInFlight: 4, extraConfig: #""receipt_timeout_hours": 0.0005"#)
        // The harness opens daemon.log with O_TRUNC: the file made here keeps its inode, which JOURNAL_STREAM names.
        try #require(FileManager.default.createFile(atPath: work.file("daemon.log"), contents: nil))
        var st = stat()
        try #require(stat(work.file("daemon.log"), &st) == 0)
        loa.extraEnv["JOURNAL_STREAM"] = "\(st.st_dev):\(st.st_ino)"
        try await loa.start()
        defer { _ = loa.stop() }

        SchedulingPathTests.campaign(work, id: "done", n: 30)
        let deadline = ISOTime.format(SystemTimeSource().now() + 9_000)
        SchedulingPathTests.campaign(work, id: "late", n: 40, extra: #", "max_rate": 2"#, deadline: deadline)
        SchedulingPathTests.campaign(work, id: "held", n: 5, prefix: "0983")
        work.write("held/c.json", (try String(contentsOfFile: work.file("held/c.json"), encoding: .utf8))
            .replacingOccurrences(of: "2026-01-01T00:00:00+07:00", with: "2098-01-01T00:00:00+07:00"))
        for id in ["done", "late", "held"] {
            let r = try loa.cli(["campaign", "submit", work.file("\(id)/c.json")])
            try #require(r.status == 0, "\(id): \(r.output)")
        }
        for verb in ["pause", "resume", "cancel"] {
            let r = try loa.cli(["campaign", verb, "held"])
            try #require(r.status == 0, "\(verb): \(r.output)")
        }
        try await poll(60, "done completed, late expired, the breaker closed and receipts overdue") {
            let log = (try? String(contentsOfFile: work.file("daemon.log"), encoding: .utf8)) ?? ""
            let done = try await loa.campaign("done")["state"] as? String, late = try await loa.campaign("late")["state"] as? String
            return done == "completed" && late == "expired" && log.contains("carrier breaker closed") && log.contains("receipts overdue") && log.contains("campaign expired")
                && log.contains("campaign completed")
        }
        #expect(loa.stop() == 0)

        let text = try String(contentsOfFile: work.file("daemon.log"), encoding: .utf8)
        let raw = text.split(separator: "\n")
        let lines = raw.compactMap(JournalLine.init)
        #expect(lines.count == raw.count, "every line has the <N>level loa: shape:\n\(raw.filter { JournalLine($0) == nil }.joined(separator: "\n"))")
        let priorities = ["debug": 7, "info": 6, "notice": 5, "warning": 4, "error": 3]
        for l in lines { #expect(priorities[l.level] == l.priority, "\(l)") }
        #expect(!raw.contains { $0.dropFirst(3).first?.isNumber == true }, "no line carries its own time")
        #expect(!text.contains(password), "the password never reaches the log")

        func one(_ prefix: String, _ pairs: [String: String] = [:], priority: Int) -> JournalLine? {
            let found = lines.filter { line in line.message.hasPrefix(prefix) && pairs.allSatisfy { line.pairs[$0.key] == $0.value } }
            #expect(found.count == 1, "\(prefix) \(pairs): \(found.count) lines\n\(text)")
            #expect(found.first?.priority == priority, "\(prefix): \(String(describing: found.first))")
            return found.first
        }
        _ = one("store opened: nothing to recover", ["recovery.unknown_messages": "0"], priority: 5)
        _ = one("loa ready", priority: 5)
        _ = one("campaign started", ["campaign.id": "done"], priority: 5)
        _ = one("campaign started", ["campaign.id": "late"], priority: 5)
        let completed = one("campaign completed", ["campaign.id": "done", "campaign.state": "completed", "messages.total": "30"], priority: 5)
        let finals = (completed?.pairs ?? [:]).filter { $0.key.hasPrefix("messages.") && $0.key != "messages.total" }.compactMap { Int($0.value) }
        #expect(finals.reduce(0, +) == 30, "the final counts add up: \(String(describing: completed))")
        let expired = one("campaign expired", ["campaign.id": "late", "campaign.state": "expired"], priority: 4)
        #expect(Int(expired?.pairs["messages.expired"] ?? "") ?? 0 > 0, "\(String(describing: expired))")
        _ = one("campaign paused by the operator", ["campaign.id": "held"], priority: 5)
        _ = one("campaign resumed by the operator", ["campaign.id": "held"], priority: 5)
        _ = one("campaign cancelled by the operator", ["campaign.id": "held"], priority: 5)
        #expect(!lines.contains { $0.message.hasPrefix("campaign started") && $0.pairs["campaign.id"] == "held" })
        let opened = lines.filter { $0.message.hasPrefix("carrier breaker opened") }
        #expect(!opened.isEmpty && opened.allSatisfy { $0.priority == 4 && $0.pairs["carrier.name"] == "kannel" && $0.pairs["cause.class"] == "temporary" })
        #expect(opened.first?.pairs["cause"] == "HTTP 500: down; request had password=***", "\(opened)")
        #expect(lines.contains { $0.message.hasPrefix("carrier breaker closed") && $0.priority == 5 && $0.pairs["carrier.name"] == "kannel" })
        let overdue = lines.filter { $0.message.hasPrefix("receipts overdue") }
        #expect(!overdue.isEmpty && overdue.allSatisfy { $0.priority == 4 && Int($0.pairs["count"] ?? "") ?? 0 > 0 }, "\(overdue)")
        _ = one("loa stopped", priority: 5)
    }
}
