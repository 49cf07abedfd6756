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
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var active = 0
    private var stopping = false

    init() {
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

    /// A request started; returns true when the server is stopping (answer 503 and close).
    func begin() -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        active += 1
        return stopping
    }

    /// A request completed (response sent, or connection gone).
    func end() {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        active -= 1
        if active == 0 { pthread_cond_broadcast(condition) }
    }

    /// Marks the server as stopping and waits until no request is active, or `seconds` pass.
    /// Returns true if it drained.
    @discardableResult
    func stopAndDrain(seconds: Int) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        stopping = true
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        deadline.tv_sec += max(0, seconds)
        while active > 0 {
            if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { return active == 0 }
        }
        return true
    }
}
