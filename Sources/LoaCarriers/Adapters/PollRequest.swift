import Foundation
import LoaCore

/// A template string of a `poll` request (``GenericGatewaySpec/Poll``): literal text, secrets and the ids asked about.
enum PollTemplate {
    enum Part: Equatable {
        case literal(String)
        case secret(String)
        case gatewayID, gatewayIDs, gatewayIDsList, requestID
    }

    static func placeholder(_ name: String) -> Part? {
        switch name {
        case "gateway_id": .gatewayID
        case "gateway_ids": .gatewayIDs
        case "gateway_ids|list": .gatewayIDsList
        case "request_id": .requestID
        default: name.hasPrefix("secret.") && name.count > 7 ? .secret(String(name.dropFirst(7))) : nil
        }
    }

    static func parse(_ s: String) -> [Part] {
        var parts: [Part] = []
        var rest = Substring(s)
        var literal = ""
        while let open = rest.firstRange(of: "{{"), let close = rest[open.upperBound...].firstRange(of: "}}") {
            literal += rest[..<open.lowerBound]
            let name = String(rest[open.upperBound..<close.lowerBound]).trimmingCharacters(in: .whitespaces)
            if let p = placeholder(name) {
                if !literal.isEmpty { parts.append(.literal(literal)); literal = "" }
                parts.append(p)
            } else {
                literal += rest[open.lowerBound..<close.upperBound]
            }
            rest = rest[close.upperBound...]
        }
        literal += rest
        if !literal.isEmpty { parts.append(.literal(literal)) }
        return parts
    }

    /// Unknown placeholders, secrets not in `secretNames`, `{{gateway_id}}` where several ids are asked about
    /// (`single` false), `{{request_id}}` without `by: request`, and `|list` outside a whole JSON string.
    static func problems(in s: String, secretNames: Set<String>?, listAllowed: Bool, single: Bool, byRequest: Bool) -> [String] {
        var out: [String] = []
        var rest = Substring(s)
        let whole = parse(s) == [.gatewayIDsList]
        while let open = rest.firstRange(of: "{{"), let close = rest[open.upperBound...].firstRange(of: "}}") {
            let name = String(rest[open.upperBound..<close.lowerBound]).trimmingCharacters(in: .whitespaces)
            switch placeholder(name) {
            case nil:
                out.append("unknown placeholder {{\(name)}} (a poll request knows {{gateway_id}} {{gateway_ids}} {{gateway_ids|list}} {{request_id}} {{secret.NAME}})")
            case .secret(let secret)?:
                if let secretNames, !secretNames.contains(secret) { out.append("unknown secret '\(secret)' in {{\(name)}} (not in this carrier's secrets)") }
            case .gatewayID?:
                if !single { out.append("{{gateway_id}} names one message: with max_ids above 1 or by request write {{gateway_ids}}") }
            case .gatewayIDsList?:
                if !(listAllowed && whole) { out.append("{{gateway_ids|list}} makes a JSON list only as the whole of a poll.body.template string") }
            case .requestID?:
                if !byRequest { out.append("{{request_id}} is only for by request") }
            case .gatewayIDs?, .literal?: break
            }
            rest = rest[close.upperBound...]
        }
        return out
    }
}

/// One poll request and the messages it asks about.
public struct PollBatch: Sendable {
    /// Loa's message id and gateway id of each message asked about.
    public var messages: [(id: Int64, gatewayID: String)]
    public var request: HTTPRequest
}

/// A receipt read from a poll answer, matched to a message asked about.
public struct PolledReceipt: Sendable, Equatable {
    public var messageID: Int64
    public var gatewayID: String
    public var status: ReceiptStatus
    public var detail: String?
    public init(messageID: Int64, gatewayID: String, status: ReceiptStatus, detail: String?) {
        self.messageID = messageID
        self.gatewayID = gatewayID
        self.status = status
        self.detail = detail
    }
}

extension GenericHTTPAdapter {
    /// The carrier's `poll` section, when it has one.
    public var pollSpec: GenericGatewaySpec.Poll? { spec.poll }

    /// The requests that ask about `candidates` (in the order given: the longest-unpolled first), at most
    /// `poll.max_requests`: chunks of `max_ids`, or with `by: request` one request per request id.
    public func pollBatches(_ candidates: [(id: Int64, gatewayID: String)]) -> [PollBatch] {
        guard let p = spec.poll else { return [] }
        var groups: [(requestID: String?, messages: [(id: Int64, gatewayID: String)])] = []
        if p.by == "request" {
            var slot: [String: Int] = [:]
            for c in candidates {
                let r = GenericHTTPAdapter.requestID(of: c.gatewayID)
                if let s = slot[r] { groups[s].messages.append(c) } else {
                    guard groups.count < p.requestsPerInterval else { continue }
                    slot[r] = groups.count
                    groups.append((r, [c]))
                }
            }
        } else {
            var start = 0
            while start < candidates.count && groups.count < p.requestsPerInterval {
                groups.append((nil, Array(candidates[start..<min(start + p.idsPerRequest, candidates.count)])))
                start += p.idsPerRequest
            }
        }
        return groups.map { g in PollBatch(messages: g.messages, request: pollRequest(ids: g.messages.map(\.gatewayID), requestID: g.requestID)) }
    }

