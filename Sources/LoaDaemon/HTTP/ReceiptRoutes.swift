import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import LoaStore
import Synchronization

/// What gateways call: delivery receipts (`/dlr/<carrier>`) and subscribers' replies (`/mo/<carrier>`), each
/// authenticated by the carrier's receipt secret.
extension DaemonService {
    /// Gateways' endpoints: authenticated by the carrier's receipt secret, not the operator token.
    static let receiptEndpoints: [Endpoint] = [
        Endpoint("GET", "/dlr/{carrier}", access: .carrierSecret(.dlr)) { s, r in s.receipt(r) },
        Endpoint("POST", "/dlr/{carrier}", access: .carrierSecret(.dlr)) { s, r in s.receipt(r) },
        Endpoint("GET", "/mo/{carrier}", access: .carrierSecret(.mo)) { s, r in .response(s.moReply(carrier: r["carrier"], query: r.query)) },
        Endpoint("POST", "/mo/{carrier}", access: .carrierSecret(.mo)) { s, r in .response(s.moReply(carrier: r["carrier"], query: r.query)) },
    ]

    // MARK: - Receipts

    /// A receipt, read as its carrier's kind reads them: in the carrier's own format (Jasmin, generic), from the
    /// query and a form or JSON body read whole up to ``receiptBodyLimit``; else Kannel's query. The secret was
    /// checked on the head (``carrierHead(_:carrier:endpoint:)``), so a refused request's body is never read.
    func receipt(_ request: Request) -> Reply {
        let carrier = request["carrier"]
        guard let format = receiptFormats[carrier] else { return .response(receipt(carrier: carrier, query: request.query)) }
        return .body(limit: Self.receiptBodyLimit) { [self] r in .response(receipt(carrier: carrier, format: format, head: r.head, body: r.body)) }
    }

    /// The head a carrier endpoint's secret is checked on and its handler reads: for receipts in a carrier's own
    /// format, with a query the gateway appended read as fields (``receiptHead(_:carrier:)``); else as it came.
    func carrierHead(_ head: RequestHead, carrier: String, endpoint: CarrierEndpoint) -> RequestHead {
        endpoint == .dlr && receiptFormats[carrier] != nil ? receiptHead(head, carrier: carrier) : head
    }

    /// The largest receipt body read (64 KiB): a Jasmin callback is a few hundred bytes, and a generic gateway's
    /// batch of receipts at about 200 bytes each fits some 300 in it. Larger bodies get 413 without being kept.
    /// Bodies are read only after the secret was checked, so only a gateway that knows it can make Loa hold one.
    static let receiptBodyLimit = 64 << 10

    /// A Kannel delivery report (the dlr-url's query): parsed by ``KannelAdapter/parseReceipt(_:)``, stored before
    /// the answer. 400 names the field Kannel filled wrongly (Kannel does not retry it); 503 when the store could
    /// not take it (Kannel retries, with `http-request-retry`).
    func receipt(carrier: String, query: [String: String]) -> ServerResponse {
        if let refused = refusal(carrier: carrier, query: query, endpoint: "dlr") { return refused }
        let parsed: InboundReceipt
        switch KannelAdapter.parseReceipt(query) {
        case .success(let r): parsed = r
        case .failure(let e):
            logger.warning("receipt not understood", ["carrier.name": carrier, "error": e.description])
            return error(400, "bad-receipt", e.description)
        }
        guard case .loa(let id) = parsed.key else { return error(400, "bad-receipt", "id: missing") }
        let update = ReceiptUpdate(carrier: carrier, messageID: id, status: parsed.status, gatewayID: parsed.gatewayID, detail: parsed.detail)
        do {
            let result = try store.apply([update])[0]
            if result != .notFound && result != .wrongCarrier { dispatcher.receipt(carrier: carrier, messageID: id, status: parsed.status) }
            switch result {
            case .applied, .duplicate, .pending: return .text(200, "OK \(result.rawValue)\n")
            case .notFound, .wrongCarrier: return error(404, "unknown-message", "no message \(id) sent through \(carrier)")
            }
        } catch {
            logger.error("receipt not stored", ["carrier.name": carrier, "error": "\(error)"])
            return self.error(503, "store-unavailable", "receipt not stored; retry")
        }
    }

