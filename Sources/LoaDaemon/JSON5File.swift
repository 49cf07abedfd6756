import Foundation
import LoaCarriers
import LoaCore

/// Reads a JSON5 file into a Decodable, reporting a failure as a located problem.
public enum JSON5File {
    /// `data`, when given, is decoded instead of the file's bytes (a config whose carriers were completed from their
    /// profiles); problems still name `path` and are located in the file's own text.
    public static func decode<T: Decodable>(_ type: T.Type, path: String, data given: Data? = nil) -> Result<(T, JSONLocator), ProblemList> {
        guard let fileData = FileManager.default.contents(atPath: path) else {
            return .failure(ProblemList([Problem(file: path, line: 0, field: "-", reason: "cannot read the file")]))
        }
        if let given {
            let locator = JSONLocator(String(decoding: fileData, as: UTF8.self))
            let decoder = JSONDecoder()
            decoder.allowsJSON5 = true
            do {
                return .success((try decoder.decode(T.self, from: given), locator))
            } catch let error as DecodingError {
                return .failure(ProblemList([DecodingProblem.problem(error, file: path, locator: locator)]))
            } catch {
                return .failure(ProblemList([Problem(file: path, line: 1, field: "-", reason: "\(error)")]))
            }
        }
        let data = fileData
        // Foundation's JSON5 reader traps on some invalid UTF-8 (an unquoted key of bytes FD FF FF): refuse it first.
        if let line = firstInvalidUTF8Line(data) {
            return .failure(ProblemList([Problem(file: path, line: line, field: "-", reason: "not valid UTF-8")]))
        }
        // It also traps on a Double written with an exponent sign but no digits (`1e-`).
        if let line = exponentWithoutDigitsLine([UInt8](data)) {
            return .failure(ProblemList([Problem(file: path, line: line, field: "-", reason: "a number's exponent has no digits")]))
        }
        let locator = JSONLocator(String(decoding: data, as: UTF8.self))
        let decoder = JSONDecoder()
        decoder.allowsJSON5 = true
        do {
            return .success((try decoder.decode(T.self, from: data), locator))
        } catch let error as DecodingError {
            return .failure(ProblemList([DecodingProblem.problem(error, file: path, locator: locator)]))
        } catch let error as UnknownField {
            return .failure(ProblemList([Problem(file: path, line: locator.line(of: error.path), field: error.path,
                                                 reason: error.reason)]))
        } catch {
            return .failure(ProblemList([Problem(file: path, line: 1, field: "-", reason: "\(error)")]))
        }
    }

    /// The 1-based line of a number like `1e-` or `2E+` (an exponent sign not followed by a digit) outside strings
    /// and comments, or nil when there is none.
    static func exponentWithoutDigitsLine(_ b: [UInt8]) -> Int? {
        func isDigit(_ i: Int) -> Bool { i >= 0 && i < b.count && b[i] >= 0x30 && b[i] <= 0x39 }
        var i = 0
        var line = 1
        var quote: UInt8?
        while i < b.count {
            let c = b[i]
            if c == 0x0A { line += 1 }
            if let q = quote {
                if c == 0x5C, i + 1 < b.count {  // an escape; a backslash-newline continues the string
                    if b[i + 1] == 0x0A { line += 1 }
                    i += 2
                    continue
                }
                if c == q { quote = nil }
                i += 1
                continue
            }
            switch c {
            case 0x22, 0x27: quote = c
            case 0x2F where i + 1 < b.count && b[i + 1] == 0x2F:  // a line comment
                while i + 1 < b.count && b[i + 1] != 0x0A { i += 1 }
            case 0x2F where i + 1 < b.count && b[i + 1] == 0x2A:  // a block comment
                i += 2
                while i < b.count && !(b[i] == 0x2A && i + 1 < b.count && b[i + 1] == 0x2F) {
                    if b[i] == 0x0A { line += 1 }
                    i += 1
                }
            case 0x65, 0x45:  // e, E after a digit or a point, then a sign
                let afterNumber = isDigit(i - 1) || (i > 0 && b[i - 1] == 0x2E)
                if afterNumber, i + 1 < b.count, b[i + 1] == 0x2B || b[i + 1] == 0x2D, !isDigit(i + 2) { return line }
            default: break
            }
            i += 1
        }
        return nil
    }

    /// The 1-based line of the first byte that is not UTF-8, or nil when all of `data` is.
    static func firstInvalidUTF8Line(_ data: Data) -> Int? {
        var bytes = data.makeIterator()
        var utf8 = UTF8()
        var line = 1
        while true {
            switch utf8.decode(&bytes) {
            case .scalarValue(let s): if s == "\n" { line += 1 }
            case .emptyInput: return nil
            case .error: return line
            }
        }
    }
}

/// Turns Foundation's decoding errors into located problems.
enum DecodingProblem {
    static func problem(_ error: DecodingError, file: String, locator: JSONLocator) -> Problem {
        func path(_ ctx: DecodingError.Context, extra: String? = nil) -> String {
            var keys = ctx.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            if let extra { keys.append(extra) }
            return keys.isEmpty ? "-" : keys.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let ctx):
            let parent = path(ctx)
            let field = path(ctx, extra: key.stringValue)
            return Problem(file: file, line: parent == "-" ? 1 : locator.line(of: parent), field: field, reason: "required field is missing")
        case .typeMismatch(let type, let ctx):
            let f = path(ctx)
            return Problem(file: file, line: locator.line(of: f), field: f, reason: "expected \(describe(type))")
        case .valueNotFound(let type, let ctx):
            let f = path(ctx)
            return Problem(file: file, line: locator.line(of: f), field: f, reason: "expected \(describe(type)), found null")
        case .dataCorrupted(let ctx):
            let f = path(ctx)
            let underlying = (ctx.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            let message = underlying ?? ctx.debugDescription
            // Foundation's syntax errors say "around line N, column M".
            var line = f == "-" ? 1 : locator.line(of: f)
            if let r = message.range(of: "line ") {
                let digits = message[r.upperBound...].prefix(while: \.isNumber)
                if let n = Int(digits) { line = n }
            }
            return Problem(file: file, line: line, field: f, reason: "not valid JSON: \(message)")
        @unknown default:
            return Problem(file: file, line: 1, field: "-", reason: "\(error)")
        }
    }

    /// `field: reason` for a request body, where there is no file or line to name.
    static func text(_ error: DecodingError) -> String {
        let p = problem(error, file: "", locator: JSONLocator(""))
        return "\(p.field): \(p.reason)"
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        default: "\(type)".lowercased().contains("array") ? "a list" : "an object"
        }
    }
}
