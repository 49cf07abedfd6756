/// `application/x-www-form-urlencoded` bodies (WHATWG URL standard): `name=value` pairs joined by `&`,
/// `+` for space, `%XX` escapes. Invalid escapes are kept as written; invalid UTF-8 is replaced.
public enum FormURLEncoded {
    /// The pairs in order (repeats kept).
    public static func parse(_ bytes: [UInt8]) -> [(String, String)] {
        var out: [(String, String)] = []
        for part in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let eq = part.firstIndex(of: UInt8(ascii: "="))
            let name = decode(eq.map { part[part.startIndex..<$0] } ?? part[...])
            let value = eq.map { decode(part[part.index(after: $0)...]) } ?? ""
            out.append((name, value))
        }
        return out
    }

    static func decode(_ s: ArraySlice<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = s.startIndex
        func hex(_ b: UInt8) -> UInt8? {
            switch b {
            case 0x30...0x39: b - 0x30
            case 0x41...0x46: b - 0x41 + 10
            case 0x61...0x66: b - 0x61 + 10
            default: nil
            }
        }
        while i < s.endIndex {
            let b = s[i]
            if b == UInt8(ascii: "+") {
                out.append(0x20)
            } else if b == UInt8(ascii: "%"), i + 2 < s.endIndex, let h = hex(s[i + 1]), let l = hex(s[i + 2]) {
                out.append(h << 4 | l)
                i += 2
            } else {
                out.append(b)
            }
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
