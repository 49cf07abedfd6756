#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Counts requests between their first handler call and their completion, so that `stop()`
/// can wait for them to drain.
///
/// A pthread mutex and condition variable, because stopping has to block until a count reaches
/// zero. `@unchecked Sendable`: all state is read and written with the mutex held.
final class RequestGauge: @unchecked Sendable {
    private let lock = MonotonicCondition()
    private var active = 0
    private var stopping = false

    /// A request started; returns true when the server is stopping (answer 503 and close).
    func begin() -> Bool {
        lock.withLock {
            active += 1
            return stopping
        }
    }

    /// A request completed (response sent, or connection gone).
    func end() {
        lock.withLock {
            active -= 1
            if active == 0 { lock.broadcast() }
        }
    }

    /// Marks the server as stopping and waits until no request is active, or `seconds` pass.
    /// Returns true if it drained.
    @discardableResult
    func stopAndDrain(seconds: Int) -> Bool {
        lock.withLock {
            stopping = true
            let deadline = MonotonicCondition.deadline(seconds: seconds)
            while active > 0 {
                if !lock.wait(until: deadline) { return active == 0 }
            }
            return true
        }
    }
}
