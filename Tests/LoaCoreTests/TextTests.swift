import Foundation
import Testing
@testable import LoaCore

@Suite struct PhoneNumberTests {
    @Test(arguments: [
        "0912345678", "0912 345 678", "0912.345.678", "0912-345-678", "84912345678", "+84912345678",
        "+84 912 345 678", "(+84) 912-345-678", "0084912345678", "00 84 912 345 678", "912345678", "+84 0912 345 678",
        "０９１２３４５６７８",
    ])
    func everyWrittenFormNormalizes(_ raw: String) throws {
        let p = try PhoneNormalizer.normalize(raw).get()
        #expect(p.e164 == "+84912345678")
        #expect(p.nationalSignificant == "912345678")
        #expect(p.defaultCarrier == .vinaphone)
        #expect(p.masked == "+8491****678")
    }

    @Test func everyLegacyPrefixConverts() throws {
        for (old, new) in PhoneNormalizer.legacy {
            for written in ["0\(old)5678945", "84\(old)5678945", "+84 \(old) 567 8945"] {
                let p = try PhoneNormalizer.normalize(written).get()
                #expect(p.e164 == "+84\(new)5678945", "\(written)")
            }
        }
        #expect(try PhoneNormalizer.normalize("01695678945").get().e164 == "+84395678945")
        #expect(try PhoneNormalizer.normalize("01695678945").get().defaultCarrier == .viettel)
    }

