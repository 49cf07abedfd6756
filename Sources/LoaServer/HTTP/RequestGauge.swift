import LoaCore

/// Counts requests between their first handler call and their completion, so that `stop()`
/// can wait for them to drain.
///
/// A ``ConditionBox``, because stopping has to block (on a thread of libmicrohttpd's or the daemon's) until a
/// count reaches zero.
final class RequestGauge: Sendable {
    private struct State {
        var active = 0
        var stopping = false
    }
    private let state = ConditionBox(State())

    /// A request started; returns true when the server is stopping (answer 503 and close).
    func begin() -> Bool {
        state.withLock { s in
            s.active += 1
            return s.stopping
        }
    }

    /// A request completed (response sent, or connection gone).
    func end() {
        state.withLockWaking { s in
            s.active -= 1
            return s.active == 0
        }
    }

    /// Marks the server as stopping and waits until no request is active, or `seconds` pass.
    /// Returns true if it drained.
    @discardableResult
    func stopAndDrain(seconds: Int) -> Bool {
        state.withLock { $0.stopping = true }
        return state.wait(until: .after(seconds: Double(seconds))) { s in s.active == 0 ? true : nil } ?? false
    }
}
