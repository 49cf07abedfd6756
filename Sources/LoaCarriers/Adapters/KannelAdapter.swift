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
///
/// ``KannelOptions`` add `smsc`, `priority`, `deferred` and `validity` (query parameters for GET, the
/// `X-Kannel-SMSC`, `X-Kannel-Priority`, `X-Kannel-Deferred`, `X-Kannel-Validity` headers for POST: the names
/// smsbox.c's `get_x_kannel_from_headers` compares, case-insensitively, in Kannel 1.4.5).
public struct KannelAdapter: OneExchangeAdapter {
    /// The send URL, credentials, method, timeout, proxy, secret mask and validity clock (shared with Jasmin's).
    public let link: GatewayLink
    public let options: KannelOptions

    public var name: String { link.name }
    public var sendsmsURL: String { link.url }
    public var username: String { link.username }
    public var timeout: Double { link.timeout }
    /// GET with query parameters, or POST with `X-Kannel-*` headers and the text as the body.
    public var usePOST: Bool { link.usePOST }
    public var engine: CurlEngine { link.engine }
    public var proxy: String? { link.proxy }

    public init(name: String, sendsmsURL: String, username: String, password: String, timeout: Double, engine: CurlEngine, usePOST: Bool = false,
                proxy: String? = nil, receiptSecret: String? = nil, options: KannelOptions = KannelOptions(),
                clock: any TimeSource = SystemTimeSource()) {
        self.options = options
        self.link = GatewayLink(name: name, url: sendsmsURL, username: username, password: password, timeout: timeout, engine: engine,
                                usePOST: usePOST, proxy: proxy, receiptSecret: receiptSecret, validity: options.validity, clock: clock)
    }

    /// The request for one message (exposed for tests).
    public func request(for m: OutgoingSMS) -> HTTPRequest {
        if usePOST {
            // Kannel's POST interface: parameters as X-Kannel-* headers, the text as the body in the
            // Content-Type's charset.
            var headers = [HTTPHeader("X-Kannel-Username", username), HTTPHeader("X-Kannel-Password", link.password),
                           HTTPHeader("X-Kannel-From", m.from), HTTPHeader("X-Kannel-To", m.to),
                           HTTPHeader("X-Kannel-DLR-Mask", "31"), HTTPHeader("X-Kannel-DLR-Url", m.receiptURL),
                           HTTPHeader("Content-Type", "text/plain; charset=UTF-8")]
            if m.encoding == .ucs2 { headers.append(HTTPHeader("X-Kannel-Coding", "2")) }
            for (name, value) in optionFields(m) { headers.append(HTTPHeader("X-Kannel-" + name.header, value)) }
            return link.post(headers: headers, body: Array(m.text.utf8))
        }
        var q = URLQuery()
        q.add("username", username)
        q.add("password", link.password)
        q.add("from", m.from)
        q.add("to", m.to)
        q.add("text", m.text)
        if m.encoding == .ucs2 { q.add("coding", "2") }
        q.add("charset", "UTF-8")
        q.add("dlr-mask", "31")
        q.add("dlr-url", m.receiptURL)
        for (name, value) in optionFields(m) { q.add(name.query, value) }
        return link.get(q)
    }

    /// The options' fields for `m`, each by its query and its header name.
    func optionFields(_ m: OutgoingSMS) -> [(name: (query: String, header: String), value: String)] {
        var out: [(name: (query: String, header: String), value: String)] = []
        if let smsc = options.smsc { out.append((("smsc", "SMSC"), smsc)) }
        if let p = options.priority { out.append((("priority", "Priority"), String(p))) }
        if let d = options.deferredMinutes { out.append((("deferred", "Deferred"), String(d))) }
        if let minutes = link.validityMinutes(m) { out.append((("validity", "Validity"), String(minutes))) }
        return out
    }