    @Test(arguments: [
        ("", "empty"), ("  ", "empty"), ("0912abc678", "invalid-characters"), ("091234567", "wrong-length"),
        ("09123456789", "wrong-length"), ("02838221234", "fixed-line"), ("1900545454", "special-number"),
        ("18001091", "special-number"), ("113", "special-number"), ("0672123456", "special-number"),
        ("0922345678", "vietnamobile-ok"), ("0992345678", "unallocated"), ("0893456789", "unallocated"),
        ("0552345678", "unallocated"), ("0521234567", "unallocated"), ("01301234567", "legacy-unmapped"),
        ("+85620123456", "foreign-country"), ("0112345678", "unallocated"),
        // Issue 16: a 7-digit number is a mobile number with digits missing, not a short code.
        ("0364527", "wrong-length"), ("364527", "wrong-length"), ("091234", "wrong-length"), ("1080", "special-number"),
    ])
    func rejections(_ raw: String, _ code: String) {
        switch PhoneNormalizer.normalize(raw) {
        case .success(let p): #expect(code.hasSuffix("-ok"), "\(raw) accepted as \(p.e164)")
        case .failure(let r):
            #expect(r.code == code, "\(raw): \(r)")
            let digits = raw.filter(\.isNumber)
            if digits.count >= 9 { #expect(!r.message.contains(digits), "the message must not repeat the number") }
        }
    }

    /// The reason names the length the planner wrote, so the row can be fixed.
    @Test func aSevenDigitNumberIsAWrongLengthWithItsCount() {
        guard case .failure(let r) = PhoneNormalizer.normalize("0364527") else { Issue.record("0364527 accepted"); return }
        #expect(r.code == "wrong-length" && r.message == "7 digits in national form; mobiles have 10", "\(r)")
    }

    @Test func carriersByPrefix() throws {
        let cases: [(String, Carrier)] = [
            ("0321234567", .viettel), ("0861234567", .viettel), ("0981234567", .viettel), ("0160123456", .viettel),
            ("0701234567", .mobifone), ("0891234567", .unknown), ("0901234567", .mobifone), ("0301234567", .mobifone),
            ("0812345678", .vinaphone), ("0941234567", .vinaphone), ("0561234567", .vietnamobile), ("0522345678", .vietnamobile),
            ("0591234567", .gmobile), ("0993456789", .gmobile), ("0871234567", .itelecom), ("0998123456", .itelecom),
            ("0559123456", .reddi), ("0951234567", .unknown), ("0121012345", .mobifone),
        ]
        for (n, c) in cases {
            switch PhoneNormalizer.normalize(n) {
            case .success(let p): #expect(p.defaultCarrier == c, "\(n)")
            case .failure(let r): #expect(c == .unknown && n.hasPrefix("089"), "\(n): \(r)")
            }
        }
    }

    @Test func foreignNumbersOnlyWhenAllowed() throws {
        #expect(try PhoneNormalizer.normalize("+856 20 1234 5678", allowedCountryCodes: ["856"]).get().e164 == "+8562012345678")
        #expect(try PhoneNormalizer.normalize("00856 20 1234 5678", allowedCountryCodes: ["856"]).get().countryCode == "856")
    }

    /// Property: any valid mobile number, written in any form, normalizes back to itself.
    @Test func formattingThenNormalizingIsIdentity() throws {
        var rng = SplitMix(seed: 42)
        let prefixes = ["32", "39", "86", "96", "70", "79", "89", "90", "93", "81", "85", "88", "91", "94", "56", "58", "59", "87"]
        for _ in 0..<2000 {
            var nsn = prefixes[Int(rng.next() % UInt64(prefixes.count))]
            if nsn == "89" { nsn += String(6 + rng.next() % 4) }
            while nsn.count < 9 { nsn += String(rng.next() % 10) }
            let national = "0" + nsn
            let spaced: String = String(national.prefix(4)) + " " + String(national.dropFirst(4))
            let dashed: String = "(+84) " + String(nsn.prefix(2)) + "-" + String(nsn.dropFirst(2).prefix(3)) + "-" + String(nsn.suffix(4))
            let forms: [String] = [national, "+84" + nsn, "84" + nsn, "0084 " + nsn, spaced, dashed, nsn]
            for f in forms {
                #expect(try PhoneNormalizer.normalize(f).get().e164 == "+84" + nsn, "\(f)")
            }
        }
    }
}

/// A small deterministic generator for property tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct SMSTextTests {
    @Test(arguments: [
        (String(repeating: "a", count: 160), SMSEncoding.gsm7, 160, 1),
        (String(repeating: "a", count: 161), .gsm7, 161, 2),
        (String(repeating: "a", count: 306), .gsm7, 306, 2),
        (String(repeating: "a", count: 307), .gsm7, 307, 3),
        (String(repeating: "€", count: 80), .gsm7, 160, 1),
        (String(repeating: "a", count: 152) + "€" + String(repeating: "b", count: 7), .gsm7, 161, 2),
        (String(repeating: "ệ", count: 70), .ucs2, 70, 1),
        (String(repeating: "ệ", count: 71), .ucs2, 71, 2),
        (String(repeating: "ệ", count: 134), .ucs2, 134, 2),
        (String(repeating: "ệ", count: 135), .ucs2, 135, 3),
        (String(repeating: "a", count: 66) + "😀" + String(repeating: "ệ", count: 10), .ucs2, 78, 2),
        ("", .gsm7, 0, 1),
    ])
    func worked(_ text: String, _ encoding: SMSEncoding, _ units: Int, _ segments: Int) {
        let info = SMSText.analyze(text)
        #expect(info.encoding == encoding)
        #expect(info.units == units)
        #expect(info.segments == segments)
        #expect(SMSText.split(text, encoding: encoding).count == segments)
    }

    @Test func extensionCharactersCostTwo() {
        for c in ["€", "^", "{", "}", "[", "]", "~", "\\", "|"] {
            #expect(SMSText.analyze(c).units == 2, "\(c)")
        }
        #expect(SMSText.analyze("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà").encoding == .gsm7)
        #expect(SMSText.analyze("ấ").encoding == .ucs2)
    }

    @Test func anEscapeIsNeverSplitFromItsCharacter() {
        let text = String(repeating: "a", count: 152) + "€" + String(repeating: "b", count: 10)
        let parts = SMSText.split(text, encoding: .gsm7)
        #expect(parts.count == 2 && parts[0].count == 152 && parts[1].hasPrefix("€"))
    }

    @Test func surrogatePairsStayWhole() {
        let text = String(repeating: "a", count: 66) + "😀" + "zzzzz"
        let parts = SMSText.split(text, encoding: .ucs2)
        #expect(parts.map { $0.utf16.count } == [66, 7])
    }

