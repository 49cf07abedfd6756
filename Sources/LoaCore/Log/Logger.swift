import Foundation
import Synchronization

/// Diagnostics for operators: constant messages with dotted metadata keys, one record at a time handed to a
/// ``LogHandler`` (by default ``StderrLogHandler``, one line per record on stderr). The delivery log is a separate
/// data stream (`DeliveryLogFile`).
///
/// Why a handler behind it: the parts that log (the store, the dispatcher, the supervisor) are given a logger at
/// construction, and a test gives them one with a ``CollectingLogHandler`` to read what they logged.
/// (swift-log's `Logger` and `LogHandler`.)
public struct Logger: Sendable {
    public enum Level: Int, Sendable, Comparable {
        case debug = 0, info, notice, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        public var name: String { ["debug", "info", "notice", "warning", "error"][rawValue] }
    }

    public var label: String
    public var level: Level
    public var metadata: [String: String]
    public var handler: any LogHandler

    public init(label: String, level: Level = .info, metadata: [String: String] = [:], handler: any LogHandler = StderrLogHandler()) {
        self.label = label
        self.level = level
        self.metadata = metadata
        self.handler = handler
    }

    public func with(_ extra: [String: String]) -> Logger {
        var l = self
        l.metadata.merge(extra) { $1 }
        return l
    }

    public func log(_ level: Level, _ message: @autoclosure () -> String, _ meta: [String: String] = [:]) {
        guard level >= self.level else { return }
        handler.log(LogRecord(level: level, label: label, message: message(), metadata: metadata.merging(meta) { $1 }))
    }

    /// One record as written to stderr, ending in its only newline: `time level label: message key=value …`, keys
    /// sorted; without `time` (the journal stamps its own) it starts at the level.
    ///
    /// Values come from outside (receipt fields, gateway answers, file names), so they are written logfmt-style:
    /// a value that is empty or holds a space, `"`, `=` or any control character is enclosed in `"` with `\"`,
    /// `\\`, `\n`, `\r`, `\t` and `\xNN` escapes. Control characters in the message, the label and the keys
    /// are escaped the same way. A newline in a receipt field can then never start a line that passes for a record.
    public static func line(time: String?, level: Level, label: String, message: String, metadata: [String: String]) -> String {
        var line = (time.map { $0 + " " } ?? "") + "\(level.name) \(escaped(label)): \(escaped(message))"
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

/// One diagnostic as the ``Logger`` hands it on: the logger's own metadata merged with the call's.
public struct LogRecord: Sendable, Equatable {
    public var level: Logger.Level
    public var label: String
    public var message: String
    public var metadata: [String: String]

    public init(level: Logger.Level, label: String, message: String, metadata: [String: String]) {
        self.level = level
        self.label = label
        self.message = message
        self.metadata = metadata
    }
}

/// Where a ``Logger``'s records go. `log` is called on the logging thread (any of the daemon's) and must not
/// call back into a logger.
public protocol LogHandler: Sendable {
    func log(_ record: LogRecord)
}

/// Writes each record as one line to stderr (``Logger/line(time:level:label:message:metadata:)``).
///
/// Under systemd stderr is the journal, which stamps every line with its own time: a second time in the text
/// only repeats it, so the line then starts at the level. systemd sets `JOURNAL_STREAM` for a service whose
/// stderr is the journal (https://www.freedesktop.org/software/systemd/man/systemd.exec.html#%24JOURNAL_STREAM).
public struct StderrLogHandler: LogHandler {
    /// Whether each line starts with the time (false when stderr is the journal).
    public let stampsTime: Bool
    private let clock: any TimeSource

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, clock: any TimeSource = SystemTimeSource()) {
        stampsTime = environment["JOURNAL_STREAM"] == nil
        self.clock = clock
    }

    /// The line `record` is written as.
    public func line(_ record: LogRecord) -> String {
        Logger.line(time: stampsTime ? ISOTime.format(clock.now()) : nil, level: record.level, label: record.label,
                    message: record.message, metadata: record.metadata)
    }

    public func log(_ record: LogRecord) {
        FileHandle.standardError.write(Data(line(record).utf8))
    }
}

/// Keeps every record in memory, for tests to read what was logged.
public final class CollectingLogHandler: LogHandler {
    private let kept = Mutex<[LogRecord]>([])

    public init() {}

    public func log(_ record: LogRecord) { kept.withLock { $0.append(record) } }

    /// The records so far, oldest first.
    public var records: [LogRecord] { kept.withLock { $0 } }
}
