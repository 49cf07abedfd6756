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
/// ``JasminOptions``: `validity` passes the minutes left until the campaign's deadline as `validity-period`
/// (Jasmin sets the submit_sm's validity_period to now + that many minutes; the user needs the
/// `set_validity_period` authorization). `max_parts` is Jasmin's `long_content_max_parts` (5 by default in
/// 0.11.0, `[http-api]` in jasmin.cfg): Jasmin sends only that many parts of a longer message and drops the rest
/// in silence, so such a message fails here, permanently, before it is sent (``refusal(for:)``).
///
/// GSM-7 part boundaries: Jasmin converts `content` to GSM 03.38 bytes (an extension character such as `€`
/// is two: 0x1B and its code) and cuts a long message every 153 bytes, blind to escapes
/// (`SMPPOperationFactory.SubmitSM` in `jasmin/protocols/smpp/operations.py`). When a cut falls between an
/// escape and its code the handset shows the wrong characters. Loa's own split never cuts a pair, so Loa checks
/// Jasmin's cut (``JasminAdapter/escapeCut(_:)``) and sends such a message as UCS-2 (`coding=8`): the text
/// arrives whole, at the price of more parts (counted against `max_parts` too). The message's stored segment
/// count stays Loa's GSM-7 count.
///
/// Receipts: Jasmin POSTs form fields to the dlr-url; Loa's receipt endpoint merges them with the URL's query,
/// hands them to ``parseReceipt(_:)`` and answers `ACK/Jasmin` (otherwise Jasmin retries the receipt).
public struct JasminAdapter: OneExchangeAdapter {
    /// The send URL, credentials, method, timeout, proxy, secret mask and validity clock (shared with Kannel's).
    public let link: GatewayLink
    public let options: JasminOptions

    public var name: String { link.name }
    public var sendURL: String { link.url }
    public var username: String { link.username }
    public var timeout: Double { link.timeout }
    /// POST the fields form-encoded instead of a GET query string.
    public var usePOST: Bool { link.usePOST }
    public var engine: CurlEngine { link.engine }
    public var proxy: String? { link.proxy }

    public init(name: String, sendURL: String, username: String, password: String, timeout: Double, engine: CurlEngine, usePOST: Bool = false,
                proxy: String? = nil, receiptSecret: String? = nil, options: JasminOptions = JasminOptions(),
                clock: any TimeSource = SystemTimeSource()) {
        self.options = options
        self.link = GatewayLink(name: name, url: sendURL, username: username, password: password, timeout: timeout, engine: engine,
                                usePOST: usePOST, proxy: proxy, receiptSecret: receiptSecret, validity: options.validity, clock: clock)
    }

    /// The request for one message (exposed for tests).
    public func request(for m: OutgoingSMS) -> HTTPRequest {
        var q = URLQuery()
        q.add("username", username)
        q.add("password", link.password)
        q.add("to", m.to.hasPrefix("+") ? String(m.to.dropFirst()) : m.to)
        q.add("from", m.from)
        switch JasminAdapter.wireEncoding(m) {
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
        if let minutes = link.validityMinutes(m) { q.add("validity-period", String(minutes)) }
        if usePOST {
            return link.post(headers: [HTTPHeader("Content-Type", "application/x-www-form-urlencoded")], body: Array(q.encoded.utf8))
        }
        return link.get(q)
    }

    /// The coding the message goes to Jasmin in: its own, except a GSM-7 text Jasmin would cut inside an escape
    /// pair, which goes as UCS-2 (see the type's comment).
    public static func wireEncoding(_ m: OutgoingSMS) -> SMSEncoding {
        m.encoding == .gsm7 && escapeCut(m.text) ? .ucs2 : m.encoding
    }

    /// The parts Jasmin sends `text` in, counted its way (0.11.0 `SubmitSM`): GSM-7 as GSM 03.38 bytes, one
    /// part up to 160, else 153 a part; UCS-2 as UTF-16 units, one part up to 70, else 67 a part. Before
    /// `long_content_max_parts` cuts it.
    ///
    /// | text | coding | Jasmin's parts | Loa's parts |
    /// |---|---|---|---|
    /// | 306 × `a` | gsm7 | 2 | 2 |
    /// | 152 × `a` + `€` + 153 × `b` | gsm7 | 3 (cut inside `€`) | 3 |
    /// | 152 × `a` + `€` + 152 × `b` | gsm7 | 2 (cut inside `€`) | 3 |
    public static func jasminParts(_ text: String, encoding: SMSEncoding) -> Int {
        let units: Int
        let (single, part): (Int, Int)
        switch encoding {
        case .gsm7:
            units = text.unicodeScalars.reduce(0) { $0 + (GSM7.cost($1) ?? 1) }
            (single, part) = (160, 153)
        case .ucs2:
            units = text.utf16.count
            (single, part) = (70, 67)
        }
        return units <= single ? 1 : (units + part - 1) / part
    }

    /// The parts Jasmin sends a message of `text` in `encoding` as, after Loa's escape fallback to UCS-2.
    public static func partsSent(_ text: String, encoding: SMSEncoding) -> Int {
        jasminParts(text, encoding: encoding == .gsm7 && escapeCut(text) ? .ucs2 : encoding)
    }

    /// True when Jasmin's cut of GSM-7 `text` every 153 bytes falls between an escape and its code.
    public static func escapeCut(_ text: String) -> Bool {
        var offset = 0
        var cut = false
        for s in text.unicodeScalars {
            let cost = GSM7.cost(s) ?? 1
            // The escape at byte `offset`, its code at `offset + 1`: cut when the escape ends a 153-byte part.
            if cost == 2 && (offset + 1) % 153 == 0 { cut = true }
            offset += cost
        }
        return cut && offset > 160
    }

    /// Fails a message Jasmin would cut to `max_parts` parts (it would report the rest delivered).
    public func refusal(for message: OutgoingSMS) -> GatewayOutcome? {
        let encoding = JasminAdapter.wireEncoding(message)
        let parts = JasminAdapter.partsSent(message.text, encoding: message.encoding)
        guard parts > options.maxParts else { return nil }
        return .permanent("message too long for this carrier: \(parts) parts as Jasmin splits it\(encoding != message.encoding ? " (sent as UCS-2)" : ""), "
                          + "Jasmin sends at most \(options.maxParts) (max_parts, Jasmin's long_content_max_parts) and drops the rest")
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
            scrubbed(JasminAdapter.classify(status: r.status, body: link.mask.apply(String(r.bodyText.prefix(4096))), retryAfter: r.rateLimitWait), message)
        case .failure(let error):
            link.mask.apply(.transport(error))
        }
    }

    /// Jasmin's answers never echo the password or the text; this makes sure of it for anything in between.
    func scrubbed(_ o: GatewayOutcome, _ m: OutgoingSMS) -> GatewayOutcome {
        func s(_ d: String) -> String {
            var d = link.mask.apply(d)
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

/// Jasmin options of one carrier (config keys `validity`, `max_parts`).
public struct JasminOptions: Sendable, Equatable {
    /// Pass the minutes left until the campaign's deadline as `validity-period`.
    public var validity = true
    /// Jasmin's `long_content_max_parts` (jasmin.cfg `[http-api]`, 5 by default).
    public var maxParts = 5

    public init(validity: Bool = true, maxParts: Int = 5) {
        self.validity = validity
        self.maxParts = maxParts
    }
}
