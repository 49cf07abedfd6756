import LoaCore

/// A JSON value: config templates (decoded from the config file) and gateway answers (parsed by ``JSONValue/parse(_:maxDepth:)``).
///
/// Numbers keep their literal text, so a gateway id such as `123456789012345678` is never rounded through
/// `Double` and `"100"` and `100` compare equal as ``scalarText``. Object members keep the order of the
/// text they were parsed from.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number as written (`100`, `-1.5e3`).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.number(let x), .number(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    /// Strings as themselves, numbers as written, booleans as `true`/`false`; nil for null, arrays and objects.
    public var scalarText: String? {
        switch self {
        case .string(let s): s
        case .number(let n): n
        case .bool(let b): b ? "true" : "false"
        case .null, .array, .object: nil
        }
    }

    /// The member called `key` of an object (the first one, if repeated).
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members.first { $0.0 == key }?.1 }
        return nil
    }
}

extension JSONValue: Decodable {
    /// Decodes any JSON value. Object members come out sorted by key: Foundation's decoder does not keep the
    /// file's order, and sorting keeps rendered bodies identical from run to run.
    public init(from decoder: any Decoder) throws {
        if let c = try? decoder.container(keyedBy: AnyKey.self) {
            var members: [(String, JSONValue)] = []
            for key in c.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
                members.append((key.stringValue, try c.decode(JSONValue.self, forKey: key)))
            }
            self = .object(members)
            return
        }
        if var c = try? decoder.unkeyedContainer() {
            var items: [JSONValue] = []
            while !c.isAtEnd { items.append(try c.decode(JSONValue.self)) }
            self = .array(items)
            return
        }
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .number(String(i)) }
        else if let d = try? c.decode(Double.self) { self = .number(d.isFinite ? "\(d)" : "null") }
        else { self = .string(try c.decode(String.self)) }
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

// MARK: - Parsing

extension JSONValue {
    /// Parses `bytes` as one JSON text (RFC 8259). Returns nil for anything that is not valid JSON or nests
    /// deeper than `maxDepth`; never traps, whatever the input.
    /// The dotted path of the first key an object of `value` gives twice (`max_rate`, `templates.0.weight`), or nil.
    /// Foundation's decoder keeps one of the two without a word; a request that says two things is refused instead.
    public static func firstDuplicateKey(_ value: JSONValue, path: String = "") -> String? {
        func at(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
        switch value {
        case .object(let members):
            var seen = Set<String>()
            for (key, _) in members where !seen.insert(key).inserted { return at(key) }
            for (key, member) in members {
                if let d = firstDuplicateKey(member, path: at(key)) { return d }
            }
        case .array(let items):
            for (i, item) in items.enumerated() {
                if let d = firstDuplicateKey(item, path: at(String(i))) { return d }
            }
        default:
            break
        }
        return nil
    }

    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64) -> JSONValue? {
        bytes.withUnsafeBufferPointer { buf in
            var p = JSONParser(buf: buf, maxDepth: maxDepth)
            p.skipSpace()
            guard let v = p.value(depth: 0) else { return nil }
            p.skipSpace()
            return p.i == buf.count ? v : nil
        }
    }
}

private struct JSONParser {
    let buf: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    var i = 0

    init(buf: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.buf = buf
        self.maxDepth = maxDepth
    }

    mutating func skipSpace() {
        while i < buf.count, buf[i] == 0x20 || buf[i] == 0x0A || buf[i] == 0x0D || buf[i] == 0x09 { i += 1 }
    }

    mutating func literal(_ word: StaticString, _ v: JSONValue) -> JSONValue? {
        let n = word.utf8CodeUnitCount
        guard i + n <= buf.count else { return nil }
        let w = UnsafeBufferPointer(start: word.utf8Start, count: n)
        for k in 0..<n where buf[i + k] != w[k] { return nil }
        i += n
        return v
    }

