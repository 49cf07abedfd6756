import CMicroHTTPD

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Body bytes read and thrown away after the answer is decided (413, a sink that stopped, a
/// `.respond` route); past this the connection is closed instead. Reading a small remainder
/// keeps the connection and makes sure the client sees the response rather than a reset.
let bodyDiscardLimit = 1 << 20

/// Per-request state behind libmicrohttpd's `con_cls` pointer, retained from the first handler
/// call to the completion callback. Touched only by the connection's thread.
final class MHDRequestContext {
    enum Body {
        /// The answer is known; read and drop what is left of the body.
        case discard(then: ServerResponse)
        case buffer(limit: Int, handler: @Sendable (RequestHead, [UInt8]) -> ServerResponse)
        case stream(BodySink)
    }

    let head: RequestHead
    var body: Body
    var buffered: [UInt8] = []
    var discarded = 0

    init(head: RequestHead, body: Body) {
        self.head = head
        self.body = body
    }

    /// Takes one piece of the body; false means "close the connection".
    func consume(_ bytes: UnsafeRawBufferPointer) -> Bool {
        switch body {
        case .discard:
            discarded += bytes.count
            return discarded <= bodyDiscardLimit
        case .buffer(let limit, _):
            guard buffered.count + bytes.count <= limit else {
                buffered = []
                body = .discard(then: payloadTooLarge(limit))
                return consume(bytes)
            }
            buffered.append(contentsOf: bytes)
            return true
        case .stream(let sink):
            if let response = sink.consume(bytes) { body = .discard(then: response) }
            return true
        }
    }

    /// The body is complete: the response.
    func finish() -> ServerResponse {
        switch body {
        case .discard(let response):
            return response
        case .buffer(_, let handler):
            let data = buffered
            buffered = []
            return handler(head, data)
        case .stream(let sink):
            return sink.finish()
        }
    }
}

@available(*, unavailable)
extension MHDRequestContext: Sendable {}

func payloadTooLarge(_ limit: Int) -> ServerResponse {
    .text(413, "request body larger than \(limit) bytes\n")
}

/// `MHD_AccessHandlerCallback`: called after the head, once per body piece, and once more when
/// the request is complete. https://www.gnu.org/software/libmicrohttpd/manual/html_node/microhttpd_002dcb.html
func mhdAccessHandler(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?, _ url: UnsafePointer<CChar>?,
    _ method: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?, _ uploadData: UnsafePointer<CChar>?,
    _ uploadDataSize: UnsafeMutablePointer<Int>?, _ requestContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> MHD_Result {
    guard let cls, let connection, let uploadDataSize, let requestContext else { return .NO }

    guard let existing = requestContext.pointee else {
        let core = Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue()
        let stopping = core.gauge.begin()  // balanced by mhdRequestCompleted
        let head = makeHead(connection, url: url, method: method)
        let hasBody = bodyExpected(head)
        let route: Route = stopping
            ? .respond(ServerResponse.text(503, "shutting down\n").closing())
            : core.service.route(head)
        let body: MHDRequestContext.Body
        var answerNow = false
        switch route {
        case .respond(let response):
            body = .discard(then: response)
        case .refuse(let response):
            body = .discard(then: response)
            answerNow = true
        case .buffer(let limit, let handler):
            if let length = contentLength(head), length > limit {
                body = .discard(then: payloadTooLarge(limit))
            } else {
                body = .buffer(limit: limit, handler: handler)
            }
        case .stream(let sink):
            body = .stream(sink)
        }
        let context = MHDRequestContext(head: head, body: body)
        requestContext.pointee = Unmanaged.passRetained(context).toOpaque()
        if case .stream = body {
            core.watch.headReceived(connection, timedBody: false)
        } else {
            core.watch.headReceived(connection, timedBody: hasBody)
        }
        // Answer before the body when the route refuses it, when the client waits for "100 Continue",
        // or when the body is too big to drain; libmicrohttpd then skips the body and closes the
        // connection.
        if hasBody, case .discard(let response) = body,
            answerNow || head.headers["expect"]?.lowercased() == "100-continue" || (contentLength(head) ?? 0) > bodyDiscardLimit
        {
            return queue(response, on: connection, core: core)
        }
        return .YES
    }

    let context = Unmanaged<MHDRequestContext>.fromOpaque(existing).takeUnretainedValue()
    let size = uploadDataSize.pointee
    if size > 0, let uploadData {
        uploadDataSize.pointee = 0
        return context.consume(UnsafeRawBufferPointer(start: uploadData, count: size)) ? .YES : .NO
    }
    let core = Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue()
    core.watch.bodyReceived(connection)
    return queue(context.finish(), on: connection, core: core)
}

/// `MHD_RequestCompletedCallback`: the response was sent or the connection is gone.
func mhdRequestCompleted(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?,
    _ requestContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ code: MHD_RequestTerminationCode
) {
    guard let cls, let requestContext, let raw = requestContext.pointee else { return }
    requestContext.pointee = nil
    Unmanaged<MHDRequestContext>.fromOpaque(raw).release()
    let core = Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue()
    if let connection { core.watch.requestCompleted(connection) }
    core.gauge.end()
}

/// `MHD_NotifyConnectionCallback`: a connection was accepted or is about to be closed (its socket is
/// closed after this returns). Feeds ``ConnectionWatch``.
func mhdConnectionNotified(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?, _ socketContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    _ code: MHD_ConnectionNotificationCode
) {
    guard let cls, let connection else { return }
    let watch = Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue().watch
    switch code {
    case .CONNECTION_NOTIFY_STARTED: watch.started(connection)
    case .CONNECTION_NOTIFY_CLOSED: watch.closed(connection)
    @unknown default: break
    }
}

/// `MHD_OPTION_URI_LOG_CALLBACK`: a request line arrived (before its headers). Starts the head's deadline
/// on a kept-alive connection. Returns NULL so the access handler's first call still sees no context.
func mhdRequestLine(_ cls: UnsafeMutableRawPointer?, _ uri: UnsafePointer<CChar>?, _ connection: OpaquePointer?) -> UnsafeMutableRawPointer? {
    guard let cls, let connection else { return nil }
    Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue().watch.requestLine(connection)
    return nil
}

/// `MHD_LogCallback`: keeps libmicrohttpd's last message (it reports errors only this way).
func mhdLog(_ cls: UnsafeMutableRawPointer?, _ format: UnsafePointer<CChar>?, _ arguments: CVaListPointer?) {
    guard let cls, let format, let arguments else { return }
    var buffer = [CChar](repeating: 0, count: 512)
    let written = buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, $0.count, format, arguments) }
    guard written > 0 else { return }
    let length = min(Int(written), buffer.count - 1)
    var message = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    while message.last?.isNewline == true { message.removeLast() }
    Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue().lastLog.withLock { $0 = message }
}

