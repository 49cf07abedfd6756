#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Names the calling thread as `top -H`, `ps -L` and /proc/PID/task/*/comm show it, so an operator (and a
/// benchmark) can tell the curl, store and dispatcher threads apart. Linux only; at most 15 bytes are kept.
/// (glibc's pthread_setname_np is not visible to Swift, and Foundation's Thread.name does not set it.)
public func nameThisThread(_ name: String) {
    #if os(Linux)
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = name.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, min(15, $0.count - 1)) }
    close(fd)
    #endif
}
