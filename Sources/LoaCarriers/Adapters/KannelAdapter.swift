import LoaCore

/// Kannel's smsbox `sendsms` HTTP interface (Kannel user guide, "Sending SMS messages via HTTP").
///
/// GET `/cgi-bin/sendsms?username&password&from&to&text&coding&charset&dlr-mask&dlr-url`. UCS-2 messages
/// go with `coding=2&charset=UTF-8` (without the charset Kannel garbles them); GSM-7 ones with `charset=UTF-8`
/// so Kannel converts characters such as `€` itself. `dlr-mask=31` asks for delivered, undelivered,
/// buffered, SMSC-accepted and SMSC-rejected receipts.
///
/// | answer | class |
/// |---|---|
/// | 202 `0: Accepted for delivery` | accepted |
/// | 202 `3: Queued for later delivery` | accepted (Kannel holds it until a link is up) |
/// | 400 (missing or bad parameter) | permanent |
/// | 401 / 403 (`Authorization failed`) | unauthorized: the message waits without spending an attempt, the breaker opens |
/// | 429, 503 | throttled, waiting what the rate-limit headers say |
/// | other 4xx | permanent |
/// | 5xx, connection refused, timeout, reset | temporary |
public struct KannelAdapter: OneExchangeAdapter {
    public let name: String
    public let sendsmsURL: String
    public let username: String
    let password: String
    public let timeout: Double
    /// GET with query parameters, or POST with `X-Kannel-*` headers and the text as the body.
    public let usePOST: Bool
    public let engine: CurlEngine

    /// The carrier's proxy, or nil for none (``HTTPRequest/proxy``).
    public let proxy: String?

    /// The carrier's secrets, masked in every answer before it becomes a detail (Kannel echoes the request when it
    /// refuses one: `Authorization failed for sendsms` pages carry the whole query string, password included).
    let mask: SecretMask

    public init(name: String, sendsmsURL: String, username: String, password: String, timeout: Double, engine: CurlEngine, usePOST: Bool = false,
                proxy: String? = nil, receiptSecret: String? = nil) {
        self.mask = SecretMask(secrets: [password] + (receiptSecret.map { [$0] } ?? []), proxy: proxy)
        self.proxy = proxy
        self.usePOST = usePOST
        self.name = name
        self.sendsmsURL = sendsmsURL
        self.username = username
        self.password = password
        self.timeout = timeout
        self.engine = engine
    }

    /// The request for one message (exposed for tests).
    public func request(for m: OutgoingSMS) -> HTTPRequest {
        if usePOST {
            // Kannel's POST interface: parameters as X-Kannel-* headers, the text as the body in the
            // Content-Type's charset.
            var headers = [HTTPHeader("X-Kannel-Username", username), HTTPHeader("X-Kannel-Password", password),
                           HTTPHeader("X-Kannel-From", m.from), HTTPHeader("X-Kannel-To", m.to),
                           HTTPHeader("X-Kannel-DLR-Mask", "31"), HTTPHeader("X-Kannel-DLR-Url", m.receiptURL),
                           HTTPHeader("Content-Type", "text/plain; charset=UTF-8")]
            if m.encoding == .ucs2 { headers.append(HTTPHeader("X-Kannel-Coding", "2")) }
            return HTTPRequest(method: "POST", url: sendsmsURL, headers: headers, body: Array(m.text.utf8), timeout: timeout).via(proxy)
                .atMostOnce().readingHeaders(adapterResponseHeaders)
        }
        var q = URLQuery()
        q.add("username", username)
        q.add("password", password)
        q.add("from", m.from)
        q.add("to", m.to)
        q.add("text", m.text)
        if m.encoding == .ucs2 { q.add("coding", "2") }
        q.add("charset", "UTF-8")
        q.add("dlr-mask", "31")
        q.add("dlr-url", m.receiptURL)
        let sep = sendsmsURL.contains("?") ? "&" : "?"
        return HTTPRequest(method: "GET", url: sendsmsURL + sep + q.encoded, timeout: timeout).atMostOnce().readingHeaders(adapterResponseHeaders).via(proxy)
    }

    public func outcome(of result: Result<HTTPResponse, TransportError>, for message: OutgoingSMS) -> GatewayOutcome {
        switch result {
        case .success(let response):
            // Masked before classify cuts the text: a secret cut in two would no longer match.
            mask.apply(KannelAdapter.classify(status: response.status, body: mask.apply(String(response.bodyText.prefix(4096))),
                                              retryAfter: response.rateLimitWait))
        case .failure(let error):
            mask.apply(.transport(error))
        }
    }

    public static func classify(status: Int, body: String, retryAfter: String?) -> GatewayOutcome {
        let text = (body.utf8.count <= 200 ? body : String(body.prefix(200))).trimmingSpaces()
        switch status {
        case 200...299:
            if text.hasPrefix("0:") || text.hasPrefix("3:") || text.isEmpty { return .accepted(gatewayID: nil, detail: text.isEmpty ? nil : text) }
            return .temporary("HTTP \(status): \(text)")
        case 401, 403: return .unauthorized("HTTP \(status): gateway refused the credentials: \(text)")
        case 429, 503: return .throttled(retryAfter: retryAfter.flatMap(Double.init), "HTTP \(status): \(text)")
        case 400...499: return .permanent("HTTP \(status): \(text)")
        default: return .temporary("HTTP \(status): \(text)")
        }
    }
}

/// Builds `application/x-www-form-urlencoded` query strings (RFC 3986 unreserved characters kept, space as %20).
public struct URLQuery: Sendable {
    private var parts: [String] = []
    public init() {}

    public mutating func add(_ name: String, _ value: String) {
        parts.append(URLQuery.escape(name) + "=" + URLQuery.escape(value))
    }

    public var encoded: String { parts.joined(separator: "&") }

    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        let hex: [Character] = Array("0123456789ABCDEF")
        for b in s.utf8 {
            switch b {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x2E, 0x5F, 0x7E:
                out.append(Character(Unicode.Scalar(b)))
            default:
                out.append("%")
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            }
        }
        return out
    }
}

import Foundation