    @Test func nfdCostsMoreThanNFC() {
        let nfc = "Việt Nam"
        let nfd = nfc.decomposedStringWithCanonicalMapping
        #expect(nfd.utf16.count > nfc.utf16.count)
        let prepared = SMSText.prepare(nfd, policy: .auto)
        #expect(prepared.info.units == nfc.utf16.count)
        #expect(SMSText.prepare("Hello", policy: .unicode).info.encoding == .ucs2)
    }

    @Test func transliteratesEveryVietnameseLetter() {
        let vowels: [(String, String)] = [("a", "aàáảãạ"), ("ă", "ằắẳẵặ"), ("â", "ầấẩẫậ"), ("e", "eèéẻẽẹ"), ("ê", "ềếểễệ"),
                                         ("i", "iìíỉĩị"), ("o", "oòóỏõọ"), ("ô", "ồốổỗộ"), ("ơ", "ờớởỡợ"), ("u", "uùúủũụ"),
                                         ("ư", "ừứửữự"), ("y", "yỳýỷỹỵ")]
        for (base, forms) in vowels {
            let plain = String(base.decomposedStringWithCanonicalMapping.unicodeScalars.first!)
            for f in forms.map(String.init) + [base] {
                for form in [f, f.decomposedStringWithCanonicalMapping, f.uppercased(), f.uppercased().decomposedStringWithCanonicalMapping] {
                    let t = SMSText.transliterateVietnamese(form)
                    #expect(t.lowercased() == plain, "\(form) → \(t)")
                }
            }
        }
        #expect(SMSText.transliterateVietnamese("đường Đồng Khởi") == "duong Dong Khoi")
        let p = SMSText.prepare("Góp ý dự thảo “VNeID” – đăng nhập…", policy: .ascii)
        #expect(p.text == "Gop y du thao \"VNeID\" - dang nhap...")
        #expect(p.info.encoding == .gsm7)
    }

    /// Property: for random texts, the counted parts equal the parts the splitter makes, and they rejoin.
    @Test func countMatchesSplit() {
        var rng = SplitMix(seed: 7)
        let alphabet = Array("abcXYZ 0189@€{}[]~^|\\ệằđĐ😀🇻🇳\n")
        for _ in 0..<3000 {
            let len = Int(rng.next() % 420)
            var s = ""
            for _ in 0..<len { s.append(alphabet[Int(rng.next() % UInt64(alphabet.count))]) }
            let info = SMSText.analyze(s)
            let parts = SMSText.split(s, encoding: info.encoding)
            #expect(parts.count == info.segments, "\(s.debugDescription)")
            #expect(parts.joined() == s)
            let cap = info.encoding == .gsm7 ? 160 : 70
            if parts.count > 1 {
                for p in parts { #expect(SMSText.analyze(p).units <= (info.encoding == .gsm7 ? 153 : 67) || SMSText.analyze(p).encoding != info.encoding) }
            } else {
                #expect(info.units <= cap)
            }
        }
    }
}

@Suite struct TemplateTests {
    @Test func rendersWithDefaultsAndNFC() throws {
        let t = try Template(name: "t", source: "Kính gửi {{ Name | Quý cư dân }} ({{ward}})\n")
        #expect(t.placeholders == [Placeholder(name: "name", defaultValue: "Quý cư dân"), Placeholder(name: "ward", defaultValue: nil)])
        let values = ["name": "Nguyễn Văn An".decomposedStringWithCanonicalMapping, "ward": "Bến Nghé"]
        let out = try t.render { values[$0] }
        #expect(out == "Kính gửi Nguyễn Văn An (Bến Nghé)")
        #expect(out.unicodeScalars.elementsEqual(out.precomposedStringWithCanonicalMapping.unicodeScalars))
        #expect(try t.render { $0 == "ward" ? "X" : "  " } == "Kính gửi Quý cư dân (X)")
        #expect(throws: TemplateError.missingValue(name: "ward")) { try t.render { _ in nil } }
    }

