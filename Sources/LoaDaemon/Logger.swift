import Foundation
import LoaCore

/// Diagnostics for operators: one line per record on stderr (journald adds the time), constant messages
/// with dotted metadata keys. The delivery log is a separate data stream (``DeliveryLogFile``).
public struct Logger: Sendable {
    public enum Level: Int, Sendable, Comparable {
        case debug = 0, info, notice, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        var name: String { ["debug", "info", "notice", "warning", "error"][rawValue] }
    }

    public var label: String
    public var level: Level
    public var metadata: [String: String]

    public init(label: String, level: Level = .info, metadata: [String: String] = [:]) {
        self.label = label
        self.level = level
        self.metadata = metadata
    }

    public func with(_ extra: [String: String]) -> Logger {
        var l = self
        l.metadata.merge(extra) { $1 }
        return l
    }

    public func log(_ level: Level, _ message: @autoclosure () -> String, _ meta: [String: String] = [:]) {
        guard level >= self.level else { return }
        let line = Logger.line(time: ISOTime.format(SystemTimeSource().now()), level: level, label: label, message: message(),
                               metadata: metadata.merging(meta) { $1 })
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// One record as written to stderr, ending in its only newline: `time level label: message key=value …`, keys sorted.
    ///
    /// Values come from outside (receipt fields, gateway answers, file names), so they are written logfmt-style:
    /// a value that is empty or holds a space, `"`, `=` or any control character is enclosed in `"` with `\"`,
    /// `\\`, `\n`, `\r`, `\t` and `\xNN` escapes. Control characters in the message, the label and the keys
    /// are escaped the same way. A newline in a receipt field can then never start a line that passes for a record.
    public static func line(time: String, level: Level, label: String, message: String, metadata: [String: String]) -> String {
        var line = "\(time) \(level.name) \(escaped(label)): \(escaped(message))"
        for k in metadata.keys.sorted() { line += " \(escaped(k))=\(quoted(metadata[k]!))" }
        return line + "\n"
    }

    /// `v` as a logfmt value: bare when it needs no quotes, else quoted with escapes.
    static func quoted(_ v: String) -> String {
        let bare = !v.isEmpty && !v.unicodeScalars.contains { $0 == " " || $0 == "\"" || $0 == "=" || TerminalText.isControl($0) }
        return bare ? v : "\"" + escaped(v, quote: true) + "\""
    }

    /// `s` with control characters (and, inside quotes, `"` and `\\`) escaped.
    static func escaped(_ s: String, quote: Bool = false) -> String {
        guard s.unicodeScalars.contains(where: { TerminalText.isControl($0) || (quote && ($0 == "\"" || $0 == "\\")) }) else { return s }
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "\"" where quote: out += "\\\""
            case "\\" where quote: out += "\\\\"
            default:
                if TerminalText.isControl(u) { out += TerminalText.escape(u) } else { out.unicodeScalars.append(u) }
            }
        }
        return out
    }

    public func debug(_ m: @autoclosure () -> String, _ meta: [String: String] = [:]) { log(.debug, m(), meta) }
    public func info(_ m: @autoclosure () -> String, _ meta: [String: String] = [:]) { log(.info, m(), meta) }
    public func notice(_ m: @autoclosure () -> String, _ meta: [String: String] = [:]) { log(.notice, m(), meta) }
    public func warning(_ m: @autoclosure () -> String, _ meta: [String: String] = [:]) { log(.warning, m(), meta) }
    public func error(_ m: @autoclosure () -> String, _ meta: [String: String] = [:]) { log(.error, m(), meta) }
}