    public func outcome(of result: Result<HTTPResponse, TransportError>, for message: OutgoingSMS) -> GatewayOutcome {
        link.outcome(of: result) { KannelAdapter.classify(status: $0, body: $1, retryAfter: $2) }
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

/// Kannel sendsms options of one carrier (config keys `smsc`, `priority`, `deferred_minutes`, `validity`).
public struct KannelOptions: Sendable, Equatable {
    /// The smsc-id Kannel routes the messages to (`smsc`); nil: Kannel's own routing.
    public var smsc: String?
    /// Kannel's `priority`, 0 (lowest) to 3 (smsbox refuses other values).
    public var priority: Int?
    /// Kannel's `deferred`: the SMSC holds each message this many minutes before delivering it.
    public var deferredMinutes: Int?
    /// Pass the minutes left until the campaign's deadline as Kannel's `validity` (the SMSC drops what it could not
    /// deliver by then, and its receipt says EXPIRED, instead of delivering it late).
    public var validity = true

    public init(smsc: String? = nil, priority: Int? = nil, deferredMinutes: Int? = nil, validity: Bool = true) {
        self.smsc = smsc
        self.priority = priority
        self.deferredMinutes = deferredMinutes
        self.validity = validity
    }
}

/// The validity period a gateway is given from ``OutgoingSMS/validUntil``.
public enum ValidityPeriod {
    /// Whole minutes left until `validUntil`, rounded down (a gateway must never hold a message past the
    /// deadline), at least 1 (0 means "no validity" to Kannel and Jasmin); nil when there is no deadline.
    ///
    /// | left | minutes |
    /// |---|---|
    /// | 30 s | 1 |
    /// | 119.9 s | 1 |
    /// | 120 s | 2 |
    /// | 90 min | 90 |
    public static func minutesLeft(until validUntil: UnixMillis?, now: UnixMillis) -> Int? {
        guard let validUntil else { return nil }
        let left = validUntil - now
        return Int(max(1, min(left / 60_000, 10 * 366 * 24 * 60)))
    }
}

/// Kannel's delivery reports, as its smsbox calls Loa's dlr-url
/// `…/dlr/<carrier>?k=<secret>&st=%d&ts=%T&fc=%F&ans=%A&id=<Loa's message id>` (read from Kannel 1.4.4/1.4.5's
/// source: `gw/dlr.h`, `gw/dlr.c`, `gw/bb_smscconn.c`, `gw/smsc/smsc_smpp.c`, `gw/urltrans.c`).
///
/// - `%d` (`st`) is the report's type, a bit set (`gw/dlr.h`): 1 `DLR_SUCCESS`, 2 `DLR_FAIL`, 4 `DLR_BUFFERED`,
///   8 `DLR_SMSC_SUCCESS`, 16 `DLR_SMSC_FAIL`, and `DLR_EXPIRED` = 0x20|`DLR_FAIL` = **34**, `DLR_UNKNOWN` =
///   0x40|`DLR_FAIL` = 66. Kannel's SMPP module maps the SMSC's `message_state` or the receipt text's `stat:`
///   word: DELIVRD → 1; ACCEPTD, ENROUTE (and ACKED, BUFFRED, BUFFERD) → 4; EXPIRED → 34 (receipts with a
///   `message_state` TLV) or 2 (text only); UNDELIV, DELETED, UNKNOWN, REJECTD and anything else → 2.
///   8 and 16 come from Kannel itself when the SMSC answers the submit (`submit_sm_resp`).
/// - `%F` (`fc`, its name kept from an older reading) is the message's **foreign id**, the SMSC's message id
///   (`msg->sms.foreign_id`, set in `dlr_add` from the `submit_sm_resp`'s `message_id`), e.g. 8 hex digits. It
///   is the gateway id, never a reason. A multi-part message's parts are separate submits: each part's
///   receipts carry that part's id; the 8 comes once, with the last part's id.
/// - `%A` (`ans`) is the report's text: `ACK/` for 8, `NACK/<command_status>/<text>` for 16, and for the SMSC's
///   receipts its short message, `id:… sub:… dlvrd:… submit date:… done date:… stat:EXPIRED err:… text:…`.
/// - `%T` (`ts`) is the report's Unix time; `%I` would be Kannel's own message UUID, new on every report (Loa's id
///   travels in the URL instead).
///
/// | `st` | `stat:` in `%A` | receipt | message |
/// |---|---|---|---|
/// | 1 | DELIVRD (or none) | delivered | delivered |
/// | 2 | UNDELIV, DELETED, UNKNOWN, REJECTD, other word (or none) | undelivered, reason `UNDELIV err 001` | failed |
/// | 2 | EXPIRED | expired | expired |
/// | 34 (2+32) | EXPIRED (or none) | expired, reason `EXPIRED err 000` | expired |
/// | 66 (2+64) | UNKNOWN (or none) | undelivered | failed |
/// | 4 | ENROUTE, ACCEPTD, … | buffered, detail `ENROUTE err 000` | sent (event) |
/// | 8 | – (`ACK/`) | smsc-accepted | sent (event) |
/// | 16 | – (`NACK/0x0000000b/…`) | smsc-rejected, reason the NACK text | failed |
///
/// The stored detail is the `stat:` word and the `err:` code only (`EXPIRED err 000`), never the receipt's ids,
/// dates or message text, so that a report's reasons group.
extension KannelAdapter {
    /// Every bit Kannel 1.4.5 defines in a report's type.
    static let knownBits = 1 | 2 | 4 | 8 | 16 | 32 | 64

    /// Reads one Kannel delivery report from the dlr-url's query (already URL-decoded). Pure: no store, no clock.
    public static func parseReceipt(_ query: [String: String]) -> Result<InboundReceipt, ReceiptParseError> {
        guard let idText = query["id"], !idText.isEmpty else { return .failure(ReceiptParseError(field: "id", reason: "missing")) }
        guard let id = Int64(idText), id > 0 else {
            return .failure(ReceiptParseError(field: "id", reason: "not a message id: '\(shown(idText))'"))
        }
        guard let stText = query["st"], !stText.isEmpty else { return .failure(ReceiptParseError(field: "st", reason: "missing")) }
        guard let st = Int(stText), st > 0, st & ~knownBits == 0 else {
            return .failure(ReceiptParseError(field: "st", reason: "not a Kannel DLR type (bits 1, 2, 4, 8, 16, 32, 64, e.g. 34 for expired): '\(shown(stText))'"))
        }
        guard st & 3 != 3 else { return .failure(ReceiptParseError(field: "st", reason: "both delivered (1) and failed (2): '\(st)'")) }
        var gatewayID: String?
        if let fc = query["fc"], !fc.isEmpty, fc != "%F" {
            guard fc.utf8.count <= 64, fc.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                return .failure(ReceiptParseError(field: "fc", reason: "not an SMSC message id (%F): '\(shown(fc))'"))
            }
            gatewayID = fc
        }
        var stat: SMPPReceiptText?
        let answer = query["ans"].flatMap { $0 == "%A" ? nil : $0 } ?? ""
        switch SMPPReceiptText.parse(answer) {
        case .success(let s): stat = s
        case .failure(let e): return .failure(e)
        }
        let status: ReceiptStatus
        var detail: String? = stat.map { $0.detail }
        if st & 2 != 0 {
            // 34 is Kannel 1.4.5's EXPIRED; older Kannels and text-only receipts say 2 with stat:EXPIRED.
            status = st & 32 != 0 || stat?.word == "EXPIRED" ? .expired : .undelivered
            if detail == nil, st & 64 != 0 { detail = "UNKNOWN" }
        } else if st & 1 != 0 {
            status = .delivered
        } else if st & 16 != 0 {
            status = .smscRejected
            // NACK/<command_status>/<text>: Kannel's words for the SMSC's refusal (no ids in it).
            if detail == nil, answer.hasPrefix("NACK") { detail = shown(answer, 100) }
        } else if st & 8 != 0 {
            status = .smscAccepted
        } else if st & 4 != 0 {
            status = .buffered
        } else {
            // 32 or 64 alone: Kannel always sets 2 with them.
            return .failure(ReceiptParseError(field: "st", reason: "\(st) without the failure bit 2"))
        }
        return .success(InboundReceipt(key: .loa(id), status: status, gatewayID: gatewayID, detail: detail))
    }

    /// At most `limit` characters of a field for an error message, control characters shown as `?`.
    static func shown(_ s: String, _ limit: Int = 40) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.prefix(limit).map { $0.value < 0x20 || $0.value == 0x7F ? "?" : $0 }))
    }
}