    /// A receipt in a carrier's own format (Jasmin's callbacks, a generic gateway's mapping): authenticated by the
    /// carrier's secret in the query (`k`), parsed, stored before the answer. A body may carry several receipts.
    func receipt(carrier: String, format: ReceiptFormat, head: RequestHead, body: [UInt8]) -> ServerResponse {
        if let refused = refusal(carrier: carrier, query: head.query, endpoint: "dlr") { return refused }
        var fields = head.query
        fields["k"] = nil
        let contentType = head.header("content-type") ?? ""
        if contentType.lowercased().hasPrefix("application/x-www-form-urlencoded") || (!body.isEmpty && body.first != UInt8(ascii: "{") && body.first != UInt8(ascii: "[")) {
            for (name, value) in FormURLEncoded.parse(body) { fields[name] = value }
        }
        if let aggregate = format.aggregate?(body, fields) {
            do {
                let messages = try store.recordRequestReceipt(carrier: carrier, requestID: aggregate.requestID, counts: aggregate.counts)
                poller?.pollNow(carrier: carrier, messages: messages)
                logger.info("aggregate receipt: polling the request's messages", ["carrier.name": carrier, "messages": "\(messages.count)"])
                return .text(200, format.ack)
            } catch {
                logger.error("receipt not stored", ["carrier.name": carrier, "error": "\(error)"])
                return self.error(503, "store-unavailable", "receipt not stored; retry")
            }
        }
        let parsed: [InboundReceipt]
        switch format.parse(body, fields) {
        case .success(let r): parsed = r
        case .failure(let e):
            logger.warning("receipt not understood", ["carrier.name": carrier, "error": e.description])
            return error(400, "bad-receipt", e.description)
        }
        let updates = parsed.map { r -> ReceiptUpdate in
            switch r.key {
            case .loa(let id): ReceiptUpdate(carrier: carrier, messageID: id, status: r.status, gatewayID: r.gatewayID, detail: r.detail)
            case .gateway(let g): ReceiptUpdate(carrier: carrier, gatewayKey: g, status: r.status, detail: r.detail)
            }
        }
        do {
            let results = try store.apply(updates)
            // The deadline window learns the gateway's pace from its receipts (a repeat changes nothing there).
            for (r, result) in zip(parsed, results) where result != .notFound && result != .wrongCarrier {
                if case .loa(let id) = r.key {
                    dispatcher.receipt(carrier: carrier, messageID: id, status: r.status)
                } else if result == .applied || result == .pending {
                    dispatcher.receipt(carrier: carrier, messageID: nil, status: r.status)
                }
            }
            if updates.count == 1, results[0] == .notFound || results[0] == .wrongCarrier {
                // A message Loa does not know: 404 (Jasmin 0.11.0 still retries it up to its max_retries).
                return error(404, "unknown-message", "no such message sent through \(carrier)")
            }
            return .text(200, format.ack)
        } catch {
            logger.error("receipt not stored", ["carrier.name": carrier, "error": "\(error)"])
            return self.error(503, "store-unavailable", "receipt not stored; retry")
        }
    }

    /// The head with a query a gateway appended to Loa's receipt URL read as query fields: a provider that adds
    /// `?status=…` to a callback URL that already has a query (`/dlr/x?k=SECRET?status=DELIVRD&id=…`) leaves
    /// `k` = `SECRET?status=DELIVRD`. A value holding `?` followed by `name=` is cut there and the rest becomes
    /// the field `name` (when the query does not already have it). The secret is not weakened: `k` must still
    /// equal the secret exactly once cut, and a `k` that equals it whole (a secret holding `?`) is not cut.
    /// Only for carriers with their own receipt format (generic, Jasmin); Kannel's `%A` may hold any text.
    func receiptHead(_ head: RequestHead, carrier: String) -> RequestHead {
        guard head.query.values.contains(where: { $0.contains("?") }) else { return head }
        var out = head
        out.query = Self.readingAppendedQuery(head.query, secret: secrets[carrier] ?? [])
        return out
    }

    /// ``receiptHead(_:carrier:)``'s work on the decoded query.
    static func readingAppendedQuery(_ query: [String: String], secret: [UInt8]) -> [String: String] {
        var out = query
        for (name, value) in query.sorted(by: { $0.key < $1.key }) {
            guard let q = value.firstIndex(of: "?") else { continue }
            if name == "k" && Self.constantTimeEqual(Array(value.utf8), secret) { continue }
            let rest = value[value.index(after: q)...]
            guard let eq = rest.firstIndex(of: "="), !rest[..<eq].isEmpty,
                  rest[..<eq].unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil || "_-.".unicodeScalars.contains($0)) })
            else { continue }
            out[name] = String(value[..<q])
            let appended = String(rest[..<eq])
            if query[appended] == nil { out[appended] = String(rest[rest.index(after: eq)...]) }
        }
        return out
    }

    /// The carrier's shared secret in `k`, for its receipt and reply endpoints: nil when it matches, else the
    /// refusal (404 for an unknown carrier, 401 for a wrong or missing secret; nothing is changed).
    func refusal(carrier: String, query: [String: String], endpoint: String) -> ServerResponse? {
        guard let secret = secrets[carrier] else { return error(404, "unknown-carrier", "no carrier named \(carrier)") }
        guard let k = query["k"], Self.constantTimeEqual(Array(k.utf8), secret) else {
            logger.warning("request with a wrong or missing secret refused", ["carrier.name": carrier, "endpoint": endpoint])
            return error(401, "unauthorized", endpoint == "dlr" ? "wrong or missing receipt secret" : "wrong or missing secret")
        }
        return nil
    }

    // MARK: - Replies (MO)

    /// A subscriber's reply, Kannel `sms-service` get-url style: `/mo/<carrier>?k=<secret>&from=%p&text=%a`.
    /// An opt-out keyword puts the number on the global list at once; its queued messages are suppressed.
    func moReply(carrier: String, query: [String: String]) -> ServerResponse {
        if let refused = refusal(carrier: carrier, query: query, endpoint: "mo") { return refused }
        guard let from = query["from"], let text = query["text"] else { return error(400, "bad-reply", "from and text are required") }
        guard OptOut.isOptOut(text, keywords: config.optOutKeywords) else { return .text(200, "") }
        guard case .success(let number) = PhoneNormalizer.normalize(from) else { return error(400, "bad-reply", "from: not a mobile number") }
        do {
            let n = try store.optOutNow(number.e164, source: "reply via \(carrier)")
            logger.notice("opt-out reply", ["carrier.name": carrier, "recipient": number.masked, "suppressed": "\(n)"])
            return .text(200, "")
        } catch {
            return failure(error)
        }
    }
}

/// How a carrier's receipt requests are read: a parser over the body and the merged query and form fields,
/// and the body of the answer the gateway expects (Jasmin retries unless it reads `ACK/Jasmin`).
struct ReceiptFormat: Sendable {
    var parse: @Sendable ([UInt8], [String: String]) -> Result<[InboundReceipt], ReceiptParseError>
    var ack: String
    /// A callback about a whole send request (a generic carrier's `receipts.aggregate`), or nil for a per-message one.
    var aggregate: (@Sendable ([UInt8], [String: String]) -> AggregateCallback?)? = nil
}
