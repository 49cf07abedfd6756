import Foundation
import LoaCore

/// The class a rule gives an answer (the names used in the config file).
enum OutcomeClass: String, Sendable {
    case accepted, temporary, throttled, permanent, unauthorized
}

/// `200`, `2xx` or `any`.
struct StatusPattern: Sendable, Equatable {
    /// Inclusive range of matching codes.
    let range: ClosedRange<Int>

    init?(_ text: String) {
        let t = text.lowercased()
        if t == "any" { range = 0...999; return }
        let u = Array(t.utf8)
        guard u.count == 3, (0x31...0x35).contains(u[0]) else { return nil }
        let hundreds = Int(u[0] - 0x30) * 100
        if u[1] == UInt8(ascii: "x"), u[2] == UInt8(ascii: "x") { range = hundreds...(hundreds + 99); return }
        guard let code = Int(t) else { return nil }
        range = code...code
    }
}

/// The ReceiptStatus names used in config files.
enum ReceiptStatusName {
    static func parse(_ s: String) -> ReceiptStatus? { ReceiptStatus.allCases.first { $0.name == s } }
}

/// `NSRegularExpression` is immutable and documented thread-safe once built.
final class CompiledRegex: @unchecked Sendable {
    let regex: NSRegularExpression
    init(_ r: NSRegularExpression) { regex = r }
    func matches(_ s: String) -> Bool {
        regex.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }
}

/// A gateway described by a ``GenericGatewaySpec`` in the config file (carrier `"kind": "generic"`).
///
/// Every template is compiled once in `init`; a send renders byte runs and message fields into the request
/// (no parsing, no `JSONSerialization`). Answers are parsed with Loa's own small JSON reader, which keeps
/// numbers as written and never traps. Parts of the spec that ``GenericGatewaySpec/validate(secretNames:)``
/// would report are ignored here (the daemon refuses to start with problems), so `init` cannot fail.
///
/// Classification, in order:
/// 1. `response.rules`, first match; else `response.default_class`; else 2xx → temporary ("unrecognized
///    answer"), 429/503 → throttled (waiting what the rate-limit headers say), 401/403 → unauthorized, other 4xx → permanent, anything else → temporary.
/// 2. An accepted request with `response.results`: each message takes its item's class (item rules; no item →
///    temporary, since the gateway did not say it has the message) and id.
/// 3. Numbers listed at `response.rejected` become permanent, whatever the request's class.
///
/// A message's gateway id is its item's id, else `"<request id>:<to.digits>"` when the request has an id (eSMS
/// `SMSID`, SpeedSMS `tranId`), so receipts that carry the request id and the phone number find it: write
/// `receipts.id` as `["SMSID", "phonenumber"]`.
///
/// Details never hold secrets (every resolved secret value, in any encoding, is replaced by `***`: ``SecretMask``), message text (`<text>`),
/// or full phone numbers (digit runs of 9 or more are masked), and are at most 200 characters.
public struct GenericHTTPAdapter: OneExchangeAdapter {
    public let name: String
    public let spec: GenericGatewaySpec
    public let timeout: Double
    public let maxBatch: Int
    /// The body Loa's receipt endpoint answers this gateway's receipts with (`receipts.ack`, default `OK`).
    public let receiptAck: String
    public var batchesShareText: Bool { spec.batch?.sameText ?? false }
    /// The gateway deduplicates resends (e.g. by a request id): a timeout after sending is retried, not `unknown`.
    public let idempotent: Bool
    public let engine: CurlEngine
    let compiled: Compiled

    /// How a per-recipient result item finds its message (`response.results.match`).
    enum ResultMatch: Sendable {
        /// The n-th item is the n-th message's.
        case index
        /// Items whose value at the pointer is the message's `{{id}}`.
        case ref(JSONPointer)
        /// Items whose value at the pointer is the message's number, in any written form (last 9 digits).
        case to(JSONPointer)
    }

    struct Rule: Sendable {
        var status: StatusPattern
        var pointer: JSONPointer?
        var values: [String]?
        var regex: CompiledRegex?
        var outcome: OutcomeClass
    }

