import Testing
@testable import LoaCore

/// Reads back what ``CSVWriter`` wrote, with Loa's own RFC 4180 reader.
private func readBack(_ csv: String) -> [[String]] {
    var parser = CSVPushParser()
    var rows: [[String]] = []
    let bytes = Array(csv.utf8)
    bytes.withUnsafeBytes { parser.feed($0) { if case .record(_, let f) = $0 { rows.append(f) } } }
    parser.finish { if case .record(_, let f) = $0 { rows.append(f) } }
    return rows
}

@Suite struct CSVWriterTests {
    @Test func quotesWhatRFC4180Requires() {
        #expect(CSVWriter.field("Nguyễn An") == "Nguyễn An")
        #expect(CSVWriter.field("a,b") == "\"a,b\"")
        #expect(CSVWriter.field("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(CSVWriter.field("x\ny") == "\"x\ny\"")
        #expect(CSVWriter.field("x\ry") == "\"x\ry\"")
        // One Swift Character, equal to neither "\r" nor "\n": the case a Character test misses.
        #expect(CSVWriter.field("x\r\ny") == "\"x\r\ny\"")
        #expect(CSVWriter.field("nul\u{0}here") == "\"nul\u{0}here\"")
        #expect(CSVWriter.field("") == "")
    }

    @Test func neutralizesFormulasLosslessly() {
        #expect(CSVWriter.field("=HYPERLINK(\"http://x\")") == "\"'=HYPERLINK(\"\"http://x\"\")\"")
        #expect(CSVWriter.field("@SUM(A1)") == "'@SUM(A1)")
        #expect(CSVWriter.field("+1+1") == "'+1+1")
        #expect(CSVWriter.field("-2+3") == "'-2+3")
        #expect(CSVWriter.field("\tx") == "\"'\tx\"")
        #expect(CSVWriter.field("\rx") == "\"'\rx\"")
        #expect(CSVWriter.field("'kept") == "''kept")
        // Plain numbers cannot be formulas: an E.164 number stays a number.
        #expect(CSVWriter.field("+84912345678") == "+84912345678")
        #expect(CSVWriter.field("-5") == "-5")
        #expect(CSVWriter.field("+") == "'+")
    }

    /// Property: reading a written record back and dropping one leading apostrophe gives the raw values.
    @Test func everyValueIsRecoverable() {
        let values = ["=1+2", "'x", "''y", "+84912345678", "-", "a,\"b\"\r\nc", "\u{0}", "\u{1b}[31m", "@", "\t=", "plain", "", "Đà Nẵng",
                      "x\r\n", "-5", "+1-1", "'=1"]
        let csv = CSVWriter.record(values)
        let rows = readBack(csv)
        #expect(rows.count == 1)
        #expect(rows.first?.map(CSVWriter.recover) == values)
        // One physical record per logical one: a CR LF inside a value never ends the record early.
        #expect(readBack(CSVWriter.record(["a\r\nb", "c"]) + CSVWriter.record(["d", "e"])) == [["a\r\nb", "c"], ["d", "e"]])
    }
}

@Suite struct TerminalTextTests {
    @Test func controlsBecomeVisibleEscapes() {
        #expect(TerminalText.sanitize("plain Nguyễn") == "plain Nguyễn")
        #expect(TerminalText.sanitize("a\nb\rc\td") == "a\\nb\\rc\\td")
        #expect(TerminalText.sanitize("\u{1b}]0;owned\u{7}") == "\\x1b]0;owned\\x07")
        #expect(TerminalText.sanitize("\u{0}\u{7f}\u{9b}2J") == "\\x00\\x7f\\x9b2J")
        #expect(TerminalText.sanitize("a\u{2028}b\u{202e}c") == "a\\u{2028}b\\u{202e}c")
        #expect(TerminalText.sanitizeLines("one\u{1b}\ntwo") == "one\\x1b\ntwo")
        // Nothing a terminal obeys is left.
        let all = String(String.UnicodeScalarView((0...0x2100).compactMap(Unicode.Scalar.init)))
        #expect(!TerminalText.sanitize(all).unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
    }
}

@Suite struct CellControlTests {
    func builder(_ header: [String]) throws -> RecipientBuilder {
        try RecipientBuilder(campaignID: "c", templates: [try Template(name: "t", source: "Chào {{name}}")], header: CSVHeader(fields: header),
                             phoneColumn: "phone", policy: .auto, maxSegments: nil, allowedCountryCodes: [], router: Router(defaultCarrier: "k"))
    }

    @Test func aNulOrOtherC0ControlRefusesTheRowAndKeepsThePhone() throws {
        let b = try builder(["phone", "name"])
        guard case .failure(let r) = b.build(fields: ["0912345678", "An\u{0}Bình"]) else { Issue.record("accepted"); return }
        #expect(r.code == "control-character")
        #expect(r.message.contains("column 'name'") && r.message.contains("U+0000"))
        #expect(r.raw == "0912345678")
        guard case .failure(let p) = b.build(fields: ["0912\u{0}345678", "An"]) else { Issue.record("accepted"); return }
        #expect(p.code == "control-character" && p.message.contains("column 'phone'"))
        #expect(p.raw == "0912\u{0}345678")
        guard case .failure(let e) = b.build(fields: ["0912345678", "\u{1b}]0;x\u{7}"]) else { Issue.record("accepted"); return }
        #expect(e.message.contains("U+001B"))
        // TAB, and line breaks inside a quoted cell, are text.
        #expect((try? b.build(fields: ["0912345678", "An\tBình\r\nxã"]).get()) != nil)
    }

    @Test func invalidUTF8NamesTheColumnAndKeepsThePhone() throws {
        let b = try builder(["phone", "name"])
        let r = b.invalidText(fields: ["0912345678", "\u{FFFD}"], badField: 1)
        #expect(r.code == "malformed-row")
        #expect(r.message == "invalid UTF-8 in column 'name'")
        #expect(r.raw == "0912345678")
    }
}
