import Dispatch
import LoaCarriers
import LoaServer
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// All tests share two cores with other work: run them one at a time.
@Suite(.serialized)
struct HTTPEngineTests {}

/// Holds handlers at `/block` until opened; counts who got in and out.
final class HandlerGate: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    let entered = Atomic<Int>(0)
    let returned = Atomic<Int>(0)

    func pass() {
        entered.add(1, ordering: .sequentiallyConsistent)
        semaphore.wait()
        returned.add(1, ordering: .sequentiallyConsistent)
    }

    func open(_ count: Int = 64) {
        for _ in 0..<count { semaphore.signal() }
    }
}

/// What a streamed upload looked like from the server side.
struct UploadReport: Sendable, Equatable {
    var bytes = 0
    var pieces = 0
    var largestPiece = 0
    var checksum: UInt64 = 0
}

/// Counts and checksums the body without keeping it.
final class CountingSink: BodySink {
    private var report = UploadReport()
    private let sharedReport: SharedReport

    init(_ shared: SharedReport) { sharedReport = shared }

    func consume(_ bytes: UnsafeRawBufferPointer) -> ServerResponse? {
        report.bytes += bytes.count
        report.pieces += 1
        report.largestPiece = max(report.largestPiece, bytes.count)
        report.checksum = uploadChecksum(bytes, seed: report.checksum)
        return nil
    }

    func finish() -> ServerResponse {
        sharedReport.value.withLock { $0 = report }
        return .text(200, "\(report.bytes) \(report.checksum)")
    }
}

final class SharedReport: Sendable {
    let value = Mutex<UploadReport?>(nil)
}

/// Rejects once more than `limit` bytes arrived.
final class LimitedSink: BodySink {
    private var bytes = 0
    private let limit: Int
    init(limit: Int) { self.limit = limit }

    func consume(_ piece: UnsafeRawBufferPointer) -> ServerResponse? {
        bytes += piece.count
        return bytes > limit ? .text(413, "sink full") : nil
    }

    func finish() -> ServerResponse { .text(200, "\(bytes)") }
}

func uploadChecksum(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
    var sum = seed
    for byte in bytes { sum = sum &* 31 &+ UInt64(byte) }
    return sum
}

/// The service under test.
final class EchoTestService: HTTPService {
    let heads = Mutex<[RequestHead]>([])
    let smallHandlerCalls = Atomic<Int>(0)
    let dropSecondCalls = Atomic<Int>(0)
    let gate = HandlerGate()
    let upload = SharedReport()

    func route(_ head: RequestHead) -> Route {
        heads.withLock { $0.append(head) }
        switch (head.method, head.path) {
        case ("GET", "/hello"):
            return .respond(.text(200, "hello"))
        case ("GET", "/echo"):
            return .respond(.text(200, head.query["i"] ?? ""))
        case ("GET", "/headers"):
            return .respond(ServerResponse(status: 503, headers: [.init("X-A", "1"), .init("Retry-After", "7"), .init("X-B", "2"), .init("X-A", "3")],
                                           body: Array("busy".utf8)))
        case (_, "/echo"):
            return .buffer(limit: 8 << 20) { head, body in
                ServerResponse(status: 201, headers: [.init("X-Method", head.method)], body: body)
            }
        case (_, "/small"):
            return .buffer(limit: 1024) { [self] _, body in
                smallHandlerCalls.add(1, ordering: .relaxed)
                return .text(200, "\(body.count)")
            }
        case ("PUT", "/upload"):
            return .stream(CountingSink(upload))
        case (_, "/limited"):
            return .stream(LimitedSink(limit: 64 * 1024))
        case (_, "/drop-second"):
            // Every call is counted; the second closes the connection without an answer, after the whole
            // request (body included) arrived: what a gateway that crashed after accepting looks like.
            let n = dropSecondCalls.add(1, ordering: .sequentiallyConsistent).newValue
            return .buffer(limit: 1024) { _, _ in n == 2 ? .abort : .text(202, "accepted \(n)") }
        case (_, "/block"):
            let gate = gate
            return .buffer(limit: 0) { _, _ in
                gate.pass()
                return .text(200, "released")
            }
        default:
            return .respond(.json(404, Array(#"{"error":"not found"}"#.utf8)))
        }
    }

    var lastHead: RequestHead? { heads.withLock { $0.last } }
}

/// A server on 127.0.0.1 with the test service, and a client.
struct EngineServerFixture {
    let service = EchoTestService()
    let server: HTTPServer
    let engine: CurlEngine

    init(address: String = "127.0.0.1", maxConnectionsPerHost: Int = 64) throws {
        server = try HTTPServer(address: address, port: 0, service: service)
        engine = try CurlEngine(maxConnectionsPerHost: maxConnectionsPerHost)
    }

    func url(_ pathAndQuery: String) -> String { "http://127.0.0.1:\(server.port)\(pathAndQuery)" }

    func close() {
        service.gate.open()
        engine.shutdown()
        server.stop()
    }
}

/// Polls `condition` until it holds or `seconds` pass.
func pollUntil(within seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + .milliseconds(Int(seconds * 1000))
    while clock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}

/// Runs `body` on a new pthread (for calls that block, kept off the task pool).
func runOnThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class ThreadBody { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
    var thread = pthread_t()
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    let rc = pthread_create(&thread, nil, { context in
        let box = Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    precondition(rc == 0)
    return thread
}

// MARK: Raw sockets

/// A TCP socket bound to 127.0.0.1 on a free port; listening (but never accepting) if asked.
func boundSocket(listening: Bool) -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    precondition(fd >= 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    precondition(bound == 0)
    if listening { precondition(listen(fd, 16) == 0) }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// Connects to 127.0.0.1:`port`; returns the socket or nil if refused.
func connectLoopback(_ port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    precondition(fd >= 0)
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if rc != 0 {
        close(fd)
        return nil
    }
    return fd
}

/// Sends `request` verbatim and reads until the server closes (or 5 s pass).
func rawExchange(port: Int, _ request: String) -> String {
    guard let fd = connectLoopback(port) else { return "" }
    defer { close(fd) }
    let bytes = Array(request.utf8)
    var sent = 0
    while sent < bytes.count {
        let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { break }
        sent += n
    }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while received.count < 1 << 20 {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        received += buffer[..<n]
    }
    return String(decoding: received, as: UTF8.self)
}

/// Writes `size` bytes of a fixed pattern to a new temporary file; returns its path and checksum.
func makeTemporaryFile(size: Int) -> (path: String, checksum: UInt64) {
    var template = Array("/tmp/loa-upload-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    precondition(fd >= 0)
    defer { close(fd) }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    var sum: UInt64 = 0
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    var written = 0
    while written < size {
        let count = min(chunk.count, size - written)
        for i in 0..<count {
            let position = written + i
            chunk[i] = UInt8(truncatingIfNeeded: position &* 7 &+ position >> 13)
        }
        chunk[..<count].withUnsafeBytes { bytes in
            sum = uploadChecksum(bytes, seed: sum)
            precondition(write(fd, bytes.baseAddress, bytes.count) == bytes.count)
        }
        written += count
    }
    return (path, sum)
}