    struct Compiled: Sendable {
        var method = "GET"
        var url = CompiledTemplate(escaping: .percent)
        var headers: [(name: String, value: CompiledTemplate)] = []
        var contentType: String?
        var basicAuth: (CompiledTemplate, CompiledTemplate)?
        var body: CompiledTemplate?
        var item: CompiledTemplate?
        var sameText = false
        var rules: [Rule] = []
        var defaultClass: OutcomeClass?
        var messageID: JSONPointer?
        var detail: JSONPointer?
        var results: (pointer: JSONPointer, match: ResultMatch, id: JSONPointer?, detail: JSONPointer?, rules: [Rule]?)?
        var rejected: [JSONPointer] = []
        var receipts: ReceiptReader?
        /// The resolved secret values, the receipt secret and the proxy's credentials, masked in details.
        var mask = SecretMask(secrets: [])
    }

    /// The carrier's proxy, or nil for none (``HTTPRequest/proxy``).
    public let proxy: String?
    /// The resolved secrets, for `poll` requests (rendered per poll, not compiled: polls are rare).
    let pollSecrets: [String: String]

    public init(name: String, spec: GenericGatewaySpec, secrets: [String: String], timeout: Double, engine: CurlEngine, idempotent: Bool = false,
                proxy: String? = nil, receiptSecret: String? = nil) {
        self.proxy = proxy
        self.pollSecrets = spec.poll == nil ? [:] : secrets
        self.idempotent = idempotent
        self.name = name
        self.spec = spec
        self.timeout = timeout
        self.engine = engine
        self.maxBatch = spec.batch.map { min(max($0.max, 1), 10000) } ?? 1
        self.receiptAck = spec.receipts?.ack ?? "OK"
        var c = Compiled()
        c.mask = SecretMask(secrets: Array(secrets.values) + (receiptSecret.map { [$0] } ?? []), proxy: proxy)
        c.method = spec.method ?? (spec.body == nil ? "GET" : "POST")
        c.url.append(template: spec.url, secrets: secrets)
        for (k, v) in (spec.headers ?? [:]).sorted(by: { $0.key < $1.key }) {
            var t = CompiledTemplate(escaping: .raw)
            t.append(template: v, secrets: secrets)
            c.headers.append((k, t))
        }
        if let a = spec.basicAuth {
            var u = CompiledTemplate(escaping: .raw), p = CompiledTemplate(escaping: .raw)
            u.append(template: a.username, secrets: secrets)
            p.append(template: a.password, secrets: secrets)
            c.basicAuth = (u, p)
        }
        if let b = spec.body {
            switch b.format {
            case "json":
                let listAt = spec.batch.flatMap { JSONPointer($0.listPointer)?.tokens }
                c.body = CompiledTemplate.json(b.template ?? .object([]), secrets: secrets, listAt: listAt)
                c.contentType = "application/json"
                if let batch = spec.batch { c.item = CompiledTemplate.json(batch.item, secrets: secrets) }
            case "form":
                var t = CompiledTemplate(escaping: .percent)
                for (i, (k, v)) in (b.fields ?? [:]).sorted(by: { $0.key < $1.key }).enumerated() {
                    if i > 0 { t.append(bytes: CollectionOfOne(UInt8(ascii: "&"))) }
                    t.append(escaped: k)
                    t.append(bytes: CollectionOfOne(UInt8(ascii: "=")))
                    t.append(template: v, secrets: secrets)
                }
                c.body = t
                c.contentType = "application/x-www-form-urlencoded"
            default: break
            }
        }
        c.sameText = spec.batch?.sameText ?? false
        if let r = spec.response {
            c.rules = GenericHTTPAdapter.compile(r.rules)
            c.defaultClass = r.defaultClass.flatMap(OutcomeClass.init(rawValue:))
            c.messageID = r.messageID.flatMap(JSONPointer.init)
            c.detail = r.detail.flatMap(JSONPointer.init)
            if let res = r.results, let p = JSONPointer(res.pointer) {
                let match: ResultMatch? = switch res.match {
                case "index": .index
                case "ref": res.refPointer.flatMap(JSONPointer.init).map(ResultMatch.ref)
                case "to": res.toPointer.flatMap(JSONPointer.init).map(ResultMatch.to)
                default: nil
                }
                if let match {
                    c.results = (p, match, res.idPointer.flatMap(JSONPointer.init), res.detailPointer.flatMap(JSONPointer.init),
                                 res.rules.map(GenericHTTPAdapter.compile))
                }
            }
            c.rejected = (r.rejected?.pointer ?? []).compactMap(JSONPointer.init)
        }
        c.receipts = spec.receipts.map(ReceiptReader.init)
        compiled = c
    }