    @Test func syntaxErrorsAreLocated() {
        #expect(throws: TemplateError(message: "unclosed '{{' (a placeholder is {{column}} or {{column|default}})", line: 2, column: 4)) {
            try Template(name: "t", source: "ok\nab {{name\n")
        }
        #expect(throws: TemplateError(message: "empty placeholder name", line: 1, column: 1)) { try Template(name: "t", source: "{{ |x}}") }
        #expect(throws: TemplateError(message: "'}}' without an opening '{{'", line: 1, column: 3)) { try Template(name: "t", source: "ab}}") }
    }
}

@Suite struct CSVTests {
    static let sample = "\u{FEFF}phone,name,note\r\n0912345678,\"Nguyễn, An\",\"line1\nline2\"\r\n\"+84 91\"\"x\",B,\r\n\r\nlast,row,no-newline"

    func parse(_ bytes: [UInt8], chunk: Int, max: Int = 64 * 1024) -> [CSVRow] {
        var p = CSVPushParser(maxRecordBytes: max)
        var rows: [CSVRow] = []
        var i = 0
        while i < bytes.count {
            let end = min(bytes.count, i + chunk)
            bytes[i..<end].withUnsafeBytes { p.feed($0) { rows.append($0) } }
            i = end
        }
        p.finish { rows.append($0) }
        return rows
    }

