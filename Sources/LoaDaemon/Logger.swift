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
        var line = "\(ISOTime.format(SystemTimeSource().now())) \(level.name) \(label): \(message())"
        let all = metadata.merging(meta) { $1 }
        for k in all.keys.sorted() { line += " \(k)=\(all[k]!)" }
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    public func debug(_ m: @autoclosure () -> String, _ meta: [String: String] = [:]) { log(.debug, m(), meta) }
    public func info(_ m: @autoclosure () -> String, _ meta: [String: String] = [:]) { log(.info, m(), meta) }
    public func notice(_ m: @autoclosure () -> String, _ meta: [String: String] = [:]) { log(.notice, m(), meta) }
    public func warning(_ m: @autoclosure () -> String, _ meta: [String: String] = [:]) { log(.warning, m(), meta) }
    public func error(_ m: @autoclosure () -> String, _ meta: [String: String] = [:]) { log(.error, m(), meta) }
}