    static func compile(_ rules: [GenericGatewaySpec.Rule]?) -> [Rule] {
        (rules ?? []).compactMap { r in
            guard let outcome = OutcomeClass(rawValue: r.outcome) else { return nil }
            var regex: CompiledRegex?
            if let re = r.regex {
                guard let x = try? NSRegularExpression(pattern: re) else { return nil }
                regex = CompiledRegex(x)
            }
            let pointer = r.pointer.flatMap(JSONPointer.init)
            if r.pointer != nil && pointer == nil { return nil }
            return Rule(status: r.status.flatMap(StatusPattern.init) ?? StatusPattern("any")!, pointer: pointer,
                        values: r.equals.map { [$0] } ?? r.oneOf, regex: regex, outcome: outcome)
        }
    }

    /// Splits `batch` into requests of at most `max` messages; with `sameText`, a request only holds messages with
    /// the same text and encoding (groups in order of first appearance, each group in input order).
    public static func groups(_ batch: [OutgoingSMS], max: Int, sameText: Bool) -> [[OutgoingSMS]] {
        groupIndices(batch, max: max, sameText: sameText).map { $0.map { batch[$0] } }
    }

    struct TextKey: Hashable {
        var text: String
        var encoding: SMSEncoding
    }

    static func groupIndices(_ batch: [OutgoingSMS], max: Int, sameText: Bool) -> [[Int]] {
        let max = Swift.max(max, 1)
        var lists: [[Int]] = []
        if sameText {
            var slot: [TextKey: Int] = [:]
            for (i, m) in batch.enumerated() {
                let k = TextKey(text: m.text, encoding: m.encoding)
                if let s = slot[k] { lists[s].append(i) } else { slot[k] = lists.count; lists.append([i]) }
            }
        } else {
            lists = [Array(batch.indices)]
        }
        var out: [[Int]] = []
        for l in lists where !l.isEmpty {
            var start = 0
            while start < l.count {
                out.append(Array(l[start..<Swift.min(start + max, l.count)]))
                start += max
            }
        }
        return out
    }

    /// The request for `batch`, all of it in one request (exposed for tests; ``send(batch:)`` splits first).
    public func request(for batch: [OutgoingSMS]) -> HTTPRequest {
        let c = compiled
        var batch = batch
        if let range = spec.validity {
            // The provider's bounds on a validity period: the placeholders read the clamped time.
            let now = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
            for i in batch.indices { batch[i].validityMillis = batch[i].validUntil.map { range.clamp($0, now: now) } }
        }
        var url: [UInt8] = []
        c.url.render(batch, into: &url)
        var headers: [HTTPHeader] = []
        headers.reserveCapacity(c.headers.count + 2)
        var hasContentType = false
        var hasAuthorization = false
        for h in c.headers {
            var v: [UInt8] = []
            h.value.render(batch, into: &v)
            headers.append(HTTPHeader(h.name, String(decoding: v, as: UTF8.self)))
            if asciiCaseInsensitiveEqual(h.name, "content-type") { hasContentType = true }
            if asciiCaseInsensitiveEqual(h.name, "authorization") { hasAuthorization = true }
        }
        if let (u, p) = c.basicAuth, !hasAuthorization {
            var up: [UInt8] = []
            u.render(batch, into: &up)
            up.append(UInt8(ascii: ":"))
            p.render(batch, into: &up)
            headers.append(HTTPHeader("Authorization", "Basic " + Data(up).base64EncodedString()))
        }
        var body: [UInt8] = []
        if let b = c.body {
            body.reserveCapacity(256 + batch.count * 128)
            b.render(batch, item: c.item, into: &body)
            if let ct = c.contentType, !hasContentType { headers.append(HTTPHeader("Content-Type", ct)) }
        }
        return HTTPRequest(method: c.method, url: String(decoding: url, as: UTF8.self), headers: headers, body: body, timeout: timeout)
            .atMostOnce(!idempotent).readingHeaders(adapterResponseHeaders).via(proxy)
    }

    /// The request for one message (a batch of one).
    public func request(for message: OutgoingSMS) -> HTTPRequest { request(for: [message]) }

