import CMicroHTTPD
import LoaCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Total-time deadlines for the parts of a request the client paces: its head, and a body read whole.
///
/// Why: libmicrohttpd 0.9.75's `MHD_OPTION_CONNECTION_TIMEOUT` is an idle timeout, restarted by every byte, so a
/// client sending one header line every 5 s holds its connection (and, with thread per connection, a thread)
/// forever; 1,100 such clients took every slot. The library has no total-time option, and suspending a
/// connection is not available with `MHD_USE_THREAD_PER_CONNECTION`. So this watch keeps, per open connection,
/// its socket and a deadline, and a sweeper thread `shutdown(2)`s the socket of a connection past it: the
/// connection's thread, waiting in `poll`, then reads end-of-file and libmicrohttpd closes the connection the
/// usual way (completion callback, connection count, per-client count).
///
/// The deadlines:
///
/// | phase | starts | deadline |
/// |---|---|---|
/// | first head | the connection is accepted (`MHD_CONNECTION_NOTIFY_STARTED`) | `head` |
/// | next head on a kept-alive connection | the previous request completed | `idle + head`; from its request line (`MHD_OPTION_URI_LOG_CALLBACK`) at most `head` |
/// | body read whole (``Route/buffer``, discarded, refused) | the head is complete | `body` |
/// | streamed body (``Route/stream``) | — | none: idle timeout only (authenticated uploads, any size) |
/// | handler, response | the body is complete | none: the handler is ours; a slow reader is bounded by the idle timeout per write |
///
/// A cut happens at most ``sweepInterval`` after its deadline. Connections are looked up by the
/// `struct MHD_Connection *` between the STARTED and CLOSED notifications; libmicrohttpd closes the socket only
/// after CLOSED, which takes this watch's lock, so a descriptor shut down here is never one already reused for
/// another connection. The peer address is compared as well before the shutdown, in case a later version
/// changes that order.
final class ConnectionWatch: @unchecked Sendable {
    // @unchecked: every field below the lets is read and written with `mutex` held.
    private struct Entry {
        var fd: Int32
        var peer: [UInt8]
        /// Monotonic nanoseconds; 0 for none.
        var deadline: UInt64
        var cut = false
    }

    /// How often the sweeper looks at most: the slack on each deadline.
    static let sweepInterval: UInt64 = 250_000_000

    let head: UInt64?
    let body: UInt64?
    let idle: UInt64
    private let lock = MonotonicCondition()
    private var entries: [Int: Entry] = [:]
    private var stopping = false
    private var cutCount = 0
    private var thread: pthread_t?

    /// - Parameters: `head` and `body` in seconds (nil: no deadline); `idle` is the server's idle timeout.
    init(head: Double?, body: Double?, idle: Int) {
        self.head = head.map { UInt64(max(0.001, $0) * 1e9) }
        self.body = body.map { UInt64(max(0.001, $0) * 1e9) }
        self.idle = UInt64(max(0, idle)) * 1_000_000_000
    }

    /// Whether any deadline is set (else nothing is tracked and no thread runs).
    var enabled: Bool { head != nil || body != nil }

    /// Connections cut at a deadline since start.
    var cuts: Int { locked { cutCount } }

    /// Starts the sweeper thread (when a deadline is set).
    func start() {
        guard enabled else { return }
        var tid = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        guard pthread_create(&tid, nil, connectionSweeperMain, context) == 0 else {
            Unmanaged<ConnectionWatch>.fromOpaque(context).release()
            return
        }
        locked { thread = tid }
    }

    /// Stops and joins the sweeper. Call after the daemon stopped (no more callbacks).
    func stop() {
        let tid: pthread_t? = locked {
            stopping = true
            lock.broadcast()
            defer { thread = nil }
            return thread
        }
        if let tid { pthread_join(tid, nil) }
    }

    // MARK: - Events from libmicrohttpd's callbacks

    func started(_ connection: OpaquePointer) {
        guard enabled, let info = cmhd_get_connection_info(connection, .CONNECTION_INFO_CONNECTION_FD) else { return }
        let fd = info.pointee.connect_fd
        let peer = peerAddress(fd)
        let deadline = head.map { now() + $0 } ?? 0
        locked { entries[key(connection)] = Entry(fd: fd, peer: peer, deadline: deadline) }
    }

    func closed(_ connection: OpaquePointer) {
        guard enabled else { return }
        locked { _ = entries.removeValue(forKey: key(connection)) }
    }

    /// The request line of a request arrived: its head has at most `head` from now.
    func requestLine(_ connection: OpaquePointer) {
        guard let head else { return }
        let limit = now() + head
        update(connection) { $0 = $0 == 0 ? limit : min($0, limit) }
    }

    /// The head is complete; `timedBody`: a body follows that must arrive within `body`.
    func headReceived(_ connection: OpaquePointer, timedBody: Bool) {
        guard enabled else { return }
        let deadline = timedBody ? body.map { now() + $0 } ?? 0 : 0
        update(connection) { $0 = deadline }
    }

    /// The body is complete: the handler and the response are not timed.
    func bodyReceived(_ connection: OpaquePointer) {
        guard enabled else { return }
        update(connection) { $0 = 0 }
    }

    /// A request completed; the connection, if kept alive, waits for the next head.
    func requestCompleted(_ connection: OpaquePointer) {
        guard enabled else { return }
        let deadline = head.map { now() + idle + $0 } ?? 0
        update(connection) { $0 = deadline }
    }

    // MARK: - Sweeper

    /// The sweeper thread's loop: cut what is overdue, sleep until the next deadline (at most ``sweepInterval``).
    fileprivate func sweep() {
        lock.withLock {
            while !stopping {
                let t = now()
                for (k, entry) in entries where entry.deadline != 0 && entry.deadline <= t && !entry.cut {
                    entries[k]?.cut = true
                    // Only the very socket the entry was made for (see the type's comment).
                    guard peerAddress(entry.fd) == entry.peer else { continue }
                    _ = shutdown(entry.fd, Int32(SHUT_RDWR))
                    cutCount += 1
                }
                var wake = timespec()
                let at = t + Self.sweepInterval
                wake.tv_sec = Int(at / 1_000_000_000)
                wake.tv_nsec = Int(at % 1_000_000_000)
                _ = lock.wait(until: wake)
            }
        }
    }

    // MARK: - Helpers

    private func update(_ connection: OpaquePointer, _ change: (inout UInt64) -> Void) {
        locked {
            guard var entry = entries[key(connection)] else { return }
            change(&entry.deadline)
            entries[key(connection)] = entry
        }
    }

    private func locked<T>(_ body: () -> T) -> T { lock.withLock(body) }

    private func key(_ connection: OpaquePointer) -> Int { Int(bitPattern: UnsafeRawPointer(connection)) }

    private func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }
}

/// The peer's address bytes (`getpeername`), empty when the socket has none.
private func peerAddress(_ fd: Int32) -> [UInt8] {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let ok = withUnsafeMutablePointer(to: &storage) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) == 0 }
    }
    guard ok else { return [] }
    return withUnsafeBytes(of: &storage) { Array($0.prefix(Int(length))) }
}

/// The sweeper thread's entry point (a global function: C calls it).
private func connectionSweeperMain(_ context: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let context else { return nil }
    let watch = Unmanaged<ConnectionWatch>.fromOpaque(context).takeRetainedValue()
    watch.sweep()
    return nil
}
