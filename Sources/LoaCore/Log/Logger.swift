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
        /// syslog's priority (sd-daemon(3)'s `<N>` prefix): debug 7, info 6, notice 5, warning 4, error 3, so
        /// `journalctl -p warning` shows warnings and errors.
        public var syslogPriority: Int { 7 - rawValue }
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
    /// sorted; without `time` (the journal stamps its own) it starts at the level, and with `priority` it starts with
    /// sd-daemon's `<N>` prefix (``Level/syslogPriority``), which the journal takes as the line's priority.
    ///
    /// The `key=value` pairs are logfmt, so `journalctl -o cat | grep …`, Loki's and Vector's logfmt parsers read them
    /// (the words before the first pair parse as bare keys). Values come from outside (receipt fields, gateway
    /// answers, file names), so a value that is empty or holds a space, `"`, `=`, `\` or any control character is
    /// enclosed in `"` with `\"`, `\\`, `\n`, `\r`, `\t` and `\u00XX` escapes: the escapes go-logfmt writes and
    /// reads back (it refuses `\x`). Control characters in the message, the label and the keys are escaped the same
    /// way. A newline in a receipt field can then never start a line that passes for a record, and an escape
    /// sequence never reaches a terminal running `journalctl -f`.
    ///
    /// | value            | written as        |
    /// |------------------|-------------------|
    /// | `8080`           | `8080`            |
    /// | (empty)          | `""`              |
    /// | `a b`            | `"a b"`           |
    /// | `a=b`            | `"a=b"`           |
    /// | `say "hi"`       | `"say \"hi\""`    |
    /// | `C:\x`          | `"C:\\x"`         |
    /// | `9` LF `ESC[2J`  | `"9\n\u001b[2J"`   |
    public static func line(time: String?, level: Level, label: String, message: String, metadata: [String: String],
                            priority: Bool = false) -> String {
        var line = (priority ? "<\(level.syslogPriority)>" : "") + (time.map { $0 + " " } ?? "")
        line += "\(level.name) \(escaped(label)): \(escaped(message))"
        for k in metadata.keys.sorted() { line += " \(escaped(k))=\(quoted(metadata[k]!))" }
        return line + "\n"
    }

    /// `v` as a logfmt value: bare when it needs no quotes, else quoted with escapes.
    static func quoted(_ v: String) -> String {
        let bare = !v.isEmpty && !v.unicodeScalars.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || TerminalText.isControl($0) }
        return bare ? v : "\"" + escaped(v, quote: true) + "\""
    }

    /// `s` with control characters (and, inside quotes, `"` and `\`) escaped.
    static func escaped(_ s: String, quote: Bool = false) -> String {
        guard s.unicodeScalars.contains(where: { TerminalText.isControl($0) || (quote && ($0 == "\"" || $0 == "\\")) }) else { return s }
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "\"" where quote: out += "\\\""
            case "\\" where quote: out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if TerminalText.isControl(u) {
                    // Every control scalar is below U+10000 (TerminalText.isControl): four hex digits suffice.
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
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

/// Writes each record as one line to stderr (``Logger/line(time:level:label:message:metadata:priority:)``).
///
/// Under systemd stderr is the journal. systemd then sets `JOURNAL_STREAM` to `DEVICE:INODE` of the stream it
/// connected, and a program learns that stderr is the journal by comparing it with `fstat(2)` of its stderr
/// (https://www.freedesktop.org/software/systemd/man/systemd.exec.html#%24JOURNAL_STREAM). Loa follows that rule:
/// only when they match does it write sd-daemon's `<N>` priority prefix (so `journalctl -p warning` and priority
/// alerts see warnings and errors; without it every line is stored at the unit's default priority) and leave the
/// time out (the journal stamps each line; a second time only repeats it). The variable alone is not enough: it is
/// inherited, so a `loa` started from a unit's shell, or run with `StandardError=file:…` while stdout goes to the
/// journal, writes to something else, where a `<6>` would be noise and the time is wanted.
public struct StderrLogHandler: LogHandler {
    /// Whether each line starts with the time (false when stderr is the journal).
    public let stampsTime: Bool
    /// Whether each line starts with `<N>` (true when stderr is the journal).
    public let prefixesPriority: Bool
    private let clock: any TimeSource

    /// `stderr`: the device and inode of the stream lines go to (by default `fstat(2)` of fd 2; nil when it cannot
    /// be read).
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, stderr: (device: UInt64, inode: UInt64)? = Self.identity(of: 2),
                clock: any TimeSource = SystemTimeSource()) {
        let journal = Self.isJournal(environment["JOURNAL_STREAM"], stderr: stderr)
        stampsTime = !journal
        prefixesPriority = journal
        self.clock = clock
    }

    /// True when `journalStream` (`DEVICE:INODE`, decimal, as systemd writes it) names `stderr`.
    public static func isJournal(_ journalStream: String?, stderr: (device: UInt64, inode: UInt64)?) -> Bool {
        guard let journalStream, let stderr else { return false }
        let parts = journalStream.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        return device == stderr.device && inode == stderr.inode
    }

    /// The device and inode of an open descriptor (`fstat(2)`), nil when it is not open.
    public static func identity(of fd: Int32) -> (device: UInt64, inode: UInt64)? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    /// The line `record` is written as.
    public func line(_ record: LogRecord) -> String {
        Logger.line(time: stampsTime ? ISOTime.format(clock.now()) : nil, level: record.level, label: record.label,
                    message: record.message, metadata: record.metadata, priority: prefixesPriority)
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
