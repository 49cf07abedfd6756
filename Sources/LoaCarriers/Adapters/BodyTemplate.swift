import Foundation
import LoaCore

/// A per-message value a template can name (the `{{…}}` placeholders of ``GenericGatewaySpec``).
enum MessageField: Sendable, Equatable {
    case to, toDigits, toNational, from, text, id, receiptURL, unicode, coding, segments
    case encoding, validityMinutes, validitySeconds, validityMillis, deadlineISO, deadlineUnix

    static let byName: [String: MessageField] = [
        "to": .to, "to.digits": .toDigits, "to.national": .toNational, "from": .from, "text": .text, "id": .id,
        "receipt_url": .receiptURL, "unicode": .unicode, "coding": .coding, "segments": .segments,
        "encoding": .encoding, "validity.minutes": .validityMinutes, "validity.seconds": .validitySeconds,
        "validity.millis": .validityMillis,
        "deadline.iso": .deadlineISO, "deadline.unix": .deadlineUnix,
    ]

    /// Every value the field can take, when there are few (a conditional over them needs no `*`).
    var domain: [String]? {
        switch self {
        case .encoding: ["gsm7", "ucs2"]
        case .unicode: ["0", "1"]
        case .coding: ["0", "8"]
        default: nil
        }
    }

    /// Fields whose value is always a decimal integer (or empty: no deadline), so `|number` may write them bare.
    var isNumeric: Bool {
        switch self {
        case .id, .segments, .unicode, .coding, .validityMinutes, .validitySeconds, .validityMillis, .deadlineUnix: true
        default: false
        }
    }
}

/// `{{FIELD|VALUE=OUT|VALUE=OUT|*=DEFAULT}}`: the output chosen by the field's value (compared as rendered,
/// before escaping); `*` matches every other value.
struct TemplateChoice: Sendable, Equatable {
    struct Case: Sendable, Equatable {
        var value: String
        var output: String
    }
    var field: MessageField
    var cases: [Case]
    var fallback: String?
}

/// A template string split into literal text, message fields and secrets.
enum TemplateString {
    enum Part: Equatable {
        case literal(String)
        case field(MessageField)
        /// `{{FIELD|number}}`: in a JSON template whose string is exactly this placeholder, a bare JSON number.
        case number(MessageField)
        case choice(TemplateChoice)
        case secret(String)
        /// `{{name}}` that names nothing: kept as written (``GenericGatewaySpec/validate(secretNames:)`` reports it).
        case unknown(String)
    }

    /// What one `{{…}}` holds (its text between the braces, trimmed), or why it names nothing.
    static func placeholder(_ name: String) -> Result<Part, PlaceholderProblem> {
        if let f = MessageField.byName[name] { return .success(.field(f)) }
        if name.hasPrefix("secret."), name.count > 7 { return .success(.secret(String(name.dropFirst(7)))) }
        guard let bar = name.firstIndex(of: "|") else { return .failure(.unknown) }
        let fieldName = name[..<bar].trimmingCharacters(in: .whitespaces)
        guard let field = MessageField.byName[fieldName] else {
            return .failure(.other("unknown field '\(fieldName)' in {{\(name)}} (known: \(knownList))"))
        }
        let options = name[name.index(after: bar)...].split(separator: "|", omittingEmptySubsequences: false)
        if options.count == 1, options[0].trimmingCharacters(in: .whitespaces) == "number" {
            guard field.isNumeric else {
                return .failure(.other("{{\(name)}}: |number takes a numeric field (id, segments, unicode, coding, validity.minutes, validity.seconds, validity.millis, deadline.unix)"))
            }
            return .success(.number(field))
        }
        var choice = TemplateChoice(field: field, cases: [], fallback: nil)
        for o in options {
            guard let eq = o.firstIndex(of: "=") else {
                return .failure(.other("{{\(name)}}: '\(o)' is not VALUE=OUT (write {{FIELD|VALUE=OUT|*=DEFAULT}} or {{FIELD|number}})"))
            }
            let value = String(o[..<eq]), output = String(o[o.index(after: eq)...])
            if value == "*" {
                if choice.fallback != nil { return .failure(.other("{{\(name)}}: '*' given twice")) }
                choice.fallback = output
            } else {
                if choice.cases.contains(where: { $0.value == value }) { return .failure(.other("{{\(name)}}: value '\(value)' given twice")) }
                if let domain = field.domain, !domain.contains(value) {
                    return .failure(.other("{{\(name)}}: \(fieldName) is never '\(value)' (it is one of \(domain.joined(separator: ", ")))"))
                }
                choice.cases.append(.init(value: value, output: output))
            }
        }
        if choice.fallback == nil {
            if let domain = field.domain {
                let missing = domain.filter { v in !choice.cases.contains { $0.value == v } }
                if !missing.isEmpty {
                    return .failure(.other("{{\(name)}}: no output for \(fieldName) \(missing.joined(separator: ", ")) (add them or *=DEFAULT)"))
                }
            } else {
                return .failure(.other("{{\(name)}}: \(fieldName) can take any value: add *=DEFAULT"))
            }
        }
        return .success(.choice(choice))
    }

