import Foundation
import Synchronization

/// Starts the daemon's parts in order and stops them in reverse, once, each by a deadline.
///
/// Why: the daemon's parts depend on each other (the dispatcher sends through the curl engine and records in
/// the store; the HTTP server answers from both), so each must stop before what it uses, and a start that
/// fails halfway must stop exactly the parts already started. Written by hand at each place that can fail,
/// the unwinding was copied three times and had to be kept in step with the start order; here the order of
/// the ``start(_:failure:metadata:stopWithin:_:stop:)`` calls is the only order there is.
/// (swift-service-lifecycle's `ServiceGroup`, with threads instead of tasks: every part blocks in C.)
///
/// Each part's stop runs on a thread of its own while the supervisor waits for it up to that part's
/// `stopWithin`: a part stuck past it is named in the log and in ``stop()``'s result, and the next part is
/// stopped all the same, so a stuck thread never keeps the process from ending.
public final class Supervisor: Sendable {
    /// A start failed; the parts started before it have been stopped.
    public struct StartFailure: Error, CustomStringConvertible {
        public let part: String
        public let error: any Error
        public var description: String { "\(part): \(error)" }
    }

    private struct Part {
        var name: String
        var stopWithin: Double
        var stop: @Sendable () -> Void
    }
    private struct State {
        var started: [Part] = []
        var stopped = false
    }
    private let state = Mutex(State())
    private let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    /// Starts one part: runs `start`, and keeps `stop` to run when the group stops. When `start` throws, logs
    /// `failure` (with `metadata` and the error), stops the parts started before, in reverse, and throws
    /// ``StartFailure``. After the group stopped, starts nothing and throws.
    public func start<T: Sendable>(_ name: String, failure: String, metadata: [String: String] = [:], stopWithin: Double,
                                   _ start: () throws -> T, stop: @escaping @Sendable (T) -> Void) throws -> T {
        let value = try attempt(name, failure: failure, metadata: metadata, start)
        state.withLock { $0.started.append(Part(name: name, stopWithin: stopWithin, stop: { stop(value) })) }
        return value
    }

    /// A start step with nothing to stop (a preparation the later parts need); fails as a start does.
    public func step(_ name: String, failure: String, metadata: [String: String] = [:], _ body: () throws -> Void) throws {
        try attempt(name, failure: failure, metadata: metadata, body)
    }

    private func attempt<T>(_ name: String, failure: String, metadata: [String: String], _ body: () throws -> T) throws -> T {
        if state.withLock({ $0.stopped }) { throw StartFailure(part: name, error: CancellationError()) }
        do {
            return try body()
        } catch {
            logger.error(failure, metadata.merging(["error": "\(error)"]) { $1 })
            stop()
            throw StartFailure(part: name, error: error)
        }
    }

    /// Stops the started parts, the last started first, each given its `stopWithin` seconds. Returns the names
    /// of those still stopping at their deadline (empty: a clean stop). Once: later calls return at once.
    @discardableResult
    public func stop() -> [String] {
        let parts = state.withLock { s -> [Part] in
            if s.stopped { return [] }
            s.stopped = true
            return s.started
        }
        var stuck: [String] = []
        for part in parts.reversed() {
            let done = ConditionBox(false)
            let stop = part.stop
            let thread = Thread {
                nameThisThread("loa-stop")
                stop()
                done.withLockWaking { $0 = true; return true }
            }
            thread.start()
            if done.wait(until: .after(seconds: part.stopWithin), { $0 ? true : nil }) == nil {
                logger.error("part did not stop by its deadline; stopping the next one without it",
                             ["part": part.name, "stop_within_seconds": "\(part.stopWithin)"])
                stuck.append(part.name)
            }
        }
        return stuck
    }
}
