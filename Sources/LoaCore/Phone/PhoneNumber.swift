/// A Vietnamese mobile network, as the numbering plan assigns prefixes (a default only: numbers can be ported).
public enum Carrier: String, Sendable, Codable, CaseIterable {
    case viettel, mobifone, vinaphone, vietnamobile, gmobile, itelecom, reddi, unknown
}

/// A normalized, validated mobile number.
public struct PhoneNumber: Hashable, Sendable {
    /// `+84912345678`.
    public let e164: String
    /// The national significant number: 9 digits for Vietnamese mobiles (`912345678`).
    public var nationalSignificant: String
    /// `84` for Vietnam.
    public var countryCode: String
    /// The network the prefix belongs to (``Carrier/unknown`` for other countries).
    public var defaultCarrier: Carrier

    /// `+8491****678`: enough to tell numbers apart in diagnostics without exposing them.
    public var masked: String { PhoneNumber.mask(e164) }

    /// Masks an E.164 string: the first four digits and the last three stay.
    public static func mask(_ e164: String) -> String {
        let digits = Array(e164.hasPrefix("+") ? e164.dropFirst() : Substring(e164))
        guard digits.count > 7 else { return "+" + String(repeating: "*", count: digits.count) }
        return "+" + String(digits.prefix(4)) + String(repeating: "*", count: digits.count - 7) + String(digits.suffix(3))
    }
}

/// Why a written number was refused. The message never contains the whole number.
public struct PhoneRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// `empty`, `invalid-characters`, `wrong-length`, `fixed-line`, `special-number`, `unallocated`,
    /// `legacy-unmapped` or `foreign-country`.
    public let code: String
    public let message: String
    public var description: String { "\(code): \(message)" }
}

/// Turns every way people write a Vietnamese mobile number into E.164, or says why it cannot.
///
/// Accepted forms (spaces, dots, dashes, slashes and parentheses anywhere; full-width digits too):
/// `0912 345 678`, `84912345678`, `+84 912 345 678`, `0084 912…`, `912345678`, and the pre-2018 11-digit
/// numbers (`0168 xxx xxxx` → `038 xxx xxxx`, also written `84168…`/`+84168…`), converted by the full table of
/// Decision 798/QĐ-BTTTT. The result is checked against libphonenumber's VN mobile pattern (2026):
/// fixed lines (`2…`), toll-free and premium (`1800`, `1900`), VSAT (`672`) and unallocated blocks are refused.
/// Works on UTF-8 bytes without regular expressions: it runs once per segment row, on millions of rows.
public enum PhoneNormalizer {
    /// Old 3-digit network code (after the trunk 0) → new 2-digit code; the last 7 digits stay.
    static let legacy: [String: String] = [
        "120": "70", "121": "79", "122": "77", "126": "76", "128": "78",           // MobiFone
        "123": "83", "124": "84", "125": "85", "127": "81", "129": "82",           // VinaPhone
        "162": "32", "163": "33", "164": "34", "165": "35", "166": "36",           // Viettel
        "167": "37", "168": "38", "169": "39",
        "186": "56", "188": "58",                                                   // Vietnamobile
        "199": "59",                                                                // Gmobile
    ]

    private static let p1800 = Array("1800".utf8), p1900 = Array("1900".utf8), p1228 = Array("1228".utf8), p672 = Array("672".utf8)

    public static func normalize(_ raw: String, allowedCountryCodes: Set<String> = []) -> Result<PhoneNumber, PhoneRejection> {
        var digits: [UInt8] = []
        digits.reserveCapacity(16)
        var plus = false
        var sawAny = false
        var scalars = raw.unicodeScalars.makeIterator()
        while let s = scalars.next() {
            let v = s.value
            switch v {
            case 0x30...0x39: digits.append(UInt8(v)); sawAny = true
            case 0xFF10...0xFF19: digits.append(UInt8(v - 0xFF10 + 0x30)); sawAny = true  // full-width digits
            case 0x2B, 0xFF0B:  // + (also full-width)
                if !digits.isEmpty { return .failure(reject("invalid-characters", "'+' after the first digit")) }
                plus = true
                sawAny = true
            case 0x20, 0x09, 0x2E, 0x2D, 0x28, 0x29, 0x2F, 0xA0, 0x2010...0x2015, 0x22, 0x27: continue  // separators, stray quotes
            default:
                return .failure(reject("invalid-characters", "contains '\(Character(s))'; a number may hold only digits, '+', spaces, '.', '-', '/' and parentheses"))
            }
        }
        guard sawAny, !digits.isEmpty else { return .failure(reject("empty", "no number in the cell")) }

        // International form: +CC… or 00CC…
        var international = plus
        if !plus && digits.count > 2 && digits[0] == 0x30 && digits[1] == 0x30 {
            international = true
            digits.removeFirst(2)
        }
        var nsn: ArraySlice<UInt8>
        if international {
            if digits.starts(with: [0x38, 0x34]) {  // 84
                nsn = digits[2...]
                // "+84 0912…": a trunk 0 written after the country code.
                if nsn.first == 0x30 { nsn = nsn.dropFirst() }
            } else {
                return foreign(digits, allowed: allowedCountryCodes)
            }
        } else if digits.first == 0x30 {
            nsn = digits.dropFirst()
        } else if digits.count >= 11 && digits.starts(with: [0x38, 0x34]) {  // 84912345678, 841632953760
            nsn = digits.dropFirst(2)
        } else {
            nsn = digits[...]
        }
        return vietnamese(Array(nsn))
    }