    enum PlaceholderProblem: Error { case unknown, other(String) }

    static var knownList: String { MessageField.byName.keys.sorted().joined(separator: " ") }

    static func parse(_ s: String) -> [Part] {
        var parts: [Part] = []
        var rest = Substring(s)
        var literal = ""
        while let open = rest.firstRange(of: "{{") {
            guard let close = rest[open.upperBound...].firstRange(of: "}}") else { break }
            literal += rest[..<open.lowerBound]
            let name = String(rest[open.upperBound..<close.lowerBound]).trimmingCharacters(in: .whitespaces)
            let part: Part
            switch placeholder(name) {
            case .success(let p): part = p
            case .failure: part = .unknown(String(rest[open.lowerBound..<close.upperBound]))
            }
            if case .unknown(let text) = part {
                literal += text
            } else {
                if !literal.isEmpty { parts.append(.literal(literal)); literal = "" }
                parts.append(part)
            }
            rest = rest[close.upperBound...]
        }
        literal += rest
        if !literal.isEmpty { parts.append(.literal(literal)) }
        return parts
    }

    /// The field of `{{FIELD|number}}` when `s` is exactly that placeholder.
    static func wholeNumber(_ s: String) -> MessageField? {
        let p = parse(s)
        if p.count == 1, case .number(let f) = p[0] { return f }
        return nil
    }

    /// Unknown placeholders, malformed conditionals, `|number` where it cannot make a number (`numberAllowed`:
    /// the string is a JSON template string), and secrets not in `secretNames` when it is given.
    static func problems(in s: String, secretNames: Set<String>?, numberAllowed: Bool = false) -> [String] {
        var out: [String] = []
        var rest = Substring(s)
        let whole = numberAllowed && wholeNumber(s) != nil
        while let open = rest.firstRange(of: "{{"), let close = rest[open.upperBound...].firstRange(of: "}}") {
            let name = String(rest[open.upperBound..<close.lowerBound]).trimmingCharacters(in: .whitespaces)
            switch placeholder(name) {
            case .success(.secret(let secret)):
                if let secretNames, !secretNames.contains(secret) { out.append("unknown secret '\(secret)' in {{\(name)}} (not in this carrier's secrets)") }
            case .success(.number):
                if !whole {
                    out.append("{{\(name)}}: |number makes a JSON number only where a body.template or batch.item string is exactly this placeholder")
                }
            case .success: break
            case .failure(.unknown):
                out.append("unknown placeholder {{\(name)}} (known: \(MessageField.byName.keys.sorted().map { "{{\($0)}}" }.joined(separator: " ")) {{secret.NAME}}, conditionals {{FIELD|VALUE=OUT|*=DEFAULT}}, {{FIELD|number}})")
            case .failure(.other(let problem)): out.append(problem)
            }
            rest = rest[close.upperBound...]
        }
        return out
    }
}

/// How field values are written into a template's output.
enum Escaping: Sendable {
    /// Inside a JSON string.
    case json
    /// RFC 3986 percent-encoding (unreserved characters kept), for URLs and form fields.
    case percent
    /// As is, CR and LF dropped (header values).
    case raw
}

/// A template compiled once into byte runs and message fields, rendered per request without parsing.
struct CompiledTemplate: Sendable {
    enum Segment: Sendable {
        case bytes([UInt8])
        case field(MessageField)
        /// A bare JSON number (`{{segments|number}}`); `null` when the field is empty (no deadline).
        case number(MessageField)
        /// A conditional: outputs already escaped for this template.
        case choice(MessageField, cases: [(value: [UInt8], output: [UInt8])], fallback: [UInt8]?)
        /// Where a batch's items go (between the `[` and `]` already in the byte runs).
        case items
    }

    private(set) var segments: [Segment] = []
    let escaping: Escaping

    init(escaping: Escaping) { self.escaping = escaping }

    /// True when the output does not depend on the message.
    var isConstant: Bool { segments.allSatisfy { if case .bytes = $0 { true } else { false } } }

    mutating func append(bytes: some Sequence<UInt8>) {
        if case .bytes(var last) = segments.last {
            segments.removeLast()
            last.append(contentsOf: bytes)
            segments.append(.bytes(last))
        } else {
            let b = Array(bytes)
            if !b.isEmpty { segments.append(.bytes(b)) }
        }
    }

    mutating func append(escaped s: String) { append(bytes: escapedBytes(s)) }