    public func outcome(of result: Result<HTTPResponse, TransportError>, for message: OutgoingSMS) -> GatewayOutcome {
        outcomes(of: result, for: [message]).first ?? .temporary("adapter returned no outcome for this message")
    }

    /// What the answer to the request for `messages`, or its failure, means for each of them, in order.
    func outcomes(of result: Result<HTTPResponse, TransportError>, for messages: [OutgoingSMS]) -> [GatewayOutcome] {
        switch result {
        case .success(let r):
            classify(status: r.status, retryAfter: r.rateLimitWait, body: r.body, batch: messages)
        case .failure(let error):
            Array(repeating: GatewayOutcome.transport(error, idempotent: idempotent).mapDetail { scrub($0, messages) }, count: messages.count)
        }
    }

    /// Sends in requests of at most ``maxBatch`` (same text only, with `batch.same_text`), one after the other,
    /// and returns one outcome per message in input order.
    public func send(batch: [OutgoingSMS]) async -> [GatewayOutcome] {
        var outcomes = [GatewayOutcome](repeating: .temporary("not sent"), count: batch.count)
        for group in GenericHTTPAdapter.groupIndices(batch, max: maxBatch, sameText: compiled.sameText) {
            let messages = group.map { batch[$0] }
            let result: Result<HTTPResponse, TransportError>
            do {
                result = .success(try await engine.perform(request(for: messages)))
            } catch {
                result = .failure(error)
            }
            for (i, o) in zip(group, self.outcomes(of: result, for: messages)) { outcomes[i] = o }
        }
        return outcomes
    }

    /// Classifies an answer to the request for `batch`: one outcome per message, in order (exposed for tests).
    public func classify(status: Int, retryAfter: String?, body: [UInt8], batch: [OutgoingSMS]) -> [GatewayOutcome] {
        let c = compiled
        let json = body.count <= 4 << 20 ? JSONValue.parse(body) : nil
        var rawText: String?
        func text() -> String {
            if let rawText { return rawText }
            let t = String(decoding: body.prefix(64 << 10), as: UTF8.self)
            rawText = t
            return t
        }
        let ruleClass = GenericHTTPAdapter.firstMatch(c.rules, status: status, value: json, text: text)
        let unrecognized = ruleClass == nil && c.defaultClass == nil && (200...299).contains(status)
        let cls = ruleClass ?? c.defaultClass ?? {
            switch status {
            case 200...299: .temporary
            case 429, 503: .throttled
            case 401, 403: .unauthorized
            case 400...499: .permanent
            default: .temporary
            }
        }()
        let retry = retryAfter.flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        func detail(_ extra: String?) -> String {
            var d = "HTTP \(status)"
            if unrecognized { d += ": unrecognized answer" }
            let more = extra ?? text().trimmingCharacters(in: .whitespacesAndNewlines)
            if !more.isEmpty { d += ": " + more }
            return scrub(d, batch)
        }
        func outcome(_ k: OutcomeClass, id: String?, _ d: String) -> GatewayOutcome {
            switch k {
            case .accepted: .accepted(gatewayID: id, detail: nil)
            case .temporary: .temporary(d)
            case .throttled: .throttled(retryAfter: retry, d)
            case .permanent: .permanent(d)
            case .unauthorized: .unauthorized(d)
            }
        }
        let requestDetail = c.detail.flatMap { p in json.flatMap { p.resolve($0)?.scalarText } }
        let requestID = c.messageID.flatMap { p in json.flatMap { p.resolve($0)?.scalarText } }
        var outcomes: [GatewayOutcome]
        if cls == .accepted, let res = c.results {
            let items: [JSONValue]
            if let j = json, case .array(let a)? = res.pointer.resolve(j) { items = a } else { items = [] }
            // Every item of a message, in answer order: several when the gateway lists each SMS part (Vonage).
            var byKey: [Substring: [JSONValue]] = [:]
            switch res.match {
            case .index: break
            case .ref(let p):
                for it in items { if let r = p.resolve(it)?.scalarText { byKey[Substring(r), default: []].append(it) } }
            case .to(let p):
                for it in items { if let r = p.resolve(it)?.scalarText { byKey[GenericHTTPAdapter.last9(r), default: []].append(it) } }
            }
            outcomes = batch.enumerated().map { i, m in
                let mine: [JSONValue] = switch res.match {
                case .index: i < items.count ? [items[i]] : []
                case .ref: byKey[Substring(String(m.id))] ?? []
                case .to: byKey[GenericHTTPAdapter.last9(m.to)] ?? []
                }
                guard !mine.isEmpty else { return .temporary("HTTP \(status): gateway answer has no result for this message") }
                // The message takes the class of its first item that is not accepted (a part refused or throttled).
                var item = mine[0]
                var itemClass = OutcomeClass.accepted
                var recognized = true
                if let rules = res.rules, !rules.isEmpty {
                    for it in mine {
                        let matched = GenericHTTPAdapter.firstMatch(rules, status: status, value: it, text: text)
                        if matched != .accepted {
                            item = it
                            itemClass = matched ?? .temporary
                            recognized = matched != nil
                            break
                        }
                    }
                }
                let ids = res.id.map { p in mine.compactMap { p.resolve($0)?.scalarText } } ?? []
                let id = ids.first ?? requestID.map { "\($0):\(CompiledTemplate.digits(m.to))" }
                // An acceptance carries no detail: none is built (and scrubbed) for it.
                if itemClass == .accepted { return .accepted(gatewayID: id, detail: nil, partIDs: ids.count > 1 ? ids : []) }
                let itemDetail = res.detail.flatMap { $0.resolve(item)?.scalarText }
                    ?? (recognized ? "the gateway's result for this message" : "unrecognized result for this message")
                return outcome(itemClass, id: id, scrub("HTTP \(status): " + itemDetail, [m]))
            }
        } else {
            let d = cls == .accepted ? "" : detail(requestDetail)
            outcomes = batch.map { m in outcome(cls, id: requestID.map { "\($0):\(CompiledTemplate.digits(m.to))" }, d) }
        }
        if !c.rejected.isEmpty, let j = json {
            var refused = Set<Substring>()
            for p in c.rejected {
                guard case .array(let list)? = p.resolve(j) else { continue }
                for v in list { if let s = v.scalarText { refused.insert(GenericHTTPAdapter.last9(s)) } }
            }
            if !refused.isEmpty {
                for (i, m) in batch.enumerated() where refused.contains(GenericHTTPAdapter.last9(m.to)) {
                    outcomes[i] = .permanent("gateway rejected the number")
                }
            }
        }
        return outcomes
    }

