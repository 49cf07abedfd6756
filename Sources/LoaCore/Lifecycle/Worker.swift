import Foundation
import Synchronization

/// A long-running part of the daemon on a named thread of its own: started once, woken when there is work,
/// stopped by a deadline.
///
/// Why threads and not tasks: every worker blocks in C (SQLite's commits and checkpoints, the store calls
/// of the dispatcher), which must never run on Swift's shared executor. Why a name: `top -H`, `ps -L` and
/// `/proc/PID/task/*/comm` then tell the store, checkpoint and dispatch threads apart.
///
/// The body calls ``wait(until:)`` between rounds: the one place that sleeps until a deadline, a
/// ``wake()`` or a stop request. Wake-ups are remembered, not lost: one that comes while the body is busy
/// makes its next wait return at once (several such make one). ``stop(by:)`` asks the body to end (its
/// next or current wait returns false) and waits for it to return, but only until its deadline: a body
/// stuck in a C call cannot hold up the stop of the process, and the caller learns it did not end.
public final class Worker: Sendable {
    public let name: String

    private struct State {
        var woken = false
        var stopping = false
        var started = false
        var finished = false
    }
    private let state = ConditionBox(State())
    /// `CLOCK_MONOTONIC` nanoseconds when the body last left a wait (or started); 0 while it waits.
    private let busySince = Atomic<UInt64>(0)

    /// `name`: the thread's, at most 15 bytes (Linux keeps no more).
    public init(name: String) { self.name = name }

    /// Runs `body` on a new thread named ``name``; the worker is finished when it returns. Once: later calls
    /// do nothing.
    public func start(_ body: @escaping @Sendable (Worker) -> Void) {
        let first = state.withLock { s -> Bool in
            defer { s.started = true }
            return !s.started
        }
        guard first else { return }
        let thread = Thread { [self] in
            nameThisThread(name)
            busySince.store(MonotonicDeadline.now().nanoseconds, ordering: .relaxed)
            body(self)
            busySince.store(0, ordering: .relaxed)
            state.withLockWaking { s in s.finished = true; return true }
        }
        thread.start()
    }

    /// There is work: the body's current or next wait returns.
    public func wake() {
        state.withLockWaking { s in
            // Only the first wake-up since the last wait signals: the store's WAL hook wakes on every commit.
            defer { s.woken = true }
            return !s.woken
        }
    }

    /// Whether a stop was asked for.
    public var isStopping: Bool { state.withLock { $0.stopping } }

    /// For the body: sleeps until woken, `deadline` (nil: none) or a stop request; true while no stop is
    /// asked for. A body that drains before it ends (the dispatcher) may go on waiting after false: its waits
    /// then sleep to their deadline or the next wake-up, as before.
    @discardableResult
    public func wait(until deadline: MonotonicDeadline? = nil) -> Bool {
        busySince.store(0, ordering: .relaxed)
        defer { busySince.store(MonotonicDeadline.now().nanoseconds, ordering: .relaxed) }
        let woken = state.wait(until: deadline) { s -> Bool? in
            guard s.woken else { return nil }
            s.woken = false
            return !s.stopping
        }
        return woken ?? !isStopping
    }

    /// Asks the body to end (a wake-up whose wait returns false), without waiting.
    public func requestStop() {
        state.withLockWaking { s in
            s.stopping = true
            s.woken = true
            return true
        }
    }

    /// Asks the body to end and waits until it has returned or `deadline` (nil: none) passes. True when it
    /// ended (or never started); false when it is still running at the deadline.
    @discardableResult
    public func stop(by deadline: MonotonicDeadline? = nil) -> Bool {
        requestStop()
        return state.wait(until: deadline) { s -> Bool? in !s.started || s.finished ? true : nil } ?? false
    }

    /// How long the body has run since it last left a wait (nil while it waits, before it starts and after it
    /// returns): a body stuck in one round shows here (the systemd watchdog reads it).
    public var busyFor: Duration? {
        let since = busySince.load(ordering: .relaxed)
        guard since > 0 else { return nil }
        return .nanoseconds(Int64(MonotonicDeadline.now().nanoseconds &- since))
    }

    /// Whether the body has returned.
    public var isFinished: Bool { state.withLock { $0.finished } }
}
