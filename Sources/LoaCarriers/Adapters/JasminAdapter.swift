import Foundation
import LoaCore

/// Jasmin SMS gateway's HTTP API (Jasmin docs, "HTTP API": `/send`, and "Receiving DLR").
///
/// `/send?username&password&to&from&coding&content|hex-content&dlr=yes&dlr-url&dlr-level=3&dlr-method=POST`.
/// `to` is the E.164 number without `+`. GSM-7 messages go as `coding=0` with `content` (UTF-8 on the wire,
/// Jasmin converts); UCS-2 ones as `coding=8` with `hex-content`, the text as UTF-16BE in upper-case hex, and
/// no `content`. Receipts are asked for at level 3 (SMSC acknowledgement and final state) by POST: with GET,
/// Jasmin appends `?id=…` to the dlr-url and Loa's own query string (`k`, `m`) would not survive.
/// With `usePOST` the same fields go `application/x-www-form-urlencoded` in the body.
///
/// Answers (Jasmin `jasmin/protocols/http/errors.py`):
///
/// | answer | class |
/// |---|---|
/// | 200 `Success "<id>"` | accepted, gateway id `<id>` |
/// | 200 anything else | temporary |
/// | 400 (argument validation, interceptor refusal) | permanent |
/// | 403 `Error "User throughput exceeded"` | throttled |
/// | 403 other (authentication, charging/balance) | unauthorized: the message waits without spending an attempt, the breaker opens |
/// | 412 `Error "No route found"` | permanent |
/// | 412 other (`Failover route has no bound connectors`) | temporary |
/// | 429, 503 | throttled, waiting what the rate-limit headers say |
/// | other 4xx, 5xx, connection refused, timeout, reset | temporary |
///
/// Receipts: Jasmin POSTs form fields to the dlr-url; Loa's receipt endpoint merges them with the URL's query,
/// hands them to ``parseReceipt(_:)`` and answers `ACK/Jasmin` (otherwise Jasmin retries the receipt).
public struct JasminAdapter: OneExchangeAdapter {
    public let name: String
    public let sendURL: String
    public let username: String
    let password: String
    public let timeout: Double
    /// POST the fields form-encoded instead of a GET query string.
    public let usePOST: Bool
    public let engine: CurlEngine

    /// The carrier's proxy, or nil for none (``HTTPRequest/proxy``).
    public let proxy: String?

    /// The carrier's secrets, masked in every answer before it becomes a detail.
    let mask: SecretMask

    public init(name: String, sendURL: String, username: String, password: String, timeout: Double, engine: CurlEngine, usePOST: Bool = false,
                proxy: String? = nil, receiptSecret: String? = nil) {
        self.mask = SecretMask(secrets: [password] + (receiptSecret.map { [$0] } ?? []), proxy: proxy)
        self.proxy = proxy
        self.name = name
        self.sendURL = sendURL
        self.username = username
        self.password = password
        self.timeout = timeout
        self.engine = engine
        self.usePOST = usePOST
    }

    /// The request for one message (exposed for tests).
    public func request(for m: OutgoingSMS) -> HTTPRequest {
        var q = URLQuery()
        q.add("username", username)
        q.add("password", password)
        q.add("to", m.to.hasPrefix("+") ? String(m.to.dropFirst()) : m.to)
        q.add("from", m.from)
        switch m.encoding {
        case .gsm7:
            q.add("coding", "0")
            q.add("content", m.text)
        case .ucs2:
            q.add("coding", "8")
            q.add("hex-content", JasminAdapter.utf16BEHex(m.text))
        }
        q.add("dlr", "yes")
        q.add("dlr-url", m.receiptURL)
        q.add("dlr-level", "3")
        q.add("dlr-method", "POST")
        if usePOST {
            return HTTPRequest(method: "POST", url: sendURL, headers: [HTTPHeader("Content-Type", "application/x-www-form-urlencoded")],
                               body: Array(q.encoded.utf8), timeout: timeout).atMostOnce().readingHeaders(adapterResponseHeaders).via(proxy)
        }
        let sep = sendURL.contains("?") ? "&" : "?"
        return HTTPRequest(method: "GET", url: sendURL + sep + q.encoded, timeout: timeout).atMostOnce().readingHeaders(adapterResponseHeaders).via(proxy)
    }