    @Test func rfc4180() {
        let rows = parse(Array(Self.sample.utf8), chunk: 1 << 20)
        #expect(rows == [
            .record(line: 1, fields: ["phone", "name", "note"]),
            .record(line: 2, fields: ["0912345678", "Nguyễn, An", "line1\nline2"]),
            .record(line: 4, fields: ["+84 91\"x", "B", ""]),
            .record(line: 6, fields: ["last", "row", "no-newline"]),
        ])
    }

    @Test func badRowsAreReportedAndTheRestKept() {
        var bytes = Array("a,b\n1,2\n".utf8) + [0xC3, 0x28, 0x2C, 0x31, 0x0A] + Array("3,4\n\"open,5\n".utf8)
        let rows = parse(bytes, chunk: 3)
        #expect(rows == [
            .record(line: 1, fields: ["a", "b"]), .record(line: 2, fields: ["1", "2"]),
            .malformed(line: 3, reason: "invalid UTF-8 in field 1", fields: ["\u{FFFD}(", "1"], badField: 0), .record(line: 4, fields: ["3", "4"]),
            .malformed(line: 5, reason: "unterminated quoted field"),
        ])
        bytes = Array("a\n\(String(repeating: "x", count: 100))\nb\n".utf8)
        #expect(parse(bytes, chunk: 7, max: 50) == [
            .record(line: 1, fields: ["a"]), .malformed(line: 2, reason: "record longer than 50 bytes"), .record(line: 3, fields: ["b"]),
        ])
    }

    /// Property: any chunking gives the same rows as one chunk.
    @Test func chunkBoundariesDoNotMatter() {
        let bytes = Array(Self.sample.utf8)
        let whole = parse(bytes, chunk: bytes.count)
        for chunk in 1...17 { #expect(parse(bytes, chunk: chunk) == whole, "chunk \(chunk)") }
        var rng = SplitMix(seed: 3)
        for _ in 0..<200 { #expect(parse(bytes, chunk: Int(rng.next() % 40) + 1) == whole) }
    }

    @Test func headerLookup() {
        let h = CSVHeader(fields: [" Phone ", "Ward", "ward"])
        #expect(h.index(of: "phone") == 0 && h.index(of: "WARD") == 1 && h.index(of: "x") == nil)
    }
}

@Suite struct RoutingTests {
    func number(_ s: String) -> PhoneNumber { try! PhoneNormalizer.normalize(s).get() }

    @Test func prefixThenPortedThenNetworkThenDefault() {
        let (ported, problems) = Router.readPorted("# ported\n0961234567, mobifone\n+84 91 234 5678,VINAPHONE\nbad line\n0961234568,orange\n")
        #expect(ported == ["+84961234567": .mobifone, "+84912345678": .vinaphone])
        #expect(problems.map(\.line) == [4, 5])
        let r = Router(defaultCarrier: "agg", prefixes: ["84961": "pinned"], networks: [.mobifone: "mobi-link", .viettel: "viettel-link"], ported: ported)
        #expect(r.route(number("0961234567")) == "pinned")         // an explicit prefix rule wins
        #expect(r.route(number("0971234567")) == "viettel-link")   // network by prefix
        #expect(r.route(number("0911111111")) == "agg")            // vinaphone has no link: default
        let r2 = Router(defaultCarrier: "agg", networks: [.mobifone: "mobi-link", .viettel: "viettel-link"], ported: ported)
        #expect(r2.route(number("0961234567")) == "mobi-link")     // ported from Viettel to MobiFone
        #expect(r2.network(of: number("0961234567")) == .mobifone)
    }

    /// Issue 16: a ported-numbers file exported with a header (`phone,carrier`), as every segment file has,
    /// was refused with "unknown network 'carrier'". A header is taken only as the first line.
    @Test func portedFileMayHaveAHeaderLine() {
        let (ported, problems) = Router.readPorted("\u{FEFF}phone,carrier\r\n0961234567,mobifone\r\n0912345678,vinaphone\r\n")
        #expect(problems.isEmpty)
        #expect(ported == ["+84961234567": .mobifone, "+84912345678": .vinaphone])
        let (_, afterComment) = Router.readPorted("# exported 2026-11-30\nnumber , network\n0961234567,mobifone\n")
        #expect(afterComment.isEmpty)
        // Only the first line may be a header: the same words further down are a bad row.
        let (kept, late) = Router.readPorted("0961234567,mobifone\nphone,carrier\n")
        #expect(kept == ["+84961234567": .mobifone])
        #expect(late.map(\.line) == [2])
    }

    @Test func templateWeightsSpreadStablyByHash() throws {
        let templates = try ["a", "b", "c"].map { try Template(name: $0, source: $0) }
        let b = try RecipientBuilder(campaignID: "c", templates: templates, weights: [1, 2, 1], header: CSVHeader(fields: ["phone"]),
                                     phoneColumn: "phone", policy: .auto, maxSegments: nil, allowedCountryCodes: [], router: Router(defaultCarrier: "k"))
        var counts = [0, 0, 0]
        for i in 0..<20_000 {
            let e164 = "+8491\(String(format: "%07d", i * 13))"
            let t = b.templateIndex(for: e164)
            #expect(t == b.templateIndex(for: e164))
            counts[t] += 1
        }
        #expect(abs(counts[0] - 5000) < 400 && abs(counts[1] - 10000) < 400 && abs(counts[2] - 5000) < 400, "\(counts)")
        let built = try b.build(fields: ["0912345678"]).get()
        #expect(built.text == ["a", "b", "c"][b.templateIndex(for: "+84912345678")])
    }

    @Test func headerProblemsNameTheColumn() {
        #expect(throws: RecipientBuilder.HeaderProblems.self) {
            try RecipientBuilder(campaignID: "c", templates: [try Template(name: "t", source: "{{ward}}")], header: CSVHeader(fields: ["phone"]),
                                 phoneColumn: "sdt", policy: .auto, maxSegments: nil, allowedCountryCodes: [], router: Router(defaultCarrier: "k"))
        }
    }
}

@Suite struct TrimTests {
    @Test func trimsUnicodeWhitespaceAndKeepsEverythingElse() {
        let cases: [(String, String)] = [
            ("0: Accepted for delivery", "0: Accepted for delivery"),  // the fast path
            ("  Phường 4 \t", "Phường 4"),
            ("\u{00A0}Hà Nội\u{3000}", "Hà Nội"),                     // no-break and ideographic spaces
            ("\r\nx\r\n", "x"),
            ("a\u{0301}", "a\u{0301}"),                                // a base letter with a combining mark
            ("é ", "é"),
            (" ", ""), ("", ""), ("\n\n", ""),
        ]
        for (input, expected) in cases {
            #expect(input.trimmingSpaces() == expected, "\(input.debugDescription)")
            #expect(input.trimmingSpaces() == input.trimmingCharacters(in: .whitespacesAndNewlines), "\(input.debugDescription)")
            #expect(input[...].trimmingSpaces() == expected)
        }
    }
}