    /// The request id a gateway id belongs to: its part before the first `:` (`"<request id>:<to.digits>"`), or all of it.
    public static func requestID(of gatewayID: String) -> String {
        gatewayID.firstIndex(of: ":").map { String(gatewayID[..<$0]) } ?? gatewayID
    }

    /// The poll request for `ids` (exposed for tests).
    public func pollRequest(ids: [String], requestID: String? = nil) -> HTTPRequest {
        guard let p = spec.poll else { return HTTPRequest(url: "") }
        let secrets = pollSecrets
        func render(_ s: String, _ e: Escaping, into out: inout [UInt8]) {
            for part in PollTemplate.parse(s) {
                switch part {
                case .literal(let l):
                    if e == .json { CompiledTemplate.writeString(l, e, into: &out) } else { out.append(contentsOf: l.utf8) }
                case .secret(let n): CompiledTemplate.writeString(secrets[n] ?? "", e, into: &out)
                case .gatewayID: CompiledTemplate.writeString(ids.first ?? "", e, into: &out)
                case .gatewayIDs, .gatewayIDsList: CompiledTemplate.writeString(ids.joined(separator: p.idsSeparator ?? ","), e, into: &out)
                case .requestID: CompiledTemplate.writeString(requestID ?? ids.first.map(GenericHTTPAdapter.requestID) ?? "", e, into: &out)
                }
            }
        }
        func renderJSON(_ v: JSONValue, into out: inout [UInt8]) {
            switch v {
            case .null: out.append(contentsOf: "null".utf8)
            case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
            case .number(let n): out.append(contentsOf: n.utf8)
            case .string(let s):
                if PollTemplate.parse(s) == [.gatewayIDsList] {
                    out.append(UInt8(ascii: "["))
                    for (i, id) in ids.enumerated() {
                        if i > 0 { out.append(UInt8(ascii: ",")) }
                        out.append(UInt8(ascii: "\""))
                        CompiledTemplate.writeString(id, .json, into: &out)
                        out.append(UInt8(ascii: "\""))
                    }
                    out.append(UInt8(ascii: "]"))
                } else {
                    out.append(UInt8(ascii: "\""))
                    render(s, .json, into: &out)
                    out.append(UInt8(ascii: "\""))
                }
            case .array(let items):
                out.append(UInt8(ascii: "["))
                for (i, x) in items.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    renderJSON(x, into: &out)
                }
                out.append(UInt8(ascii: "]"))
            case .object(let members):
                out.append(UInt8(ascii: "{"))
                for (i, (k, x)) in members.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    out.append(UInt8(ascii: "\""))
                    CompiledTemplate.writeString(k, .json, into: &out)
                    out.append(contentsOf: "\":".utf8)
                    renderJSON(x, into: &out)
                }
                out.append(UInt8(ascii: "}"))
            }
        }
        var url: [UInt8] = []
        render(p.url, .percent, into: &url)
        var headers: [HTTPHeader] = []
        var hasContentType = false, hasAuthorization = false
        for (k, v) in (p.headers ?? [:]).sorted(by: { $0.key < $1.key }) {
            var out: [UInt8] = []
            render(v, .raw, into: &out)
            headers.append(HTTPHeader(k, String(decoding: out, as: UTF8.self)))
            if k.lowercased() == "content-type" { hasContentType = true }
            if k.lowercased() == "authorization" { hasAuthorization = true }
        }
        if let a = p.basicAuth, !hasAuthorization {
            var up: [UInt8] = []
            render(a.username, .raw, into: &up)
            up.append(UInt8(ascii: ":"))
            render(a.password, .raw, into: &up)
            headers.append(HTTPHeader("Authorization", "Basic " + Data(up).base64EncodedString()))
        }
        var body: [UInt8] = []
        var contentType: String?
        if let b = p.body {
            if b.format == "json" {
                renderJSON(b.template ?? .object([]), into: &body)
                contentType = "application/json"
            } else {
                for (i, (k, v)) in (b.fields ?? [:]).sorted(by: { $0.key < $1.key }).enumerated() {
                    if i > 0 { body.append(UInt8(ascii: "&")) }
                    CompiledTemplate.writeString(k, .percent, into: &body)
                    body.append(UInt8(ascii: "="))
                    render(v, .percent, into: &body)
                }
                contentType = "application/x-www-form-urlencoded"
            }
        }
        if let contentType, !hasContentType { headers.append(HTTPHeader("Content-Type", contentType)) }
        let method = p.method ?? (p.body == nil ? "GET" : "POST")
        // A status query changes nothing at the gateway: safe to repeat.
        return HTTPRequest(method: method, url: String(decoding: url, as: UTF8.self), headers: headers, body: body, timeout: timeout)
            .via(proxy)
    }

    /// The receipts a poll answer gives for the messages asked about (`batch`); items for other ids, items with a
    /// status `poll.answer.statuses` does not map, and answers that are not JSON give nothing.
    public func pollReceipts(status: Int, body: [UInt8], for batch: [(id: Int64, gatewayID: String)]) -> [PolledReceipt] {
        guard let a = spec.poll?.answer, (200...299).contains(status), body.count <= 4 << 20, let doc = JSONValue.parse(body) else { return [] }
        let items: [JSONValue]
        if let ip = a.itemsPointer {
            guard let p = JSONPointer(ip), case .array(let list)? = p.resolve(doc) else { return [] }
            items = list
        } else {
            items = [doc]
        }
        var byGateway: [String: Int64] = [:]
        for m in batch { byGateway[m.gatewayID] = m.id }
        // Polled by request with one id pointer: an item may name only its number (eSMS GetSmsReceiverStatus_get's
        // ReceiverList items carry Phone, not the SMSID), matched as "<request id>:<84…>" within the request asked about.
        let requests = Set(batch.map { GenericHTTPAdapter.requestID(of: $0.gatewayID) })
        let numberOnly = spec.poll?.by == "request" && a.id.count == 1 && requests.count == 1 ? requests.first : nil
        var statuses: [String: ReceiptStatus] = [:]
        for (k, v) in a.statuses { if let s = ReceiptStatusName.parse(v) { statuses[k] = s } }
        let wildcard = statuses.removeValue(forKey: "*")
        let idPointers = a.id.compactMap(JSONPointer.init)
        let statusPointer = JSONPointer(a.status)
        let detailPointer = a.detail.flatMap(JSONPointer.init)
        var out: [PolledReceipt] = []
        for item in items {
            var parts: [String] = []
            for (i, p) in idPointers.enumerated() {
                guard let v = p.resolve(item)?.scalarText, !v.isEmpty else { parts = []; break }
                parts.append(i == 0 ? v : ReceiptReader.e164Digits(v))
            }
            if let r = numberOnly, parts.count == 1, byGateway[parts[0]] == nil { parts = [r, ReceiptReader.e164Digits(parts[0])] }
            guard !parts.isEmpty, let id = byGateway[parts.joined(separator: ":")] else { continue }
            guard let s = statusPointer?.resolve(item)?.scalarText, let st = statuses[s] ?? wildcard else { continue }
            var d = "poll: " + String(s.prefix(40))
            if let v = detailPointer?.resolve(item)?.scalarText, !v.isEmpty {
                let label = a.detail?.split(separator: "/").last.map(String.init) ?? "detail"
                d += " \(label)=\(v.prefix(80))"
            }
            out.append(PolledReceipt(messageID: id, gatewayID: parts.joined(separator: ":"), status: st, detail: scrub(d, [])))
        }
        return out
    }

    /// An aggregate callback (``GenericGatewaySpec/Aggregate``) in a receipt request, or nil when it is a per-message one.
    public func aggregateCallback(body: [UInt8], fields: [String: String]) -> AggregateCallback? {
        guard let ag = spec.receipts?.aggregate else { return nil }
        let json = spec.receipts?.format == "json" ? JSONValue.parse(body) : nil
        func get(_ name: String) -> String? {
            if name.hasPrefix("/"), spec.receipts?.format == "json" {
                return json.flatMap { doc in JSONPointer(name).flatMap { $0.resolve(doc) } }.map { $0.scalarText ?? "" }
            }
            return fields[name]
        }
        guard get(ag.when) != nil else { return nil }
        let counts = ag.counts.map { c in
            (c.split(separator: "/").last.map(String.init) ?? c, String((get(c) ?? "").prefix(40)))
        }
        return AggregateCallback(requestID: get(ag.requestID).map { String($0.prefix(200)) } ?? "", counts: counts)
    }
}

/// A callback about a whole send request (``GenericGatewaySpec/Aggregate``).
public struct AggregateCallback: Sendable {
    /// The gateway's request id; empty when the callback did not carry one.
    public var requestID: String
    /// Each configured count's name and value, for the log.
    public var counts: [(name: String, value: String)]
}

extension CompiledTemplate {
    /// Writes `s` escaped as `e` says.
    static func writeString(_ s: String, _ e: Escaping, into out: inout [UInt8]) {
        var s = s
        s.withUTF8 { write($0, e, into: &out) }
    }
}
