import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An embedded HTTP/1.1 server on libmicrohttpd.
///
/// Threading: one thread per connection (`MHD_USE_THREAD_PER_CONNECTION`) plus an internal
/// thread that accepts (`MHD_USE_INTERNAL_POLLING_THREAD`, with `poll`, so descriptors above
/// 1024 work). Handlers may block (on a database commit, say): a blocked handler holds only its
/// own connection. A thread pool would not do: each pool thread runs the event loop for many
/// connections, so one blocked handler would stall all of them. The cost is a thread per open
/// connection, bounded by `connectionLimit`.
///
/// Per request: ``HTTPService/route(_:)`` runs on the first handler call, when the head is
/// known; the response is queued on the last call (for a request without a body that is the
/// second call, which libmicrohttpd handles far faster than answering on the first).
/// Malformed requests get 400 from libmicrohttpd without reaching the service.
///
/// Limits against clients that hold connections (each one a thread): `connectionLimit` for all clients,
/// `perClientLimit` per IP address (`MHD_OPTION_PER_IP_CONNECTION_LIMIT`; connections beyond it are accepted and
/// closed at once), and total-time deadlines for a request's head and for a body read whole, enforced by
/// ``ConnectionWatch`` because libmicrohttpd's own timeout is an idle timeout that every byte restarts.
///
/// https://www.gnu.org/software/libmicrohttpd/manual/libmicrohttpd.html
public final class HTTPServer: Sendable {
    /// The bound port (the one picked by the system when 0 was asked for).
    public let port: Int
    private let core: ServerCore
    private let daemon: Mutex<MHDDaemon?>
    private let connectionTimeout: Int
    private let watch: ConnectionWatch

    /// Connections closed because their head or body missed its deadline, since start.
    public var connectionsCut: Int { watch.cuts }

    /// Starts listening and serving.
    /// - Parameters:
    ///   - address: numeric IPv4 or IPv6 address to bind (`127.0.0.1`, `::1`, `0.0.0.0`, `::`).
    ///   - port: TCP port; 0 picks a free one, see ``port``.
    ///   - connectionLimit: open connections (and so threads) at most; more are refused.
    ///   - connectionTimeout: seconds a connection may stay idle, and the time ``stop()`` gives
    ///     in-flight requests to finish.
    ///   - perClientLimit: open connections from one IP address at most; 0 for no limit.
    ///   - headTimeout: seconds a request's head may take in total (nil: only the idle timeout).
    ///   - bodyTimeout: seconds a body read whole (``Route/buffer``, or discarded) may take once the head is
    ///     in (nil: only the idle timeout). Streamed bodies (``Route/stream``) have only the idle timeout.
    public init(
        address: String = "127.0.0.1", port: Int, service: any HTTPService,
        connectionLimit: Int = 1024, connectionTimeout: Int = 30, perClientLimit: Int = 0,
        headTimeout: Double? = nil, bodyTimeout: Double? = nil
    ) throws(HTTPServerError) {
        guard (0...65535).contains(port) else { throw .invalidAddress("port \(port) out of range") }
        guard var socketAddress = SocketAddress(address, port: UInt16(port)) else {
            throw .invalidAddress("not a numeric IPv4 or IPv6 address: \(address)")
        }
        let watch = ConnectionWatch(head: headTimeout, body: bodyTimeout, idle: max(0, connectionTimeout))
        let core = ServerCore(service: service, watch: watch)
        var flags = MHD_USE_THREAD_PER_CONNECTION.rawValue | MHD_USE_INTERNAL_POLLING_THREAD.rawValue
            | MHD_USE_POLL.rawValue | MHD_USE_ITC.rawValue | MHD_USE_ERROR_LOG.rawValue
        if socketAddress.isIPv6 { flags |= MHD_USE_IPv6.rawValue }
        let context = Unmanaged.passUnretained(core).toOpaque()
        let raw = socketAddress.withPointer { address in
            var options: [MHD_OptionItem] = [
                MHD_OptionItem(option: .CONNECTION_LIMIT, value: max(1, connectionLimit), ptr_value: nil),
                MHD_OptionItem(option: .CONNECTION_TIMEOUT, value: max(0, connectionTimeout), ptr_value: nil),
                MHD_OptionItem(option: .PER_IP_CONNECTION_LIMIT, value: max(0, perClientLimit), ptr_value: nil),
                MHD_OptionItem(option: .LISTEN_BACKLOG_SIZE, value: 4096, ptr_value: nil),
                MHD_OptionItem(option: .SOCK_ADDR, value: 0, ptr_value: address),
                MHD_OptionItem(option: .END, value: 0, ptr_value: nil),
            ]
            return cmhd_start_daemon(
                flags, UInt16(port), mhdAccessHandler, context, mhdRequestCompleted, context,
                mhdConnectionNotified, context, mhdRequestLine, context, mhdLog, context, &options)
        }
        let started = try check(raw, "MHD_start_daemon on \(address) port \(port)", core: core)
        let daemon = MHDDaemon(started)
        guard let info = cmhd_get_daemon_info(started, .DAEMON_INFO_BIND_PORT) else {
            throw .startFailed("MHD_get_daemon_info(BIND_PORT) failed")
        }
        self.port = Int(info.pointee.port)
        self.core = core
        self.connectionTimeout = max(0, connectionTimeout)
        self.daemon = Mutex(daemon)
        self.watch = watch
        watch.start()
    }

