import Foundation
import LoaCarriers
import LoaCore
import LoaServer

/// The three gateway shapes: request parsing and validation, answers, and receipt formats.
extension GatewaySimService {
    /// Kannel smsbox `sendsms`: GET query, or POST with `X-Kannel-*` headers and the text as the body.
    /// https://www.kannel.org/download/1.4.5/userguide-1.4.5/userguide.html#AEN4623
    func kannel(_ head: RequestHead, body: [UInt8]?) -> ServerResponse {
        ledger.count(.request)
        func arg(_ name: String) -> String? {
            if body != nil { return head.header("x-kannel-" + name) }
            return head.query[name]
        }
        if let user = config.username, arg("username") != user || arg("password") != config.password {
            ledger.count(.rejected)
            return text(403, "Authorization failed for sendsms")
        }
        let to = arg("to") ?? ""
        let message = body.map { String(decoding: $0, as: UTF8.self) } ?? head.query["text"] ?? ""
        guard !to.isEmpty else { ledger.count(.rejected); return text(400, "Missing receiver number for message") }
        guard !message.isEmpty else { ledger.count(.rejected); return text(400, "Missing text for message") }
        var plan = SimReceiptPlan.none
        if let url = arg("dlr-url"), !url.isEmpty {
            let mask = arg("dlr-mask").flatMap { Int($0) } ?? 0
            plan = .kannel(url: url, mask: mask == 0 ? 3 : mask, from: arg("from") ?? "", to: to, text: message)
        }
        let ref = arg("dlr-url").flatMap { queryValue($0, "id") } ?? "-"
        // Kannel's `validity`: minutes the SMSC should try (X-Kannel-Validity for POST).
        let valid = arg("validity").flatMap { Int64($0) }.flatMap { (0...10_000_000).contains($0) ? $0 * 60_000 : nil }
        return serve(.kannel, [Incoming(to: digits(to), ref: ref, plan: plan, validForMillis: valid)], Answers(
            accepted: { _ in self.text(202, "0: Accepted for delivery") },
            throttled: text(429, "Too many requests"),
            error: text(config.errorStatus, "Temporary failure, try again later")))
    }

    /// Jasmin's HTTP API `/send`. https://docs.jasminsms.com/en/latest/apis/ja-http/index.html#send-sms
    func jasmin(_ head: RequestHead, form: [(String, String)]) -> ServerResponse {
        ledger.count(.request)
        let args = Dictionary(form, uniquingKeysWith: { _, last in last })
        func mandatory(_ name: String) -> ServerResponse {
            ledger.count(.rejected)
            return text(400, "Error \"Mandatory argument [\(name)] is not found.\"")
        }
        guard let user = args["username"] else { return mandatory("username") }
        guard let password = args["password"] else { return mandatory("password") }
        if let u = config.username, user != u || password != config.password {
            ledger.count(.rejected)
            return text(403, "Error \"Authentication failure for username:\(user)\"")
        }
        guard let to = args["to"], !to.isEmpty else { return mandatory("to") }
        let content: String
        if let c = args["content"] {
            content = c
        } else if let h = args["hex-content"], let bytes = hexDecode(h) {
            content = String(decoding: bytes, as: UTF8.self)
        } else {
            return mandatory("content")
        }
        var plan = SimReceiptPlan.none
        if let dlr = args["dlr"]?.lowercased(), dlr == "yes" || dlr == "1" {
            guard let url = args["dlr-url"], !url.isEmpty else { return mandatory("dlr-url") }
            let level = args["dlr-level"].flatMap { Int($0) } ?? 1
            guard (1...3).contains(level) else {
                ledger.count(.rejected)
                return text(400, "Error \"Argument [dlr-level] has an invalid value: [\(args["dlr-level"] ?? "")].\"")
            }
            plan = .jasmin(url: url, level: level, post: args["dlr-method"]?.uppercased() == "POST", text: content)
        }
        let ref = args["dlr-url"].flatMap { queryValue($0, "id") } ?? "-"
        // Jasmin's `validity-period`: minutes.
        let valid = args["validity-period"].flatMap { Int64($0) }.flatMap { (0...10_000_000).contains($0) ? $0 * 60_000 : nil }
        return serve(.jasmin, [Incoming(to: digits(to), ref: ref, plan: plan, validForMillis: valid)], Answers(
            accepted: { ids in self.text(200, "Success \"\(ids[0])\"") },
            throttled: text(403, "Error \"User throughput exceeded\""),
            error: text(config.errorStatus, "Error \"Cannot send submit_sm\"")))
    }