/// Sends `response` (a ``ResponseStream`` as it is made), or closes the connection for ``ServerResponse/abort``. Invalid status codes become 500; a header libmicrohttpd rejects (control
/// characters) turns the whole response into a 500.
private func queue(_ response: ServerResponse, on connection: OpaquePointer, core: ServerCore) -> MHD_Result {
    // MHD_NO closes the connection; the completion callback still runs (balancing the gauge).
    if response.abortsConnection { response.stream?.close(); return .NO }
    let status = (100...599).contains(response.status) ? response.status : 500
    let created: OpaquePointer?
    if let stream = response.stream {
        // Freed with the response (sent, or the connection gone), which closes the stream.
        guard let made = makeStreamResponse(stream, registry: core.streams) else {
            return queue(.text(503, "shutting down\n").closing(), on: connection, core: core)
        }
        created = made
    } else {
        created = response.body.withUnsafeBytes { bytes -> OpaquePointer? in
            guard let base = bytes.baseAddress, bytes.count > 0 else {
                return MHD_create_response_from_buffer(0, nil, .RESPMEM_PERSISTENT)
            }
            return MHD_create_response_from_buffer(bytes.count, UnsafeMutableRawPointer(mutating: base), .RESPMEM_MUST_COPY)
        }
    }
    guard let mhdResponse = created else { return .NO }
    defer { MHD_destroy_response(mhdResponse) }
    for header in response.headers {
        let name = header.name.lowercased()
        if name == "content-length" || name == "transfer-encoding" { continue }
        if MHD_add_response_header(mhdResponse, header.name, header.value) == .NO {
            return queue(.text(500, "invalid response header\n"), on: connection, core: core)
        }
    }
    return MHD_queue_response(connection, UInt32(status), mhdResponse)
}