    deinit { stop() }

    /// Stops accepting connections at once (new ones are refused), answers requests that start
    /// on open connections with 503, ends streamed responses (``ResponseStream/close()``), waits up to `connectionTimeout` seconds for requests in
    /// progress to complete, then closes every connection and joins their threads, which waits
    /// for handlers still running. Idempotent; concurrent callers all wait. Must not be called
    /// from a handler.
    public func stop() {
        daemon.withLock { daemon in
            guard let current = daemon else { return }
            let listenSocket = MHD_quiesce_daemon(current.raw)
            // libmicrohttpd no longer polls the socket; shutting it down makes the kernel refuse
            // connections instead of queueing them until close. It is closed after the stop.
            if listenSocket >= 0 { _ = shutdown(listenSocket, Int32(SHUT_RDWR)) }
            // Streamed responses have no end of their own: end them, so the drain does not wait out the timeout.
            core.streams.closeAll()
            core.gauge.stopAndDrain(seconds: connectionTimeout)
            current.stop()
            watch.stop()
            daemon = nil
            if listenSocket >= 0 { close(listenSocket) }
        }
    }
}

/// Maps a libmicrohttpd call that reports failure as NULL to ``HTTPServerError``, with the last
/// message libmicrohttpd logged (it has no error codes).
func check<T>(_ value: T?, _ context: String, core: ServerCore) throws(HTTPServerError) -> T {
    guard let value else {
        let log = core.lastLog.withLock { $0 }
        throw .startFailed(log.isEmpty ? "\(context) failed" : "\(context): \(log)")
    }
    return value
}

/// Owns the `struct MHD_Daemon *`; stopping it closes connections and joins its threads.
final class MHDDaemon {
    let raw: OpaquePointer
    private var stopped = false

    init(_ raw: OpaquePointer) { self.raw = raw }

    /// https://www.gnu.org/software/libmicrohttpd/manual/html_node/microhttpd_002dinit.html
    func stop() {
        guard !stopped else { return }
        stopped = true
        MHD_stop_daemon(raw)
    }

    deinit { stop() }
}

@available(*, unavailable)
extension MHDDaemon: Sendable {}

/// What libmicrohttpd's callbacks reach through their `cls` pointer. Outlives the daemon.
final class ServerCore: Sendable {
    let service: any HTTPService
    let gauge = RequestGauge()
    let watch: ConnectionWatch
    /// The responses being streamed (``ResponseStream``), closed at stop.
    let streams = OpenStreams()
    /// The last message libmicrohttpd logged, for start-up errors.
    let lastLog = Mutex("")

    init(service: any HTTPService, watch: ConnectionWatch) {
        self.service = service
        self.watch = watch
    }
}

/// A numeric bind address as the `sockaddr` libmicrohttpd takes.
private enum SocketAddress {
    case v4(sockaddr_in)
    case v6(sockaddr_in6)

    init?(_ text: String, port: UInt16) {
        var v4 = sockaddr_in()
        if inet_pton(AF_INET, text, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            self = .v4(v4)
            return
        }
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET6, text, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            self = .v6(v6)
            return
        }
        return nil
    }

    var isIPv6: Bool {
        if case .v6 = self { return true }
        return false
    }

    mutating func withPointer<R>(_ body: (UnsafeMutableRawPointer) -> R) -> R {
        switch self {
        case .v4(var address):
            return withUnsafeMutablePointer(to: &address) { body(UnsafeMutableRawPointer($0)) }
        case .v6(var address):
            return withUnsafeMutablePointer(to: &address) { body(UnsafeMutableRawPointer($0)) }
        }
    }
}