    /// The generic JSON batch API `POST /api/sms` with a bearer token.
    func generic(_ head: RequestHead, body: [UInt8]) -> ServerResponse {
        ledger.count(.request)
        func fail(_ status: Int, _ error: String) -> ServerResponse {
            .json(status, Array("{\"status\":\"error\",\"error\":\(jsonString(error))}".utf8))
        }
        if let token = config.token, head.header("authorization") != "Bearer " + token {
            ledger.count(.rejected)
            return fail(401, "unauthorized")
        }
        // Loa's own parser, not JSONSerialization: bridging every member to Foundation objects cost the sim about
        // as much CPU per recipient as Loa's store spends on it, on the same two cores (Tests/Benchmarks/batch.sh).
        guard let object = JSONValue.parse(body), case .array(let list)? = object["messages"], !list.isEmpty
        else {
            ledger.count(.rejected)
            return fail(400, "body must be a JSON object with a non-empty messages array")
        }
        guard list.count <= config.maxBatch else {
            ledger.count(.rejected)
            return fail(400, "too many messages: at most \(config.maxBatch) per request")
        }
        var callback: String?
        if case .string(let url)? = object["callback_url"], !url.isEmpty { callback = url }
        /// Per message: its index in the request and its ref, or the reason it was rejected.
        var valid: [Incoming] = []
        var results: [(ref: String, rejected: String?)] = []
        valid.reserveCapacity(list.count)
        results.reserveCapacity(list.count)
        for m in list {
            var ref = ""
            switch m["ref"] {
            case .string(let s)?, .number(let s)?: ref = s
            default: break
            }
            var raw = ""
            if case .string(let s)? = m["to"] { raw = s }
            let to = raw.hasPrefix("+") ? String(raw.dropFirst()) : raw
            let ok = to.hasPrefix("84") && (11...12).contains(to.utf8.count) && to.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
            guard ok else { results.append((ref, "invalid number")); continue }
            guard case .string(let text)? = m["text"], !text.isEmpty else { results.append((ref, "missing text")); continue }
            results.append((ref, nil))
            var validFor: Int64?
            if case .number(let v)? = m["validity_seconds"], let seconds = Double(v), seconds >= 0, seconds < 1e9 { validFor = Int64(seconds * 1000) }
            valid.append(Incoming(to: to, ref: ref, plan: callback.map { .generic(url: $0, ref: ref, to: to) } ?? .none, validForMillis: validFor))
        }
        let rejectedCount = results.count - valid.count
        return serve(.generic, valid, Answers(
            accepted: { ids in
                if rejectedCount > 0 { self.ledger.count(.rejected, rejectedCount) }
                var out = "{\"status\":\"ok\",\"results\":["
                var next = 0
                for (i, r) in results.enumerated() {
                    if i > 0 { out += "," }
                    if let reason = r.rejected {
                        out += "{\"ref\":\(jsonString(r.ref)),\"status\":\"rejected\",\"error\":\(jsonString(reason))}"
                    } else {
                        out += "{\"ref\":\(jsonString(r.ref)),\"id\":\(jsonString(ids[next])),\"status\":\"queued\"}"
                        next += 1
                    }
                }
                return .json(200, Array((out + "]}").utf8))
            },
            throttled: fail(429, "rate limited"),
            error: fail(config.errorStatus, config.errorStatus == 503 ? "service unavailable" : "internal error")))
    }

    func text(_ status: Int, _ s: String) -> ServerResponse {
        ServerResponse(status: status, headers: [.init("Content-Type", "text/plain")], body: Array(s.utf8))
    }
}

/// The receipts one accepted message asks for, in the shape's format.
enum SimReceiptPlan: Sendable {
    case none
    /// Kannel: GET the dlr-url with `%d %T %F %A %p %P` substituted, once per status the mask asks for.
    case kannel(url: String, mask: Int, from: String, to: String, text: String)
    /// Jasmin DLRThrower: level 1 (`ESME_ROK`), 2 (final) or 3 (both), GET or POST form.
    case jasmin(url: String, level: Int, post: Bool, text: String)
    /// Generic: POST JSON to the callback URL.
    case generic(url: String, ref: String, to: String)