private func makeHead(_ connection: OpaquePointer, url: UnsafePointer<CChar>?, method: UnsafePointer<CChar>?) -> RequestHead {
    let query = values(connection, .GET_ARGUMENT_KIND)
    var headers: [String: String] = [:]
    for (name, value) in values(connection, .HEADER_KIND) {
        let key = name.lowercased()
        if let previous = headers[key] { headers[key] = previous + ", " + value } else { headers[key] = value }
    }
    return RequestHead(
        method: method.map { String(cString: $0) } ?? "",
        path: url.map { String(cString: $0) } ?? "/",
        query: Dictionary(query, uniquingKeysWith: { _, last in last }),
        rawQuery: query,
        headers: headers,
        remoteAddress: remoteAddress(connection))
}

private func values(_ connection: OpaquePointer, _ kind: MHD_ValueKind) -> [(String, String)] {
    var pairs: [(String, String)] = []
    withUnsafeMutablePointer(to: &pairs) { _ = MHD_get_connection_values_n(connection, kind, collectPair, $0) }
    return pairs
}

/// `MHD_KeyValueIteratorN`: appends one decoded pair to the `[(String, String)]` behind `cls`.
private func collectPair(
    _ cls: UnsafeMutableRawPointer?, _ kind: MHD_ValueKind, _ key: UnsafePointer<CChar>?, _ keySize: Int,
    _ value: UnsafePointer<CChar>?, _ valueSize: Int
) -> MHD_Result {
    guard let cls else { return .NO }
    let pairs = cls.assumingMemoryBound(to: [(String, String)].self)
    pairs.pointee.append((utf8(key, keySize), utf8(value, valueSize)))
    return .YES
}

private func utf8(_ pointer: UnsafePointer<CChar>?, _ count: Int) -> String {
    guard let pointer, count > 0 else { return "" }
    return String(decoding: UnsafeRawBufferPointer(start: pointer, count: count), as: UTF8.self)
}

private func remoteAddress(_ connection: OpaquePointer) -> String {
    guard let info = cmhd_get_connection_info(connection, .CONNECTION_INFO_CLIENT_ADDRESS),
        let address = info.pointee.client_addr
    else { return "" }
    var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
    let ok: Bool
    switch Int32(address.pointee.sa_family) {
    case AF_INET:
        ok = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
            inet_ntop(AF_INET, &v4.pointee.sin_addr, &text, socklen_t(text.count)) != nil
        }
    case AF_INET6:
        ok = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
            inet_ntop(AF_INET6, &v6.pointee.sin6_addr, &text, socklen_t(text.count)) != nil
        }
    default:
        ok = false
    }
    guard ok, let end = text.firstIndex(of: 0) else { return "" }
    return String(decoding: text[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func contentLength(_ head: RequestHead) -> Int? {
    head.headers["content-length"].flatMap { Int($0) }
}

private func bodyExpected(_ head: RequestHead) -> Bool {
    (contentLength(head) ?? 0) > 0 || head.headers["transfer-encoding"]?.lowercased().contains("chunked") == true
}

extension ServerResponse {
    /// The same response with `Connection: close`.
    func closing() -> ServerResponse {
        var copy = self
        copy.headers.append(Header("Connection", "close"))
        return copy
    }
}
