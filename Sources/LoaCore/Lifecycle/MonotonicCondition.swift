#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pthread mutex with one condition variable whose timed waits run on `CLOCK_MONOTONIC` (a wall-clock step
/// cannot stretch or cut them): the lock-and-wait under ``ConditionBox`` (and so every ``Worker``) and the
/// HTTP server's connection sweeper, on threads of libmicrohttpd's and our own where Swift's concurrency
/// primitives cannot block.
/// `@unchecked Sendable`: the pthread objects are made for use across threads.
public final class MonotonicCondition: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if canImport(Glibc)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` with the mutex held.
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Wakes every waiter; call with the mutex held (inside ``withLock(_:)``).
    public func broadcast() { pthread_cond_broadcast(condition) }

    /// Waits, the mutex held (inside ``withLock(_:)``), until woken or `deadline` on the monotonic clock;
    /// false when the deadline passed. Wake-ups may be spurious: callers re-check their condition.
    public func wait(until deadline: timespec) -> Bool {
        var d = deadline
        return pthread_cond_timedwait(condition, mutex, &d) != ETIMEDOUT
    }

    /// The monotonic clock now, plus `seconds` and `nanoseconds`.
    public static func deadline(seconds: Int = 0, nanoseconds: UInt64 = 0) -> timespec {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        let ns = UInt64(t.tv_nsec) + nanoseconds
        t.tv_sec += max(0, seconds) + Int(ns / 1_000_000_000)
        t.tv_nsec = Int(ns % 1_000_000_000)
        return t
    }
}
