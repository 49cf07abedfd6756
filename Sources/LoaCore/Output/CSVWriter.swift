/// Writes CSV fields for the files Loa exports (`campaign rejects --csv`, `report --csv`).
///
/// Two rules, applied in this order to every field:
///
/// 1. **Formula neutralization** (OWASP "CSV Injection"): a spreadsheet runs a cell that begins with `=`, `+`,
///    `-`, `@`, TAB or CR as a formula, so such a cell gets a leading apostrophe `'`. A cell that already begins
///    with `'` gets one too, so the raw value is always recovered by one rule: **drop one leading apostrophe
///    when the cell begins with one**. A plain number (an optional `+` or `-`, then ASCII digits only, such as
///    the E.164 phone `+84912345678` or `-5`) cannot be a formula and is written as it is.
/// 2. **RFC 4180 quoting**: a field holding `,`, `"`, CR, LF or any other control character is enclosed in
///    double quotes, with each `"` doubled. The test runs over Unicode scalars, not `Character`s: in Swift
///    `"\r\n"` is one `Character`, equal to neither `"\r"` nor `"\n"`, so a `Character` test misses it.
///
/// | raw | written |
/// |---|---|
/// | `Nguyễn An` | `Nguyễn An` |
/// | `a,b` | `"a,b"` |
/// | `x\r\ny` | `"x\r\ny"` |
/// | `=HYPERLINK("http://x")` | `"'=HYPERLINK(""http://x"")"` |
/// | `'quoted` | `''quoted` |
/// | `+84912345678` | `+84912345678` |
/// | `+1+1` | `'+1+1` |
public enum CSVWriter {
    /// One field, neutralized and quoted as the rules above say.
    public static func field(_ raw: String) -> String {
        let s = needsApostrophe(raw) ? "'" + raw : raw
        guard needsQuotes(s) else { return s }
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for u in s.unicodeScalars {
            if u == "\"" { out += "\"\"" } else { out.unicodeScalars.append(u) }
        }
        return out + "\""
    }

    /// One record: the fields joined by commas, ended by `\n` (Loa's exports use LF line ends).
    public static func record(_ fields: [String]) -> String {
        fields.map(field).joined(separator: ",") + "\n"
    }

    /// The raw value of a field as ``field(_:)`` wrote it, after the CSV reader has removed the quoting.
    public static func recover(_ cell: String) -> String {
        cell.unicodeScalars.first == "'" ? String(cell.unicodeScalars.dropFirst()) : cell
    }

    /// True when a spreadsheet could read `s` as a formula, or when `s` begins with the apostrophe that marks one.
    static func needsApostrophe(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first else { return false }
        switch first {
        case "'": return true
        case "=", "@", "\t", "\r": return true
        case "+", "-": return !isPlainNumber(s)
        default: return false
        }
    }

    /// An optional sign and then one or more ASCII digits, nothing else.
    static func isPlainNumber(_ s: String) -> Bool {
        var digits = s.utf8.dropFirst(0)
        if let f = digits.first, f == UInt8(ascii: "+") || f == UInt8(ascii: "-") { digits = digits.dropFirst() }
        return !digits.isEmpty && digits.allSatisfy { (0x30...0x39).contains($0) }
    }

    static func needsQuotes(_ s: String) -> Bool {
        s.utf8.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 < 0x20 || $0 == 0x7F }
            || s.unicodeScalars.contains { (0x80...0x9F).contains($0.value) }
    }
}