    /// `expired`: the message was dropped from the queue at its validity end (queue mode): only the final
    /// receipt, saying EXPIRED (Kannel: `%d` 34, DLR_FAIL with the expired bit, as Kannel 1.4.5 sends it).
    func receipts(id: String, number: Int, delivered: Bool, now: Int64, intermediate: Bool, expired: Bool = false,
                  failureText: String? = nil) -> [SimReceipt] {
        switch self {
        case .none:
            return []
        case .kannel(let url, let mask, let from, let to, let text):
            var statuses: [Int] = []
            if mask & 8 != 0 && !expired { statuses.append(8) }
            let final = expired ? 34 : delivered ? 1 : 2
            if mask & final != 0 { statuses.append(final) }
            let stat = expired ? "EXPIRED" : delivered ? "DELIVRD" : "UNDELIV"
            return statuses.map { st in
                let date = smppDate(now)
                let answer = st == 8 ? "ACK/"
                    : "id:\(id) sub:001 dlvrd:\(delivered ? "001" : "000") submit date:\(date) done date:\(date) "
                        + "stat:\(stat) err:\(delivered ? "000" : "001") text:\(String(text.prefix(20)))"
                let values: [Character: String] = ["d": String(st), "T": String(now), "F": id, "A": answer, "p": to, "P": from]
                return SimReceipt(request: HTTPRequest(url: kannelSubstitute(url, values), timeout: 10))
            }
        case .jasmin(let url, let level, let post, let text):
            var forms: [[(String, String)]] = []
            if (level == 1 || level == 3) && !expired { forms.append([("id", id), ("message_status", "ESME_ROK"), ("level", "1")]) }
            if level == 2 || level == 3 {
                let date = smppDate(now)
                forms.append([("id", id), ("id_smsc", String(number)), ("message_status", expired ? "EXPIRED" : delivered ? "DELIVRD" : "UNDELIV"),
                              ("level", "2"), ("subdate", date), ("donedate", date), ("sub", "001"),
                              ("dlvrd", delivered ? "001" : "000"), ("err", delivered ? "000" : "001"), ("text", String(text.prefix(20)))])
            }
            return forms.map { form in
                var q = URLQuery()
                for (k, v) in form { q.add(k, v) }
                let request = post
                    ? HTTPRequest(method: "POST", url: url, headers: [HTTPHeader("Content-Type", "application/x-www-form-urlencoded")],
                                  body: Array(q.encoded.utf8), timeout: 10)
                    : HTTPRequest(url: url + "?" + q.encoded, timeout: 10)
                return SimReceipt(request: request, needsJasminAck: true)
            }
        case .generic(let url, let ref, let to):
            var statuses = intermediate && !expired ? ["ENROUTE"] : []
            statuses.append(expired ? "EXPIRED" : delivered ? "DELIVERED" : "UNDELIVERED")
            return statuses.map { status in
                // `--failure-text`: a gateway whose error text names the message and the number, as many do.
                let failure = failureText.map { $0.replacingOccurrences(of: "{id}", with: id).replacingOccurrences(of: "{to}", with: to) } ?? "001"
                let code = status == "UNDELIVERED" ? failure : "000"
                let body = "{\"id\":\(jsonString(id)),\"ref\":\(jsonString(ref)),\"to\":\(jsonString(to)),\"status\":\"\(status)\",\"error_code\":\(jsonString(code))}"
                return SimReceipt(request: HTTPRequest(method: "POST", url: url, headers: [HTTPHeader("Content-Type", "application/json")],
                                                       body: Array(body.utf8), timeout: 10))
            }
        }
    }
}

/// Kannel's dlr-url escapes: each `%x` in `values` becomes the URL-escaped value; others stay as they are.
func kannelSubstitute(_ url: String, _ values: [Character: String]) -> String {
    var out = ""
    var it = url.makeIterator()
    while let c = it.next() {
        guard c == "%" else { out.append(c); continue }
        guard let k = it.next() else { out.append(c); break }
        if let v = values[k] { out += URLQuery.escape(v) } else { out.append(c); out.append(k) }
    }
    return out
}

/// `YYMMDDhhmm` in UTC, the SMPP receipt date format.
func smppDate(_ unix: Int64) -> String {
    var t = time_t(unix)
    var parts = tm()
    gmtime_r(&t, &parts)
    return [parts.tm_year % 100, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min].map { zeroPadded(Int($0), 2) }.joined()
}

/// A recipient as digits only, `84…`: `+84…` and `0084…` lose their prefix, a national `0…` gets `84`.
func digits(_ raw: String) -> String {
    var d = String(raw.unicodeScalars.filter { $0.value >= 48 && $0.value <= 57 }.map(Character.init))
    if d.hasPrefix("00") { d.removeFirst(2) } else if d.hasPrefix("0") { d = "84" + d.dropFirst() }
    return d.isEmpty ? "-" : d
}

/// The decoded value of `name` in `url`'s query, if any.
func queryValue(_ url: String, _ name: String) -> String? {
    guard let q = url.firstIndex(of: "?") else { return nil }
    let pairs = formDecode(Array(url[url.index(after: q)...].utf8))
    return pairs.last { $0.0 == name }?.1
}

/// `application/x-www-form-urlencoded` pairs (LoaServer's parser, the one the daemon uses for receipts).
func formDecode(_ body: [UInt8]) -> [(String, String)] { FormURLEncoded.parse(body) }

func hexValue(_ b: UInt8) -> UInt8? {
    switch b {
    case 48...57: b - 48
    case 65...70: b - 55
    case 97...102: b - 87
    default: nil
    }
}

func hexDecode(_ s: String) -> [UInt8]? {
    let u = Array(s.utf8)
    guard u.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    var i = 0
    while i < u.count {
        guard let hi = hexValue(u[i]), let lo = hexValue(u[i + 1]) else { return nil }
        out.append(hi << 4 | lo)
        i += 2
    }
    return out
}

/// A JSON string literal.
func jsonString(_ s: String) -> String { JSONText.quoted(s) }