    private static func vietnamese(_ nsnIn: [UInt8]) -> Result<PhoneNumber, PhoneRejection> {
        var nsn = nsnIn
        let text = { (b: ArraySlice<UInt8>) in String(decoding: b, as: UTF8.self) }
        if nsn.count == 10 && nsn[0] == 0x31 {  // 1xy + 7 digits: a pre-2018 number
            let old = text(nsn[0..<3])
            if let new = legacy[old] {
                nsn = Array(new.utf8) + nsn[3...]
            } else if nsn.starts(with: p1800) || nsn.starts(with: p1900) {
                return .failure(reject("special-number", "toll-free or premium-rate number"))
            } else {
                return .failure(reject("legacy-unmapped", "old 11-digit number with network code 0\(old), which the 2018 conversion does not map"))
            }
        }
        if let first = nsn.first, first == 0x32 { return .failure(reject("fixed-line", "fixed-line number (area code 02x), not a mobile")) }
        if nsn.starts(with: p1800) || nsn.starts(with: p1900) || nsn.starts(with: p1228) {
            return .failure(reject("special-number", "toll-free or premium-rate number"))
        }
        if nsn.starts(with: p672) { return .failure(reject("special-number", "VSAT number, not a mobile")) }
        if nsn.count < 9 {
            // Too short. Only the 1… family (1800/1900 caught above, emergency and service numbers such as 113 or
            // 1080) is a service number; anything else short, such as 0364527, is a mobile number with digits missing.
            if nsn.first == 0x31 && nsn.count <= 6 { return .failure(reject("special-number", "service number (1…), not a subscriber number")) }
            return .failure(reject("wrong-length", "\(nsn.count + 1) digits in national form; mobiles have 10"))
        }
        if nsn.count > 9 { return .failure(reject("wrong-length", "\(nsn.count + 1) digits in national form; mobiles have 10")) }
        guard let carrier = mobileCarrier(nsn) else {
            return .failure(reject("unallocated", "prefix 0\(text(nsn[0..<3])) is not an allocated mobile range"))
        }
        let n = text(nsn[...])
        return .success(PhoneNumber(e164: "+84" + n, nationalSignificant: n, countryCode: "84", defaultCarrier: carrier))
    }

    /// libphonenumber's VN mobile pattern, as a prefix decision; nil when the 9-digit NSN is not mobile.
    ///
    /// `121[0-3]\d{5} | (160 | (3\d | 7[06-9])\d | 5([1689]\d | 2[238] | 59) | 8([1-8]\d | 9[6-9]) | 9([0-8]\d | 9[013-9]))\d{6}`
    static func mobileCarrier(_ n: [UInt8]) -> Carrier? {
        func d(_ i: Int) -> Int { Int(n[i]) - 48 }
        let a = d(0), b = d(1), c = d(2)
        switch a {
        case 1:
            if b == 2 && c == 1 && (0...3).contains(d(3)) { return .mobifone }
            if b == 6 && c == 0 { return .viettel }
            return nil
        case 3:
            switch b {
            case 0: return .mobifone
            case 1: return .unknown
            default: return .viettel
            }
        case 5:
            switch b {
            case 1: return .mobifone
            case 2: return [2, 3, 8].contains(c) ? .vietnamobile : nil
            case 5: return c == 9 ? .reddi : nil
            case 6, 8: return .vietnamobile
            case 9: return .gmobile
            default: return nil
            }
        case 7:
            return [0, 6, 7, 8, 9].contains(b) ? .mobifone : nil
        case 8:
            switch b {
            case 1, 2, 3, 4, 5, 8: return .vinaphone
            case 6: return .viettel
            case 7: return .itelecom
            case 9: return (6...9).contains(c) ? .mobifone : nil
            default: return nil
            }
        case 9:
            switch b {
            case 0, 3: return .mobifone
            case 1, 4: return .vinaphone
            case 2: return .vietnamobile
            case 5: return .unknown
            case 6, 7, 8: return .viettel
            case 9:
                switch c {
                case 0, 1: return .unknown
                case 3, 4, 5, 6, 7: return .gmobile
                case 8, 9: return .itelecom
                default: return nil  // 0992: ex-VSAT
                }
            default: return nil
            }
        default:
            return nil
        }
    }

    private static func foreign(_ digits: [UInt8], allowed: Set<String>) -> Result<PhoneNumber, PhoneRejection> {
        let all = String(decoding: digits, as: UTF8.self)
        guard let cc = (1...3).lazy.map({ String(all.prefix($0)) }).first(where: { allowed.contains($0) }) else {
            let shown = String(all.prefix(3))
            return .failure(reject("foreign-country", "country code +\(shown)… is not allowed for this campaign"))
        }
        guard (8...15).contains(digits.count) else {
            return .failure(reject("wrong-length", "international numbers have 8 to 15 digits"))
        }
        return .success(PhoneNumber(e164: "+" + all, nationalSignificant: String(all.dropFirst(cc.count)), countryCode: cc, defaultCarrier: .unknown))
    }

    private static func reject(_ code: String, _ message: String) -> PhoneRejection {
        PhoneRejection(code: code, message: message)
    }
}
