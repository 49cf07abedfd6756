import Foundation

/// The data coding of a message on the air.
public enum SMSEncoding: String, Sendable, Codable {
    /// GSM 03.38 default alphabet, 7 bits a character (extension characters take two).
    case gsm7
    /// UCS-2 / UTF-16, 16 bits a unit.
    case ucs2
}

/// A campaign's choice of encoding.
public enum EncodingPolicy: String, Sendable, Codable {
    /// GSM-7 when every character fits, else UCS-2.
    case auto
    /// Always UCS-2 (keeps Vietnamese diacritics).
    case unicode
    /// Vietnamese transliterated to unaccented letters ("không dấu"), then GSM-7 if it fits.
    case ascii
}

/// What a text costs on the air.
public struct SegmentInfo: Sendable, Equatable {
    public var encoding: SMSEncoding
    /// Septets for GSM-7 (extension characters count 2), UTF-16 code units for UCS-2.
    public var units: Int
    /// SMS parts.
    public var segments: Int
    /// Capacity of one part in `units`: 160 or 153 (GSM-7), 70 or 67 (UCS-2).
    public var charactersPerSegment: Int

    public init(encoding: SMSEncoding, units: Int, segments: Int, charactersPerSegment: Int) {
        self.encoding = encoding
        self.units = units
        self.segments = segments
        self.charactersPerSegment = charactersPerSegment
    }
}

/// Encoding choice, segment counting and splitting (3GPP TS 23.038 alphabet, TS 23.040 concatenation).
///
/// A single SMS carries 140 octets: 160 GSM-7 septets or 70 UCS-2 units. A concatenated message spends
/// 6 octets of each part on the user-data header, leaving 153 septets or 67 units a part. An extension
/// character (escape + code) is never split from its escape, and a UTF-16 surrogate pair never split in two,
/// so a part may carry one unit less than its capacity; counting is therefore done by the same greedy cut
/// the splitter makes, and ``analyze(_:)`` always agrees with ``split(_:encoding:)``.
///
/// | text | encoding | units | parts |
/// |---|---|---|---|
/// | 160 × `a` | gsm7 | 160 | 1 |
/// | 161 × `a` | gsm7 | 161 | 2 (153 + 8) |
/// | 306 × `a` | gsm7 | 306 | 2 |
/// | 307 × `a` | gsm7 | 307 | 3 |
/// | 152 × `a` + `€` + 7 × `b` | gsm7 | 161 | 2 (152; `€` moves whole to part 2) |
/// | 80 × `€` | gsm7 | 160 | 1 |
/// | 70 × `ệ` (NFC) | ucs2 | 70 | 1 |
/// | 71 × `ệ` (NFC) | ucs2 | 71 | 2 (67 + 4) |
/// | 66 × `a` + `😀` + 5 × `z` | ucs2 | 73 | 2 (66; the pair does not fit in unit 67, it opens part 2) |
/// | empty | gsm7 | 0 | 1 |
public enum SMSText {
    public static func analyze(_ text: String) -> SegmentInfo {
        count(text, gsm: true) ?? count(text, gsm: false)!
    }

    /// NFC, skipping Foundation's normalizer (the costliest step of ingest) when no scalar could change:
    /// Latin, Vietnamese precomposed letters, general punctuation, currency signs and emoji are NFC-stable
    /// on their own and never compose with a neighbour from those ranges.
    public static func nfc(_ text: String) -> String {
        for s in text.unicodeScalars {
            switch s.value {
            case 0...0x2FF, 0x1EA0...0x1EF9, 0x2002...0x206F, 0x20A0...0x20CF, 0x1F300...0x1FAFF: continue
            default: return text.precomposedStringWithCanonicalMapping
            }
        }
        return text
    }

    /// Applies a campaign's policy: returns the text as it will be sent and its cost.
    public static func prepare(_ text: String, policy: EncodingPolicy) -> (text: String, info: SegmentInfo) {
        switch policy {
        case .auto:
            let t = nfc(text)
            return (t, analyze(t))
        case .unicode:
            let t = nfc(text)
            return (t, count(t, gsm: false)!)
        case .ascii:
            let t = transliterateVietnamese(text)
            return (t, analyze(t))
        }
    }

    /// The parts a concatenating SMSC sends, in order; joined they give back the text.
    public static func split(_ text: String, encoding: SMSEncoding) -> [String] {
        let scalars = Array(text.unicodeScalars)
        let costs: [Int]
        switch encoding {
        case .gsm7: costs = scalars.map { GSM7.cost($0) ?? 1 }
        case .ucs2: costs = scalars.map { $0.value > 0xFFFF ? 2 : 1 }
        }
        let total = costs.reduce(0, +)
        let single = encoding == .gsm7 ? 160 : 70
        if total <= single { return [text] }
        let capacity = encoding == .gsm7 ? 153 : 67
        var parts: [String] = []
        var current = String.UnicodeScalarView()
        var used = 0
        for (s, c) in zip(scalars, costs) {
            if used + c > capacity {
                parts.append(String(current))
                current = String.UnicodeScalarView()
                used = 0
            }
            current.append(s)
            used += c
        }
        parts.append(String(current))
        return parts
    }

