/// One thing wrong with an input, located as `file:line: field: reason`.
///
/// Every validator returns all problems it finds rather than stopping at the first, so a planner fixes
/// a file in one pass.
public struct Problem: Sendable, Equatable, CustomStringConvertible, Error {
    public var file: String
    public var line: Int
    public var field: String
    public var reason: String

    public init(file: String, line: Int, field: String, reason: String) {
        self.file = file
        self.line = line
        self.field = field
        self.reason = reason
    }

    public var description: String { "\(file):\(line): \(field): \(reason)" }
}

/// Finds the line of a key in JSON(5) source text so decoded values can be reported with a location.
///
/// It is a locator, not a parser: it returns the first line at or after the parent key's line where
/// `"key"` (or the bare key) appears followed by a colon, which is exact for the files Loa writes and
/// documents, and falls back to line 1.
public struct JSONLocator: Sendable {
    private let lines: [Substring]

    public init(_ text: String) {
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// The 1-based line of a dotted path such as `carriers.0.rate`; an integer component is an array index.
    public func line(of path: String) -> Int {
        var from = 0
        for component in path.split(separator: ".") {
            if let index = Int(component) {
                from = element(index, after: from) ?? from
            } else if let l = find(key: String(component), from: from) {
                from = l
            }
        }
        return from + 1
    }

    /// The line where the `index`-th element of the first array opening at or after line `from` starts.
    private func element(_ index: Int, after from: Int) -> Int? {
        var depth = 0
        var count = -1
        var inString: Character? = nil
        var escaped = false
        var expectingElement = false
        for i in from..<lines.count {
            for ch in lines[i] {
                if let q = inString {
                    if escaped { escaped = false } else if ch == "\\" { escaped = true } else if ch == q { inString = nil }
                    continue
                }
                if depth == 1 && expectingElement && !ch.isWhitespace && ch != "," {
                    count += 1
                    expectingElement = false
                    if count == index { return i }
                }
                switch ch {
                case "\"", "'": inString = ch
                case "[", "{":
                    depth += 1
                    if depth == 1 && ch == "[" { expectingElement = true }
                case "]", "}":
                    depth -= 1
                    if depth <= 0 { return nil }
                case ",": if depth == 1 { expectingElement = true }
                default: break
                }
            }
        }
        return nil
    }

    private func find(key: String, from: Int) -> Int? {
        for i in from..<lines.count {
            let line = lines[i]
            if line.contains("\"\(key)\"") || line.contains("'\(key)'") { return i }
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            if trimmed.hasPrefix(key + ":") || trimmed.hasPrefix(key + " :") { return i }
        }
        return nil
    }
}
