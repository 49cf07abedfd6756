/// What is known about a request once its header block has arrived.
public struct RequestHead: Sendable {
    public var method: String
    /// Percent-decoded path, without the query.
    public var path: String
    /// Decoded query arguments (`+` is a space, `%2B` a plus); for repeated names the last wins.
    public var query: [String: String]
    /// Every decoded query argument in order, repeats kept. Always set by ``HTTPServer``;
    /// optional so tests can build heads without it.
    public var rawQuery: [(String, String)]?
    /// Header names lowercased; repeated headers joined with ", ".
    public var headers: [String: String]
    /// The client's IP address (`127.0.0.1`, `::1`).
    public var remoteAddress: String

    public init(
        method: String, path: String, query: [String: String] = [:], rawQuery: [(String, String)]? = nil,
        headers: [String: String] = [:], remoteAddress: String = ""
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.rawQuery = rawQuery
        self.headers = headers
        self.remoteAddress = remoteAddress
    }

    /// The header called `name`, compared case-insensitively.
    public func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// A response to send. Named apart from LoaCarriers' `HTTPResponse`, which tests import too.
public struct ServerResponse: Sendable {
    /// One response header. `Content-Length` and `Transfer-Encoding` are set by the server and
    /// ignored here; `Connection: close` closes the connection after the response.
    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// 100...599; anything else is sent as 500.
    public var status: Int
    public var headers: [Header]
    public var body: [UInt8]
    /// Close the connection without answering (see ``abort``).
    public var abortsConnection = false
    /// A body made while it is sent (``ResponseStream``, chunked); `body` is then ignored.
    public var stream: (any ResponseStream)?

    public init(status: Int, headers: [Header] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// No answer at all: the server closes the connection instead of sending a response (the
    /// access handler returns `MHD_NO`, which makes libmicrohttpd close it). For fault injection
    /// (`loa gateway-sim --reset-rate`); usable from any route, including after the body was read.
    public static var abort: ServerResponse {
        var response = ServerResponse(status: 500)
        response.abortsConnection = true
        return response
    }

    /// `Content-Type: application/json`.
    public static func json(_ status: Int, _ body: [UInt8]) -> ServerResponse {
        ServerResponse(status: status, headers: [Header("Content-Type", "application/json")], body: body)
    }

    /// `Content-Type: text/plain; charset=utf-8`.
    public static func text(_ status: Int, _ s: String) -> ServerResponse {
        ServerResponse(status: status, headers: [Header("Content-Type", "text/plain; charset=utf-8")], body: Array(s.utf8))
    }
}

/// Receives a request body piece by piece, on the connection's thread; it may block.
///
/// If the client goes away mid-body, neither method is called again and the sink is released.
public protocol BodySink: AnyObject {
    /// One piece of the body (at most the connection's buffer, 32 KiB). Return a response to stop
    /// reading: the rest of the body is then discarded (up to 1 MiB, beyond that the connection
    /// is closed) and that response is sent.
    func consume(_ bytes: UnsafeRawBufferPointer) -> ServerResponse?
    /// The body is complete: the response to send.
    func finish() -> ServerResponse
}

/// How to handle a request, chosen by ``HTTPService/route(_:)`` from its head.
public enum Route {
    /// Answer without the body: it is read and discarded (beyond 1 MiB the connection is closed
    /// instead; with `Expect: 100-continue` it is never sent).
    case respond(ServerResponse)
    /// Answer at once without reading the body: a refusal (wrong secret, unknown carrier) must cost no
    /// memory and no time for a body nobody wants. With a body on the way the connection is closed
    /// after the answer (the client may then see a reset instead, if it is still sending).
    case refuse(ServerResponse)
    /// Collect the body in memory, up to `limit` bytes, then call `handler` on the connection's
    /// thread (it may block). Over the limit the client gets 413 and `handler` is not called.
    case buffer(limit: Int, handler: @Sendable (RequestHead, [UInt8]) -> ServerResponse)
    /// Hand the body to a sink as it arrives; it is never held whole.
    case stream(BodySink)
}

/// The application behind an ``HTTPServer``.
public protocol HTTPService: Sendable {
    /// Called once per request, on a server thread, when the head is known. May block.
    func route(_ head: RequestHead) -> Route
}

/// Why the server could not start.
public enum HTTPServerError: Error, Sendable, Equatable {
    /// `address` is not a numeric IPv4 or IPv6 address, or `port` is out of range.
    case invalidAddress(String)
    /// libmicrohttpd refused to start, with its own message (bind failure, limits).
    case startFailed(String)
}