    static func firstMatch(_ rules: [Rule], status: Int, value: JSONValue?, text: () -> String) -> OutcomeClass? {
        rules.first { matches($0, status, value, text) }?.outcome
    }

    static func matches(_ r: Rule, _ status: Int, _ value: JSONValue?, _ text: () -> String) -> Bool {
        guard r.status.range.contains(status) else { return false }
        if let p = r.pointer {
            guard let v = value.flatMap(p.resolve) else { return false }
            if let values = r.values {
                guard let s = v.scalarText, values.contains(s) else { return false }
            }
        }
        if let re = r.regex, !re.matches(text()) { return false }
        return true
    }

    /// The last 9 digits of a number in any written form (`0912345678`, `84912345678`, `+84 912 345 678`).
    static func last9(_ s: String) -> Substring {
        let d = CompiledTemplate.digits(s)
        return Substring(d).suffix(9)
    }

    /// Removes secrets and message text, masks long digit runs, and cuts to 200 characters.
    public func scrub(_ s: String, _ batch: [OutgoingSMS]) -> String {
        var s = s
        s = compiled.mask.apply(s)
        for m in batch where m.text.count >= 4 && s.contains(m.text) { s = s.replacing(m.text, with: "<text>") }
        var out = ""
        var digits = ""
        func flush() {
            if digits.count >= 9 { out += digits.prefix(4) + String(repeating: "*", count: digits.count - 7) + digits.suffix(3) } else { out += digits }
            digits = ""
        }
        for ch in s.prefix(400) {
            if ch.isASCII, ch.isNumber { digits.append(ch) } else { flush(); out.append(ch) }
        }
        flush()
        return String(out.prefix(200))
    }

    /// Reads the gateway's receipts: `body` is the request body, `fields` the query merged with a form body.
    public func parseReceipts(body: [UInt8], fields: [String: String]) -> Result<[InboundReceipt], ReceiptParseError> {
        guard let r = compiled.receipts else { return .failure(ReceiptParseError(field: "receipts", reason: "this carrier has no receipts configured")) }
        return r.parse(body: body, fields: fields)
    }
}