    /// Vietnamese without diacritics ("không dấu"): every tone and vowel mark removed in NFC or NFD input,
    /// `đ`→`d`, `Đ`→`D`, and typographic punctuation made plain, so the text fits GSM-7.
    public static func transliterateVietnamese(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for s in text.decomposedStringWithCanonicalMapping.unicodeScalars {
            switch s.value {
            case 0x0300...0x036F: continue  // combining marks: grave, acute, tilde, hook, dot below, circumflex, breve, horn
            case 0x0111: out.append("d")
            case 0x0110: out.append("D")
            case 0x2018, 0x2019, 0x201B: out.append("'")
            case 0x201C, 0x201D, 0x201F: out.append("\"")
            case 0x2013, 0x2014: out.append("-")
            case 0x2026: out.append(contentsOf: "...".unicodeScalars)
            case 0x00A0: out.append(" ")
            default: out.append(s)
            }
        }
        return String(out).precomposedStringWithCanonicalMapping
    }

    // MARK: - Counting

    /// Counts units and parts in one pass, cutting parts greedily exactly as ``split(_:encoding:)`` does.
    /// With `gsm`, returns nil as soon as a character is outside GSM 03.38.
    private static func count(_ text: String, gsm: Bool) -> SegmentInfo? {
        let single = gsm ? 160 : 70
        let capacity = gsm ? 153 : 67
        var units = 0
        var parts = 1
        var used = 0
        for s in text.unicodeScalars {
            let c: Int
            if gsm {
                guard let g = GSM7.cost(s) else { return nil }
                c = g
            } else {
                c = s.value > 0xFFFF ? 2 : 1
            }
            units += c
            if used + c > capacity { parts += 1; used = 0 }
            used += c
        }
        if units <= single { return SegmentInfo(encoding: gsm ? .gsm7 : .ucs2, units: units, segments: 1, charactersPerSegment: single) }
        return SegmentInfo(encoding: gsm ? .gsm7 : .ucs2, units: units, segments: parts, charactersPerSegment: capacity)
    }
}

/// The GSM 03.38 default alphabet and its extension table.
public enum GSM7 {
    /// The 128 characters of the basic table (0x1B, the escape, excluded).
    static let basic: Set<UInt32> = {
        let chars: [UInt32] = [
            0x40, 0xA3, 0x24, 0xA5, 0xE8, 0xE9, 0xF9, 0xEC, 0xF2, 0xC7, 0x0A, 0xD8, 0xF8, 0x0D, 0xC5, 0xE5,
            0x394, 0x5F, 0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, 0xC6, 0xE6, 0xDF, 0xC9,
            0x20, 0x21, 0x22, 0x23, 0xA4, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E, 0x2F,
            0xA1, 0xC4, 0xD6, 0xD1, 0xDC, 0xA7, 0xBF, 0xE4, 0xF6, 0xF1, 0xFC, 0xE0,
        ]
        var set = Set(chars)
        for c in UInt32(0x30)...0x39 { set.insert(c) }      // 0-9
        for c in UInt32(0x3A)...0x3F { set.insert(c) }      // : ; < = > ?
        for c in UInt32(0x41)...0x5A { set.insert(c) }      // A-Z
        for c in UInt32(0x61)...0x7A { set.insert(c) }      // a-z
        return set
    }()

    /// Extension-table characters: each costs an escape plus its code.
    static let extended: Set<UInt32> = [0x0C, 0x5E, 0x7B, 0x7D, 0x5C, 0x5B, 0x7E, 0x5D, 0x7C, 0x20AC]

    /// Costs of the scalars below 256 (0 = not in GSM 03.38), so the common case is one array load.
    private static let latin: [UInt8] = (0..<256).map { v in
        basic.contains(UInt32(v)) ? 1 : (extended.contains(UInt32(v)) ? 2 : 0)
    }

    /// 1 for a basic character, 2 for an extension character, nil if not in GSM 03.38.
    @inline(__always)
    public static func cost(_ s: Unicode.Scalar) -> Int? {
        let v = s.value
        if v < 256 {
            let c = latin[Int(v)]
            return c == 0 ? nil : Int(c)
        }
        if basic.contains(v) { return 1 }
        if v == 0x20AC { return 2 }
        return nil
    }
}
