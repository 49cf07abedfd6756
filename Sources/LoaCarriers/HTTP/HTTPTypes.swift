/// One HTTP header field, in the order it was sent or received.
public struct HTTPHeader: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A request for ``CurlEngine``.
///
/// The body is sent as-is; when it is non-empty and no `Content-Type` header is given, none is
/// sent (libcurl would otherwise add `application/x-www-form-urlencoded`).
public struct HTTPRequest: Sendable {
    /// `GET`, `POST`, `PUT`, `DELETE` (any token is passed through).
    public var method: String
    /// An `http://` or `https://` URL. Other schemes fail with `.other`.
    public var url: String
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    /// Seconds for the whole transfer, connect included. Zero or less means no limit.
    public var timeout: Double
    /// Seconds to establish the connection. Zero or less means libcurl's default (300 s).
    public var connectTimeout: Double
    /// Never let libcurl resend this request by itself. libcurl resends a request whose reused keep-alive
    /// connection closed before any answer; for a non-idempotent gateway that can deliver an SMS twice. The
    /// pre-request callback refuses that second send and the request fails as `connectionLost`. Connections
    /// stay alive either way.
    public var atMostOnce = false
    /// The response headers the caller reads (names in any case), or nil for all of them. Named headers are
    /// looked up in libcurl's own store once the answer is in (`curl_easy_header`), under the names given
    /// here; with nil, libcurl hands every header line to the engine as it arrives. Naming them saves a call
    /// into Swift per header line and the decoding of headers nobody reads.
    public var responseHeaderNames: [String]? = nil
    /// The proxy to go through (`http://host:port`, `socks5h://…`; credentials in it are never logged), or nil
    /// for none. Either way libcurl's proxy environment variables (`http_proxy`, `ALL_PROXY`, …) are not read:
    /// traffic goes where the config says, and nowhere else.
    public var proxy: String? = nil

    public init(
        method: String = "GET", url: String, headers: [HTTPHeader] = [], body: [UInt8] = [],
        timeout: Double = 30, connectTimeout: Double = 5
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
    }
}

extension HTTPRequest {
    /// This request with ``atMostOnce`` set: what every adapter of a gateway without idempotency keys sends.
    public func atMostOnce(_ on: Bool = true) -> HTTPRequest {
        var r = self
        r.atMostOnce = on
        return r
    }

    /// This request through `proxy` (nil: none). See ``proxy``.
    public func via(_ proxy: String?) -> HTTPRequest {
        var r = self
        r.proxy = proxy
        return r
    }

    /// This request collecting only the response headers called `names` (see ``responseHeaderNames``).
    public func readingHeaders(_ names: [String]) -> HTTPRequest {
        var r = self
        r.responseHeaderNames = names
        return r
    }
}

/// A complete response: any status is a response, not an error.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Headers of the final response (those of a `100 Continue` are dropped).
    public var headers: [HTTPHeader]
    public var body: [UInt8]

    public init(status: Int, headers: [HTTPHeader] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The body decoded as UTF-8, invalid sequences replaced.
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// The first header called `name`, compared case-insensitively (ASCII).
    public func header(_ name: String) -> String? {
        headers.first { asciiCaseInsensitiveEqual($0.name, name) }?.value
    }
}

/// Why a request got no HTTP response. The cases say whether a retry can duplicate work.
public enum TransportError: Error, Sendable, Equatable {
    /// Nothing reached the server (refused, unresolvable, connect or TLS handshake failed or
    /// timed out): always safe to retry.
    case couldNotConnect(String)
    /// The transfer ran out of time after the request was sent: it may have reached the server.
    case timedOut(String)
    /// The connection was reset or closed mid-exchange: the request may have reached the server.
    case connectionLost(String)
    /// Any other libcurl failure, with libcurl's `CURLcode`. Task cancellation is reported as
    /// `CURLE_ABORTED_BY_CALLBACK` (42), see ``isCancellation``.
    case other(code: Int, message: String)
    /// The engine was shut down before the request completed.
    case shutdown
    /// The request was never sent: its submitter's gate refused it on the engine thread, before its handle was
    /// added or in libcurl's pre-request callback, just before the first byte would have left (a node of a
    /// cluster whose lease ended: ``CurlEngine/start(_:round:gate:completion:)``). Always safe to send again.
    case fenced(String)

    /// libcurl's `CURLE_ABORTED_BY_CALLBACK`, used for requests whose task was cancelled.
    public static let cancelledCode = 42
    /// libcurl's `CURLE_URL_MALFORMAT` and `CURLE_BAD_FUNCTION_ARGUMENT`: the request could not be built.
    public static let malformedURLCode = 3
    public static let badArgumentCode = 43

    /// True when the calling task was cancelled (the request may have reached the server).
    public var isCancellation: Bool {
        if case .other(let code, _) = self { return code == Self.cancelledCode }
        return false
    }
}

extension TransportError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .couldNotConnect(let m): "could not connect: \(m)"
        case .timedOut(let m): "timed out: \(m)"
        case .connectionLost(let m): "connection lost: \(m)"
        case .other(let code, let m): "curl error \(code): \(m)"
        case .shutdown: "HTTP engine shut down"
        case .fenced(let m): "not sent: \(m)"
        }
    }
}

/// `url` without credentials: user info becomes `***`, the query becomes `?***`, the fragment
/// is dropped. Used for every error message, since query strings may carry API keys.
func redactedURL(_ url: String) -> String {
    var s = Substring(url)
    if let hash = s.firstIndex(of: "#") { s = s[..<hash] }
    var query = false
    if let q = s.firstIndex(of: "?") {
        s = s[..<q]
        query = true
    }
    var result = String(s)
    if let scheme = result.firstRange(of: "://") {
        let authorityStart = scheme.upperBound
        let authorityEnd = result[authorityStart...].firstIndex(of: "/") ?? result.endIndex
        if let at = result[authorityStart..<authorityEnd].lastIndex(of: "@") {
            result.replaceSubrange(authorityStart..<at, with: "***")
        }
    }
    return query ? result + "?***" : result
}

/// Removes the parts of `url` that `redactedURL` hides from a message libcurl produced.
func scrub(_ message: String, url: String) -> String {
    var message = message
    var secrets: [Substring] = []
    if let q = url.firstIndex(of: "?") {
        let end = url[q...].firstIndex(of: "#") ?? url.endIndex
        secrets.append(url[url.index(after: q)..<end])
    }
    if let scheme = url.firstRange(of: "://") {
        let end = url[scheme.upperBound...].firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? url.endIndex
        if let at = url[scheme.upperBound..<end].lastIndex(of: "@") {
            secrets.append(url[scheme.upperBound..<at])
        }
    }
    for secret in secrets where !secret.isEmpty {
        message = message.replacing(secret, with: "***")
    }
    return message
}

func asciiCaseInsensitiveEqual(_ a: String, _ b: String) -> Bool {
    // Every request compares header names: over the bytes in place when both are contiguous (native strings
    // are), not through two UTF-8 views zipped.
    a.utf8.withContiguousStorageIfAvailable { x in
        b.utf8.withContiguousStorageIfAvailable { y in asciiCaseInsensitiveEqual(x, y) }
    }.flatMap { $0 } ?? asciiCaseInsensitiveEqual(a.utf8, b.utf8)
}

func asciiCaseInsensitiveEqual(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    return zip(a, b).allSatisfy { x, y in
        x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= UInt8(ascii: "a") && (x | 0x20) <= UInt8(ascii: "z"))
    }
}
