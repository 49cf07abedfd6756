#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point on the monotonic clock (`CLOCK_MONOTONIC`) by which a wait or a stop gives up: a wall-clock step
/// cannot stretch or cut it.
public struct MonotonicDeadline: Sendable, Comparable {
    /// Nanoseconds on `CLOCK_MONOTONIC`.
    public let nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static func now() -> MonotonicDeadline {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return MonotonicDeadline(nanoseconds: UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec))
    }

    /// `seconds` from now (negative or nan: now; more than a century: a century).
    public static func after(seconds: Double) -> MonotonicDeadline {
        let s = seconds.isNaN ? 0 : min(max(0, seconds), 3e9)
        return MonotonicDeadline(nanoseconds: now().nanoseconds + UInt64(s * 1e9))
    }

    public var hasPassed: Bool { MonotonicDeadline.now() >= self }

    var monotonicTimespec: timespec {
        var t = timespec()
        t.tv_sec = Int(nanoseconds / 1_000_000_000)
        t.tv_nsec = Int(nanoseconds % 1_000_000_000)
        return t
    }

    public static func < (a: MonotonicDeadline, b: MonotonicDeadline) -> Bool { a.nanoseconds < b.nanoseconds }
}

/// A value behind a lock with one condition: the one lock-and-condition box, instead of a copy of the
/// `lock; change; signal; unlock` and `lock; while !ready { wait }; unlock` dance in every threaded part.
///
/// Changes that someone may wait for go through ``withLockWaking(_:)``; waits go through
/// ``wait(until:_:)``, which re-checks after every wake-up (spurious ones included) and gives up at a
/// ``MonotonicDeadline``. (swift-service-lifecycle's `LockedValueBox`, with the condition variable that
/// blocking threads need and Swift's `Mutex` lacks.)
public final class ConditionBox<Value> {
    private let condition = MonotonicCondition()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    /// Runs `body` with the lock held.
    public func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        try condition.withLock { try body(&value) }
    }

    /// Runs `body` with the lock held and, when it returns true, wakes every waiter.
    public func withLockWaking(_ body: (inout Value) -> Bool) {
        condition.withLock {
            if body(&value) { condition.broadcast() }
        }
    }

    /// Waits until `check` returns a result (it runs with the lock held, first at once, then after every
    /// wake-up, and may change the value: to take what it found, say) or `deadline` passes (nil: never).
    /// Returns `check`'s result, or nil at the deadline.
    public func wait<T>(until deadline: MonotonicDeadline?, _ check: (inout Value) -> T?) -> T? {
        condition.withLock {
            let limit = (deadline ?? MonotonicDeadline(nanoseconds: UInt64(Int64.max))).monotonicTimespec
            while true {
                if let r = check(&value) { return r }
                if !condition.wait(until: limit) { return check(&value) }
            }
        }
    }
}

// The value is only reached with the lock held.
extension ConditionBox: @unchecked Sendable where Value: Sendable {}