extension CompiledTemplate {
    /// The ASCII digits of `s`, in order.
    static func digits(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.filter { $0.isASCII && $0.properties.numericType != nil }))
    }
}

/// The compiled `receipts` section of a spec.
struct ReceiptReader: Sendable {
    enum Format { case json, fields }
    let format: Format
    let items: JSONPointer?
    let itemsText: String
    let loaKey: Bool
    let id: [String]
    let gatewayID: String?
    let status: String
    let statuses: [String: ReceiptStatus]
    let wildcard: ReceiptStatus?
    let detail: String?

    init(_ r: GenericGatewaySpec.Receipts) {
        format = r.format == "json" ? .json : .fields
        items = r.itemsPointer.flatMap(JSONPointer.init)
        itemsText = r.itemsPointer ?? ""
        loaKey = r.key == "loa"
        id = r.id
        gatewayID = r.gatewayID
        status = r.status
        var map: [String: ReceiptStatus] = [:]
        for (k, v) in r.statuses { if let s = ReceiptStatusName.parse(v) { map[k] = s } }
        wildcard = map.removeValue(forKey: "*")
        statuses = map
        detail = r.detail
    }

    func parse(body: [UInt8], fields: [String: String]) -> Result<[InboundReceipt], ReceiptParseError> {
        switch format {
        case .fields:
            return one(prefix: "") { fields[$0] }.map { [$0] }
        case .json:
            guard let doc = JSONValue.parse(body) else { return .failure(ReceiptParseError(field: "body", reason: "not JSON")) }
            // A name starting with `/` is a pointer into the body; any other name is a query field (`m`).
            func get(_ v: JSONValue, _ name: String) -> String? {
                name.hasPrefix("/") ? JSONPointer(name).flatMap { $0.resolve(v)?.scalarText } : fields[name]
            }
            guard let items else { return one(prefix: "") { get(doc, $0) }.map { [$0] } }
            guard case .array(let list)? = items.resolve(doc) else {
                return .failure(ReceiptParseError(field: itemsText, reason: "missing or not a list"))
            }
            var out: [InboundReceipt] = []
            for (i, item) in list.enumerated() {
                switch one(prefix: "\(itemsText)/\(i)", { get(item, $0) }) {
                case .success(let r): out.append(r)
                case .failure(let e): return .failure(e)
                }
            }
            return .success(out)
        }
    }

    /// A number in any written form as E.164 digits: `0912…` → `84912…`, `0084…` → `84…`.
    static func e164Digits(_ v: String) -> String {
        var d = CompiledTemplate.digits(v)
        if d.hasPrefix("00") { d.removeFirst(2) } else if d.hasPrefix("0") { d = "84" + d.dropFirst() }
        return d
    }

    private func one(prefix: String, _ get: (String) -> String?) -> Result<InboundReceipt, ReceiptParseError> {
        func fail(_ f: String, _ reason: String) -> Result<InboundReceipt, ReceiptParseError> {
            .failure(ReceiptParseError(field: prefix + f, reason: reason))
        }
        var parts: [String] = []
        for (i, f) in id.enumerated() {
            guard let v = get(f), !v.isEmpty else { return fail(f, "missing") }
            if i == 0 {
                parts.append(v)
            } else {
                parts.append(ReceiptReader.e164Digits(v))
            }
        }
        guard let first = id.first else { return fail("id", "not configured") }
        let key: InboundReceipt.Key
        var gw = gatewayID.flatMap(get)
        if loaKey {
            guard let n = Int64(parts[0]) else { return fail(first, "'\(parts[0].prefix(40))' is not a Loa message id") }
            key = .loa(n)
        } else {
            let joined = parts.joined(separator: ":")
            key = .gateway(joined)
            if gw == nil { gw = joined }
        }
        guard let s = get(status) else { return fail(status, "missing") }
        guard let st = statuses[s] ?? wildcard else { return fail(status, "unknown status '\(s.prefix(40))'") }
        var d = String(s.prefix(40))
        if let df = detail, let v = get(df), !v.isEmpty {
            let label = df.split(separator: "/").last.map(String.init) ?? df
            d += " \(label)=\(v.prefix(80))"
        }
        return .success(InboundReceipt(key: key, status: st, gatewayID: gw, detail: d))
    }
}