    mutating func value(depth: Int) -> JSONValue? {
        guard i < buf.count, depth <= maxDepth else { return nil }
        switch buf[i] {
        case UInt8(ascii: "{"):
            i += 1
            var members: [(String, JSONValue)] = []
            skipSpace()
            if i < buf.count, buf[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                guard i < buf.count, buf[i] == UInt8(ascii: "\""), let key = string() else { return nil }
                skipSpace()
                guard i < buf.count, buf[i] == UInt8(ascii: ":") else { return nil }
                i += 1
                skipSpace()
                guard let v = value(depth: depth + 1) else { return nil }
                members.append((key, v))
                skipSpace()
                guard i < buf.count else { return nil }
                if buf[i] == UInt8(ascii: ",") { i += 1; continue }
                if buf[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                return nil
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [JSONValue] = []
            skipSpace()
            if i < buf.count, buf[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                skipSpace()
                guard let v = value(depth: depth + 1) else { return nil }
                items.append(v)
                skipSpace()
                guard i < buf.count else { return nil }
                if buf[i] == UInt8(ascii: ",") { i += 1; continue }
                if buf[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                return nil
            }
        case UInt8(ascii: "\""):
            return string().map(JSONValue.string)
        case UInt8(ascii: "t"): return literal("true", .bool(true))
        case UInt8(ascii: "f"): return literal("false", .bool(false))
        case UInt8(ascii: "n"): return literal("null", .null)
        default: return number()
        }
    }

    mutating func number() -> JSONValue? {
        let start = i
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        if i < buf.count, buf[i] == UInt8(ascii: "-") { i += 1 }
        let intStart = i
        while i < buf.count, isDigit(buf[i]) { i += 1 }
        guard i > intStart else { return nil }
        if i < buf.count, buf[i] == UInt8(ascii: ".") {
            i += 1
            let f = i
            while i < buf.count, isDigit(buf[i]) { i += 1 }
            guard i > f else { return nil }
        }
        if i < buf.count, buf[i] == UInt8(ascii: "e") || buf[i] == UInt8(ascii: "E") {
            i += 1
            if i < buf.count, buf[i] == UInt8(ascii: "+") || buf[i] == UInt8(ascii: "-") { i += 1 }
            let e = i
            while i < buf.count, isDigit(buf[i]) { i += 1 }
            guard i > e else { return nil }
        }
        return .number(String(decoding: UnsafeBufferPointer(rebasing: buf[start..<i]), as: UTF8.self))
    }

    /// A string starting at the opening quote; invalid UTF-8 and lone surrogates become U+FFFD.
    mutating func string() -> String? {
        i += 1
        var out: [UInt8] = []
        var escaped = false
        var runStart = i
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= buf.count else { return nil }
            var v: UInt32 = 0
            for k in at..<at + 4 {
                let b = buf[k]
                let d: UInt32
                switch b {
                case 0x30...0x39: d = UInt32(b - 0x30)
                case 0x41...0x46: d = UInt32(b - 0x41 + 10)
                case 0x61...0x66: d = UInt32(b - 0x61 + 10)
                default: return nil
                }
                v = v << 4 | d
            }
            return v
        }
        while i < buf.count {
            let b = buf[i]
            if b == UInt8(ascii: "\"") {
                defer { i += 1 }
                // Without escapes the string is made from the text itself: no buffer of its own (an allocation
                // per string, and most strings of a gateway's answer are short enough to be stored inline).
                guard escaped else { return String(decoding: UnsafeBufferPointer(rebasing: buf[runStart..<i]), as: UTF8.self) }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[runStart..<i]))
                return String(decoding: out, as: UTF8.self)
            }
            if b < 0x20 { return nil }
            if b != UInt8(ascii: "\\") { i += 1; continue }
            escaped = true
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[runStart..<i]))
            guard i + 1 < buf.count else { return nil }
            let e = buf[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard var scalar = hex4(i) else { return nil }
                i += 4
                if scalar >= 0xD800, scalar < 0xDC00, i + 6 <= buf.count, buf[i] == UInt8(ascii: "\\"), buf[i + 1] == UInt8(ascii: "u"),
                   let low = hex4(i + 2), low >= 0xDC00, low < 0xE000 {
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                }
                out.append(contentsOf: String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8)
            default: return nil
            }
            runStart = i
        }
        return nil
    }
}

// MARK: - JSON pointers

/// An RFC 6901 JSON pointer (`/data/tranId`, `/results/0/id`; `~1` is `/`, `~0` is `~`; `""` is the whole document).
public struct JSONPointer: Sendable, Equatable, CustomStringConvertible {
    public let tokens: [String]
    public let description: String

    /// Nil when `text` is neither empty nor starts with `/`, or holds a `~` not followed by `0` or `1`.
    public init?(_ text: String) {
        description = text
        if text.isEmpty { tokens = []; return }
        guard text.hasPrefix("/") else { return nil }
        var out: [String] = []
        for raw in text.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            var token = ""
            var it = raw.makeIterator()
            while let c = it.next() {
                if c == "~" {
                    switch it.next() {
                    case "0": token.append("~")
                    case "1": token.append("/")
                    default: return nil
                    }
                } else {
                    token.append(c)
                }
            }
            out.append(token)
        }
        tokens = out
    }

    /// The value the pointer names in `root`, or nil when a member or index is missing.
    public func resolve(_ root: JSONValue) -> JSONValue? {
        var v = root
        for t in tokens {
            switch v {
            case .object(let members):
                guard let next = members.first(where: { $0.0 == t })?.1 else { return nil }
                v = next
            case .array(let items):
                guard let n = Int(t), n >= 0, n < items.count, t == String(n) else { return nil }
                v = items[n]
            default: return nil
            }
        }
        return v
    }
}

extension JSONValue {
    /// JSON text for the value (numbers as written, members in their order, strings escaped as RFC 8259 requires).
    public var jsonText: String {
        var out = ""
        JSONValue.write(self, to: &out)
        return out
    }

    private static func write(_ value: JSONValue, to out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n
        case .string(let s): out += JSONText.quoted(s)
        case .array(let items):
            out += "["
            for (i, x) in items.enumerated() {
                if i > 0 { out += "," }
                write(x, to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, (k, x)) in members.enumerated() {
                if i > 0 { out += "," }
                out += JSONText.quoted(k)
                out += ":"
                write(x, to: &out)
            }
            out += "}"
        }
    }

}