    /// `text` as UTF-16 big-endian code units in upper-case hex (`"Đ"` → `"0110"`).
    public static func utf16BEHex(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf16.count * 4)
        for u in text.utf16 {
            out.append(hex[Int(u >> 12)])
            out.append(hex[Int(u >> 8 & 0xF)])
            out.append(hex[Int(u >> 4 & 0xF)])
            out.append(hex[Int(u & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public func outcome(of result: Result<HTTPResponse, TransportError>, for message: OutgoingSMS) -> GatewayOutcome {
        switch result {
        case .success(let r):
            // Masked before classify cuts the text: a secret cut in two would no longer match.
            scrubbed(JasminAdapter.classify(status: r.status, body: mask.apply(String(r.bodyText.prefix(4096))), retryAfter: r.rateLimitWait), message)
        case .failure(let error):
            mask.apply(.transport(error))
        }
    }

    /// Jasmin's answers never echo the password or the text; this makes sure of it for anything in between.
    func scrubbed(_ o: GatewayOutcome, _ m: OutgoingSMS) -> GatewayOutcome {
        func s(_ d: String) -> String {
            var d = mask.apply(d)
            if m.text.count >= 4 { d = d.replacing(m.text, with: "<text>") }
            return d
        }
        return o.mapDetail(s)
    }

    public static func classify(status: Int, body: String, retryAfter: String?) -> GatewayOutcome {
        let text = String(body.prefix(200)).trimmingCharacters(in: .whitespacesAndNewlines)
        let retry = retryAfter.flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        switch status {
        case 200:
            // Success "07033084-5cfd-4812-90a4-e4d24ffb6e3d"
            if text.hasPrefix("Success \""), text.hasSuffix("\""), text.count > 10 {
                return .accepted(gatewayID: String(text.dropFirst(9).dropLast()), detail: nil)
            }
            return .temporary("HTTP 200: unrecognized answer: \(text)")
        case 400: return .permanent("HTTP 400: \(text)")
        case 403:
            if text.localizedCaseInsensitiveContains("throughput") { return .throttled(retryAfter: retry, "HTTP 403: \(text)") }
            return .unauthorized("HTTP 403: gateway refused the user (credentials, balance or permissions): \(text)")
        case 412:
            if text.localizedCaseInsensitiveContains("no route found") { return .permanent("HTTP 412: \(text)") }
            return .temporary("HTTP 412: \(text)")
        case 429, 503: return .throttled(retryAfter: retry, "HTTP \(status): \(text)")
        default: return .temporary("HTTP \(status): \(text)")
        }
    }

    /// Reads one Jasmin receipt from its form fields merged with the dlr-url's query.
    ///
    /// Level 1 (`message_status` = the SMSC's submit_sm_resp): `ESME_ROK` → smsc-accepted, any other `ESME_*`
    /// → smsc-rejected. Level 2 (the SMSC's delivery receipt, `stat`): `DELIVRD` → delivered, `ACCEPTD` →
    /// smsc-accepted, `ENROUTE` → buffered, `EXPIRED` → expired (the message ends `expired`: the network dropped
    /// it at the end of its validity period), `UNDELIV`/`DELETED`/`UNKNOWN` → undelivered, `REJECTD` → smsc-rejected
    /// (both end `failed`, the word and `err` as the reason, e.g. `UNDELIV err 011`). The key is `m` (Loa's id in the dlr-url) when it is a number, else Jasmin's `id`. The
    /// `text` field (the message's first characters) is never read.
    public static func parseReceipt(_ fields: [String: String]) -> Result<InboundReceipt, ReceiptParseError> {
        let loaID = fields["m"].flatMap { Int64($0) }
        let id = fields["id"].flatMap { $0.isEmpty ? nil : $0 }
        guard loaID != nil || id != nil else { return .failure(ReceiptParseError(field: "id", reason: "missing")) }
        guard let status = fields["message_status"], !status.isEmpty else {
            return .failure(ReceiptParseError(field: "message_status", reason: "missing"))
        }
        let level = fields["level"]
        guard level == nil || ["1", "2", "3"].contains(level!) else {
            return .failure(ReceiptParseError(field: "level", reason: "unknown level '\(level!.prefix(20))'"))
        }
        let key: InboundReceipt.Key = loaID.map { .loa($0) } ?? .gateway(id!)
        let shown = String(status.prefix(40))
        let receiptStatus: ReceiptStatus
        var detail = shown
        if status.hasPrefix("ESME_") {
            receiptStatus = status == "ESME_ROK" ? .smscAccepted : .smscRejected
        } else {
            guard level != "1" else {
                return .failure(ReceiptParseError(field: "message_status", reason: "unknown level 1 status '\(shown)'"))
            }
            switch status {
            case "DELIVRD": receiptStatus = .delivered
            case "ACCEPTD": receiptStatus = .smscAccepted
            case "ENROUTE": receiptStatus = .buffered
            case "EXPIRED": receiptStatus = .expired
            case "UNDELIV", "DELETED", "UNKNOWN": receiptStatus = .undelivered
            case "REJECTD": receiptStatus = .smscRejected
            default: return .failure(ReceiptParseError(field: "message_status", reason: "unknown status '\(shown)'"))
            }
            if let err = fields["err"], !err.isEmpty { detail += " err \(err.prefix(20))" }
        }
        return .success(InboundReceipt(key: key, status: receiptStatus, gatewayID: id, detail: detail))
    }
}
