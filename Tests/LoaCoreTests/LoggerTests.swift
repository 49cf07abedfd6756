import Foundation
import Testing
@testable import LoaCore

@Suite struct LoggerTests {
    @Test func aRecordCarriesLevelMessageAndMergedMetadata() {
        let handler = CollectingLogHandler()
        let logger = Logger(label: "loa", level: .info, metadata: ["carrier.name": "k", "a": "1"], handler: handler).with(["campaign.id": "c1"])
        logger.debug("not kept: below the level")
        logger.warning("carrier breaker opened", ["a": "2", "http.status": "503"])
        #expect(handler.records == [LogRecord(level: .warning, label: "loa", message: "carrier breaker opened",
                                              metadata: ["carrier.name": "k", "a": "2", "campaign.id": "c1", "http.status": "503"])])
    }

    /// Under systemd (JOURNAL_STREAM names stderr's device and inode) the journal stamps each line and reads its
    /// priority from sd-daemon's `<N>` prefix; elsewhere the line carries its time and no prefix.
    @Test func theJournalStampsTheTimeAndReadsThePriority() {
        let record = LogRecord(level: .notice, label: "loa", message: "loa ready", metadata: ["listen.port": "8080"])
        let clock = ManualTimeSource(ISOTime.parse("2026-12-01T10:00:00Z")!)
        let journal = StderrLogHandler(environment: ["JOURNAL_STREAM": "8:12345"], stderr: (8, 12345), clock: clock)
        #expect(!journal.stampsTime && journal.prefixesPriority)
        #expect(journal.line(record) == "<5>notice loa: loa ready listen.port=8080\n")
        var warning = record
        warning.level = .warning
        #expect(journal.line(warning).hasPrefix("<4>warning loa: "))
        let terminal = StderrLogHandler(environment: [:], stderr: (8, 12345), clock: clock)
        #expect(terminal.stampsTime && !terminal.prefixesPriority)
        #expect(terminal.line(record) == "2026-12-01T10:00:00.000Z notice loa: loa ready listen.port=8080\n")
        // Inherited from a unit whose journal stream is not this stderr (a file, a terminal): not the journal.
        let inherited = StderrLogHandler(environment: ["JOURNAL_STREAM": "8:12345"], stderr: (8, 99), clock: clock)
        #expect(inherited.stampsTime && !inherited.prefixesPriority)
    }

    @Test func syslogPrioritiesFollowSdDaemon() {
        #expect([Logger.Level.debug, .info, .notice, .warning, .error].map(\.syslogPriority) == [7, 6, 5, 4, 3])
    }

    @Test func onlyAMatchingJournalStreamCounts() {
        #expect(StderrLogHandler.isJournal("2049:77", stderr: (2049, 77)))
        for bad in ["2049:78", "2050:77", "2049", "2049:77:1", ":77", "x:77", "2049:", ""] {
            #expect(!StderrLogHandler.isJournal(bad, stderr: (2049, 77)), "\(bad)")
        }
        #expect(!StderrLogHandler.isJournal(nil, stderr: (2049, 77)))
        #expect(!StderrLogHandler.isJournal("2049:77", stderr: nil))
    }

    /// Every value comes back from the line as it went in, read by a logfmt reader written from go-logfmt's rules
    /// (pairs split on unquoted spaces; quoted values with JSON's escapes).
    @Test func valuesReadBackWithALogfmtReader() {
        let values = ["", " ", "plain", "a b", "a=b", "=", "\"", "say \"hi\"", "back\\slash", "line\nbreak\r\n", "tab\there",
                      "\u{1B}[2J", "\u{07}\u{00}", "\u{7F}\u{9B}", "\u{2028}\u{202E}", "Đà Nẵng", "emoji 📨", "k=v x=\"y\"", "trailing\\"]
        var meta: [String: String] = [:]
        for (i, v) in values.enumerated() { meta["v\(i)"] = v }
        let line = Logger.line(time: nil, level: .info, label: "loa", message: "m", metadata: meta, priority: true)
        #expect(line.hasPrefix("<6>info loa: m "))
        #expect(line.filter { $0 == "\n" }.count == 1 && line.hasSuffix("\n"))
        #expect(!line.dropLast().unicodeScalars.contains { TerminalText.isControl($0) })
        let pairs = LogfmtReader.pairs(String(line.dropLast()))
        for (k, v) in meta { #expect(pairs[k] == v, "\(k): \(v.debugDescription) read back as \(pairs[k].debugDescription)") }
    }
}

/// A logfmt reader after go-logfmt's decoder: bare keys, `key=value`, `key="quoted"` with `\"`, `\\`, `\n`, `\r`,
/// `\t`, `\uXXXX` (and `\/`, `\b`, `\f`); any other escape makes the value unreadable (nil).
enum LogfmtReader {
    static func pairs(_ line: String) -> [String: String?] {
        var out: [String: String?] = [:]
        var s = Substring(line)
        while true {
            s = s.drop { $0 == " " }
            guard !s.isEmpty else { return out }
            let key = s.prefix { $0 != " " && $0 != "=" }
            s = s.dropFirst(key.count)
            guard s.first == "=" else { out[String(key)] = ""; continue }
            s = s.dropFirst()
            if s.first == "\"" {
                s = s.dropFirst()
                var value = ""
                var ok = true
                var scalars = s.unicodeScalars[...]
                while let c = scalars.popFirst(), c != "\"" {
                    guard c == "\\" else { value.unicodeScalars.append(c); continue }
                    switch scalars.popFirst() {
                    case "\"": value += "\""
                    case "\\": value += "\\"
                    case "/": value += "/"
                    case "n": value += "\n"
                    case "r": value += "\r"
                    case "t": value += "\t"
                    case "b": value += "\u{08}"
                    case "f": value += "\u{0C}"
                    case "u":
                        let hex = String(String.UnicodeScalarView(scalars.prefix(4)))
                        scalars = scalars.dropFirst(4)
                        if let n = UInt32(hex, radix: 16), let u = Unicode.Scalar(n) { value.unicodeScalars.append(u) } else { ok = false }
                    default: ok = false
                    }
                }
                out[String(key)] = .some(ok ? value : nil)
                s = Substring(String(String.UnicodeScalarView(scalars)))
            } else {
                let value = s.prefix { $0 != " " }
                out[String(key)] = String(value)
                s = s.dropFirst(value.count)
            }
        }
    }
}
