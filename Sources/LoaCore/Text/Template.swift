import Foundation

/// A `{{name}}` or `{{name|default}}` placeholder of a slogan template.
public struct Placeholder: Sendable, Equatable {
    /// Lowercased column name.
    public var name: String
    public var defaultValue: String?
}

/// A template problem, located in the template file.
public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var line: Int
    public var column: Int

    public static func missingValue(name: String) -> TemplateError {
        TemplateError(message: "no value for {{\(name)}} and no default", line: 0, column: 0)
    }

    public var description: String { line > 0 ? "\(line):\(column): \(message)" : message }
}

/// A slogan template: text with `{{column}}` placeholders filled from a segment row.
///
/// `{{ward|your ward}}` uses the default when the row's value is empty. Names are case-insensitive and
/// trimmed. The rendered text is NFC-normalized (NFD Vietnamese costs up to three UTF-16 units a letter)
/// and the template file's final newline is not part of the message.
public struct Template: Sendable {
    private enum Piece: Sendable {
        case text(String)
        case slot(Placeholder)
    }

    public let name: String
    public let source: String
    public let placeholders: [Placeholder]
    private let pieces: [Piece]

    public init(name: String, source: String) throws(TemplateError) {
        self.name = name
        var src = source
        while src.hasSuffix("\n") || src.hasSuffix("\r") { src.removeLast() }
        self.source = src
        var pieces: [Piece] = []
        var placeholders: [Placeholder] = []
        var text = ""
        var line = 1
        var column = 1
        var chars = Array(src)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == "{" && i + 1 < chars.count && chars[i + 1] == "{" {
                let startLine = line, startColumn = column
                var j = i + 2
                var inner = ""
                var closed = false
                while j < chars.count {
                    if chars[j] == "}" && j + 1 < chars.count && chars[j + 1] == "}" { closed = true; break }
                    if chars[j] == "{" && j + 1 < chars.count && chars[j + 1] == "{" { break }
                    if chars[j] == "\n" { break }
                    inner.append(chars[j])
                    j += 1
                }
                guard closed else {
                    throw TemplateError(message: "unclosed '{{' (a placeholder is {{column}} or {{column|default}})", line: startLine, column: startColumn)
                }
                let parts = inner.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false)
                let key = parts[0].trimmingCharacters(in: .whitespaces).lowercased()
                guard !key.isEmpty else {
                    throw TemplateError(message: "empty placeholder name", line: startLine, column: startColumn)
                }
                let def = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : nil
                if !text.isEmpty { pieces.append(.text(text)); text = "" }
                let p = Placeholder(name: key, defaultValue: def)
                pieces.append(.slot(p))
                if !placeholders.contains(where: { $0.name == key }) { placeholders.append(p) }
                column += j + 2 - i
                i = j + 2
                continue
            }
            if c == "}" && i + 1 < chars.count && chars[i + 1] == "}" {
                throw TemplateError(message: "'}}' without an opening '{{'", line: line, column: column)
            }
            text.append(c)
            if c == "\n" { line += 1; column = 1 } else { column += 1 }
            i += 1
        }
        if !text.isEmpty { pieces.append(.text(text)) }
        chars.removeAll()
        self.pieces = pieces
        self.placeholders = placeholders
    }

    /// Fills the placeholders; `value` gets lowercased names. A nil or blank value takes the default.
    public func render(_ value: (String) -> String?) throws(TemplateError) -> String {
        var out = ""
        for piece in pieces {
            switch piece {
            case .text(let t): out += t
            case .slot(let p):
                let v = value(p.name)?.trimmingCharacters(in: .whitespaces)
                if let v, !v.isEmpty {
                    out += v
                } else if let d = p.defaultValue {
                    out += d
                } else {
                    throw TemplateError.missingValue(name: p.name)
                }
            }
        }
        return SMSText.nfc(out)
    }
}
