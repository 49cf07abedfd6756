import Foundation
import LoaCore
import Testing
@testable import LoaCommandLine
@testable import LoaDaemon
@testable import LoaSim

/// True when `s` holds a control character a terminal would obey, other than the line feeds between lines.
private func hasRawControl(_ s: String) -> Bool {
    s.unicodeScalars.contains { TerminalText.isControl($0) && $0 != "\n" }
}

@Suite struct TerminalOutputTests {
    /// A campaign's name, sender and reasons come from outside: `campaign show` prints them escaped, one line each.
    @Test func campaignShowEscapesWhatItWasSent() {
        let body = #"{"id":"x","state":"running","name":"Đợt 1\u001b]0;owned\u0007","sender":"UBND\r\nforged","reasons":{"a\u001b[2Jb":1}}"#
        let text = LoaCLI.renderShow(Array(body.utf8), carriers: Array(#"[{"name":"k\u009b2J"}]"#.utf8))
        #expect(!hasRawControl(text), "\(text.debugDescription)")
        #expect(text.contains("name      Đợt 1\\x1b]0;owned\\x07"), "\(text)")
        #expect(text.contains("sender    UBND\\r\\nforged"), "\(text)")
        #expect(text.contains("a\\x1b[2Jb 1"), "\(text)")
        #expect(text.contains("rate      k\\x9b2J:"), "\(text)")
    }

    /// `loa tail`: gateway answers and receipt fields in an event are shown escaped, in both layouts.
    @Test func tailEscapesDetails() {
        let event: [String: Any] = ["time": "2026-01-01T00:00:00Z", "campaign": "c\u{1B}[31m", "message": 1, "recipient": "+8491****678",
                                    "carrier": "k", "event": "failed", "status": "failed", "gateway_id": "g\r\n1",
                                    "detail": "HTTP 400: x\u{1B}]0;owned\u{07}\r\n2026 forged"]
        for color in [false, true] {
            let line = LogTailer.readable(event, color: color)
            let withoutColors = line.replacingOccurrences(of: "\u{1B}[31m", with: "").replacingOccurrences(of: "\u{1B}[0m", with: "")
            #expect(!hasRawControl(color ? withoutColors : line), "\(line.debugDescription)")
            #expect(line.contains("x\\x1b]0;owned\\x07\\r\\n2026 forged"), "\(line)")
            #expect(line.contains("c\\x1b[31m"), "\(line)")
        }
    }

    /// JSON passed through to a terminal keeps its value: only what encoders leave raw becomes `\u` escapes.
    @Test func jsonForATerminalKeepsItsValue() throws {
        let raw = "{\"a\":\"x\u{9B}2J\u{7F}\u{202E}y\"}"
        let safe = LoaCLI.terminalJSON(raw)
        #expect(safe == #"{"a":"x\u009b2J\u007f\u202ey"}"#)
        let a = try JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: String]
        let b = try JSONSerialization.jsonObject(with: Data(safe.utf8)) as? [String: String]
        #expect(a == b)
    }
}

@Suite struct LoggerFormatTests {
    /// Values are quoted logfmt-style, so a newline in a receipt field never starts a line of its own.
    @Test func valuesAreQuotedAndOneRecordIsOneLine() {
        let line = Logger.line(time: "T", level: .warning, label: "loa", message: "receipt not understood\n", metadata: [
            "carrier.name": "jas", "error": "level: unknown level '9\n2026 error loa: FORGED\u{1B}[2J'", "empty": "",
            "path": "a b", "q": "say \"hi\" \\ now", "eq": "a=b", "bell": "\u{07}", "plain": "Đà_Nẵng",
        ])
        #expect(line == #"T warning loa: receipt not understood\n bell="\u0007" carrier.name=jas empty="" eq="a=b" "#
                + #"error="level: unknown level '9\n2026 error loa: FORGED\u001b[2J'" path="a b" plain=Đà_Nẵng q="say \"hi\" \\ now""# + "\n")
        #expect(line.filter { $0 == "\n" }.count == 1)
        #expect(!line.dropLast().unicodeScalars.contains { TerminalText.isControl($0) })
    }
}