    func escapedBytes(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var s = s
        s.withUTF8 { CompiledTemplate.write($0, escaping, into: &out) }
        return out
    }

    /// Appends a template string's parts, secrets resolved now and escaped like any value. Literal text is
    /// written as it is, except inside JSON strings, where it is escaped (the template held it decoded).
    mutating func append(template s: String, secrets: [String: String]) {
        for part in TemplateString.parse(s) {
            switch part {
            case .literal(let l), .unknown(let l):
                if escaping == .json { append(escaped: l) } else { append(bytes: l.utf8) }
            case .secret(let name): append(escaped: secrets[name] ?? "")
            case .field(let f), .number(let f): segments.append(.field(f))
            case .choice(let c):
                segments.append(.choice(c.field, cases: c.cases.map { (Array($0.value.utf8), escapedBytes($0.output)) },
                                        fallback: c.fallback.map(escapedBytes)))
            }
        }
    }

    mutating func appendItems() { segments.append(.items) }

    /// Compiles a JSON template; `listAt` names the empty array where `.items` goes.
    static func json(_ v: JSONValue, secrets: [String: String], listAt: [String]? = nil) -> CompiledTemplate {
        var t = CompiledTemplate(escaping: .json)
        t.appendJSON(v, path: [], secrets: secrets, listAt: listAt)
        return t
    }

    private mutating func appendJSON(_ v: JSONValue, path: [String], secrets: [String: String], listAt: [String]?) {
        switch v {
        case .null: append(bytes: "null".utf8)
        case .bool(let b): append(bytes: (b ? "true" : "false").utf8)
        case .number(let n): append(bytes: n.utf8)
        case .string(let s):
            if let f = TemplateString.wholeNumber(s) {
                segments.append(.number(f))
                return
            }
            append(bytes: CollectionOfOne(UInt8(ascii: "\"")))
            append(template: s, secrets: secrets)
            append(bytes: CollectionOfOne(UInt8(ascii: "\"")))
        case .array(let items):
            append(bytes: CollectionOfOne(UInt8(ascii: "[")))
            if items.isEmpty, let listAt, listAt == path { appendItems() }
            for (i, x) in items.enumerated() {
                if i > 0 { append(bytes: CollectionOfOne(UInt8(ascii: ","))) }
                appendJSON(x, path: path + [String(i)], secrets: secrets, listAt: listAt)
            }
            append(bytes: CollectionOfOne(UInt8(ascii: "]")))
        case .object(let members):
            append(bytes: CollectionOfOne(UInt8(ascii: "{")))
            for (i, (k, x)) in members.enumerated() {
                if i > 0 { append(bytes: CollectionOfOne(UInt8(ascii: ","))) }
                append(bytes: CollectionOfOne(UInt8(ascii: "\"")))
                append(escaped: k)
                append(bytes: "\":".utf8)
                appendJSON(x, path: path + [k], secrets: secrets, listAt: listAt)
            }
            append(bytes: CollectionOfOne(UInt8(ascii: "}")))
        }
    }