/// The `stat:` word and `err:` code of an SMPP delivery receipt's text (SMPP 3.4 appendix B:
/// `id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:…`).
/// The fields may be separated by spaces or `+` (a form-encoded `%A` decoded without its `+` rule), and
/// only the part before `text:` is read: the message's first characters could spell `stat:` themselves.
public struct SMPPReceiptText: Sendable, Equatable {
    /// The receipt's state word, upper-cased (`DELIVRD`, `EXPIRED`, `UNDELIV`, `REJECTD`, `DELETED`, `UNKNOWN`,
    /// `ACCEPTD`, `ENROUTE`, or another SMSC's own).
    public var word: String
    /// The network error code (three characters in the spec), when given.
    public var err: String?

    public init(word: String, err: String?) {
        self.word = word
        self.err = err
    }

    /// What Loa stores as the receipt's detail: `EXPIRED err 000`.
    public var detail: String { err.map { "\(word) err \($0)" } ?? word }

    /// nil when the text has no `stat:` (Kannel's own `ACK/`, `NACK/…`, or an HTTP SMSC's answer); an error
    /// naming `ans` when `stat:` or `err:` is there but not a word.
    public static func parse(_ text: String) -> Result<SMPPReceiptText?, ReceiptParseError> {
        var head = Substring(text)
        if let t = head.range(of: "text:", options: .caseInsensitive) { head = head[..<t.lowerBound] }
        func value(_ key: String) -> Substring? {
            guard let r = head.range(of: key, options: .caseInsensitive) else { return nil }
            let rest = head[r.upperBound...].drop { $0 == " " || $0 == "+" }
            return rest.prefix { $0 != " " && $0 != "+" }
        }
        guard let w = value("stat:") else { return .success(nil) }
        guard (1...15).contains(w.count), w.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            return .failure(ReceiptParseError(field: "ans", reason: "stat: not a receipt state word: '\(KannelAdapter.shown(String(w)))'"))
        }
        var err: String?
        if let e = value("err:") {
            guard (1...8).contains(e.count), e.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
                return .failure(ReceiptParseError(field: "ans", reason: "err: not an error code: '\(KannelAdapter.shown(String(e)))'"))
            }
            err = String(e)
        }
        return .success(SMPPReceiptText(word: w.uppercased(), err: err))
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