    /// Renders for `batch` (top-level fields from its first message); `item` renders each message at `.items`.
    func render(_ batch: [OutgoingSMS], item: CompiledTemplate? = nil, into out: inout [UInt8]) {
        guard let first = batch.first else { return }
        for s in segments {
            switch s {
            case .bytes(let b): out.append(contentsOf: b)
            case .field(let f): CompiledTemplate.write(f, of: first, escaping, into: &out)
            case .number(let f): CompiledTemplate.writeNumber(f, of: first, into: &out)
            case .choice(let f, let cases, let fallback): CompiledTemplate.writeChoice(f, cases, fallback, of: first, into: &out)
            case .items:
                guard let item else { continue }
                for (i, m) in batch.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    item.render(one: m, into: &out)
                }
            }
        }
    }

    func render(one m: OutgoingSMS, into out: inout [UInt8]) {
        for s in segments {
            switch s {
            case .bytes(let b): out.append(contentsOf: b)
            case .field(let f): CompiledTemplate.write(f, of: m, escaping, into: &out)
            case .number(let f): CompiledTemplate.writeNumber(f, of: m, into: &out)
            case .choice(let f, let cases, let fallback): CompiledTemplate.writeChoice(f, cases, fallback, of: m, into: &out)
            case .items: break
            }
        }
    }

    func renderString(_ batch: [OutgoingSMS]) -> String {
        var out: [UInt8] = []
        render(batch, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func write(_ f: MessageField, of m: OutgoingSMS, _ e: Escaping, into out: inout [UInt8]) {
        switch f {
        case .to: write(m.to, drop: 0, e, into: &out)
        case .toDigits: write(m.to, drop: m.to.utf8.first == UInt8(ascii: "+") ? 1 : 0, e, into: &out)
        case .toNational:
            if m.to.utf8.starts(with: "+84".utf8) {
                out.append(UInt8(ascii: "0"))
                write(m.to, drop: 3, e, into: &out)
            } else {
                write(m.to, drop: m.to.utf8.first == UInt8(ascii: "+") ? 1 : 0, e, into: &out)
            }
        case .from: write(m.from, drop: 0, e, into: &out)
        case .text: write(m.text, drop: 0, e, into: &out)
        case .receiptURL: write(m.receiptURL, drop: 0, e, into: &out)
        case .id: writeDecimal(m.id, into: &out)
        case .segments: writeDecimal(Int64(m.segments), into: &out)
        case .unicode: out.append(m.encoding == .ucs2 ? UInt8(ascii: "1") : UInt8(ascii: "0"))
        case .coding: out.append(m.encoding == .ucs2 ? UInt8(ascii: "8") : UInt8(ascii: "0"))
        case .encoding: out.append(contentsOf: m.encoding == .ucs2 ? "ucs2".utf8 : "gsm7".utf8)
        case .validitySeconds:
            if let left = millisLeft(m) { writeDecimal(max(1, left / 1000), into: &out) }
        case .validityMinutes:
            if let left = millisLeft(m) { writeDecimal(max(1, left / 60_000), into: &out) }
        case .validityMillis:
            if let left = millisLeft(m) { writeDecimal(max(1, left), into: &out) }
        case .deadlineUnix:
            if let until = m.validUntil { writeDecimal(until / 1000, into: &out) }
        case .deadlineISO:
            if let until = m.validUntil { out.append(contentsOf: isoUTC(until).utf8) }
        }
    }

    /// Milliseconds from now until the message's deadline (never negative), or nil without one. Read from the
    /// wall clock when the request is built, so the validity a gateway gets is what is left at hand-off.
    static func millisLeft(_ m: OutgoingSMS) -> Int64? {
        if let fixed = m.validityMillis { return fixed }
        guard let until = m.validUntil else { return nil }
        return max(0, until - Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)))
    }

    /// `2026-12-02T01:55:00Z`: whole seconds, UTC.
    static func isoUTC(_ ms: Int64) -> String {
        var t = time_t(ms / 1000)
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
                      Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec))
    }

    /// A numeric field bare (a JSON number), or `null` when it is empty (no deadline).
    static func writeNumber(_ f: MessageField, of m: OutgoingSMS, into out: inout [UInt8]) {
        let start = out.count
        write(f, of: m, .raw, into: &out)
        if out.count == start { out.append(contentsOf: "null".utf8) }
    }

    /// The output of the first case whose value is the field's, else the fallback (validation makes one match).
    static func writeChoice(_ f: MessageField, _ cases: [(value: [UInt8], output: [UInt8])], _ fallback: [UInt8]?,
                            of m: OutgoingSMS, into out: inout [UInt8]) {
        var v: [UInt8] = []
        write(f, of: m, .raw, into: &v)
        if let c = cases.first(where: { $0.value == v }) { out.append(contentsOf: c.output) } else if let fallback { out.append(contentsOf: fallback) }
    }

    static func writeDecimal(_ v: Int64, into out: inout [UInt8]) {
        if v < 0 { out.append(contentsOf: String(v).utf8); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = v
        var count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[19 - count] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
                count += 1
            } while n > 0
            out.append(contentsOf: d[(20 - count)...])
        }
    }

    private static func write(_ s: String, drop: Int, _ e: Escaping, into out: inout [UInt8]) {
        var s = s
        s.withUTF8 { buf in
            guard drop <= buf.count else { return }
            write(UnsafeBufferPointer(rebasing: buf[drop...]), e, into: &out)
        }
    }

    private static let hex: [UInt8] = Array("0123456789ABCDEF".utf8)

    static func write(_ buf: UnsafeBufferPointer<UInt8>, _ e: Escaping, into out: inout [UInt8]) {
        switch e {
        case .raw:
            for b in buf where b != 0x0A && b != 0x0D { out.append(b) }
        case .percent:
            for b in buf {
                switch b {
                case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x2E, 0x5F, 0x7E: out.append(b)
                default:
                    out.append(UInt8(ascii: "%"))
                    out.append(hex[Int(b >> 4)])
                    out.append(hex[Int(b & 0xF)])
                }
            }
        case .json:
            var run = 0
            for i in 0..<buf.count {
                let b = buf[i]
                guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
                if run < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[run..<i])) }
                run = i + 1
                out.append(UInt8(ascii: "\\"))
                switch b {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(b)
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                default:
                    out.append(contentsOf: "u00".utf8)
                    out.append(hex[Int(b >> 4)])
                    out.append(hex[Int(b & 0xF)])
                }
            }
            if run < buf.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[run...])) }
        }
    }
}
