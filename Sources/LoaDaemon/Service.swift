import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import LoaStore
import Synchronization

/// Everything the embedded HTTP server answers: `/healthz`, the receipt endpoints `/dlr/<carrier>` and the
/// operator API under `/api/v1` (bearer token). Handlers run on libmicrohttpd's threads and may block on the store.
final class DaemonService: HTTPService {
    let store: Store
    let config: LoaConfig
    let dispatcher: Dispatcher
    let logger: Logger
    private let secrets: [String: [UInt8]]
    private let token: [UInt8]
    /// Segments uploaded per loading campaign and generation (a restart forgets them; the campaign is then discarded
    /// and resubmitted). Keyed by ``uploadKey(_:_:)``, so a discarded campaign's late uploads never count for a new one.
    private let uploads = Mutex<[String: Set<String>]>([:])

    private func uploadKey(_ id: String, _ generation: Int64) -> String { "\(id)#\(generation)" }

    /// The `generation` a request names (`?generation=N`), when it names one. A client that gives it (the CLI
    /// does) cannot touch a campaign created again under the same id after its own was discarded.
    private func generation(_ head: RequestHead) throws -> Int64? {
        guard let g = head.query["generation"] else { return nil }
        guard let n = Int64(g) else { throw StoreError.invalid("generation: not a number") }
        return n
    }

    /// How each carrier's receipts are read (Kannel's query form is built in).
    private let receiptFormats: [String: ReceiptFormat]

    /// Polls generic carriers' status APIs; an aggregate callback asks it about its request's messages.
    private let poller: ReceiptPoller?

    init(store: Store, config: LoaConfig, dispatcher: Dispatcher, logger: Logger, receiptFormats: [String: ReceiptFormat] = [:],
         poller: ReceiptPoller? = nil) {
        self.poller = poller
        self.receiptFormats = receiptFormats
        self.store = store
        self.config = config
        self.dispatcher = dispatcher
        self.logger = logger
        self.secrets = Dictionary(uniqueKeysWithValues: config.carriers.map { ($0.name, Array($0.receiptSecret.utf8)) })
        self.token = Array(config.apiToken.utf8)
    }

    func route(_ head: RequestHead) -> Route {
        let parts = head.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        switch (head.method, parts.first) {
        case ("GET", "healthz"): return .respond(json(200, ["status": "ok"]))
        case ("GET", "readyz"):
            // Ready when the store takes work, read from what its writer records (no job: a probe must cost
            // the writer nothing, see WriterHealth).
            let health = store.writerHealth
            if let problem = health.problem() {
                return .respond(self.error(503, "not-ready", problem))
            }
            let busy = health.busySince.map { "busy for \(Int((ContinuousClock.now - $0) / .milliseconds(1))) ms" }
            return .respond(json(200, ["status": "ready", "store_writer": busy ?? "idle"]))
        case ("GET", "dlr") where parts.count == 2, ("POST", "dlr") where parts.count == 2:
            // The carrier and its secret are checked on the head: a refused request's body is never read.
            if let format = receiptFormats[parts[1]] {
                let carrier = parts[1]
                let head = receiptHead(head, carrier: carrier)
                if let refused = refusal(carrier: carrier, query: head.query, endpoint: "dlr") { return .refuse(refused) }
                // Jasmin and generic gateways put the receipt in a form or JSON body: read it whole, up to
                // `receiptBodyLimit`.
                return .buffer(limit: Self.receiptBodyLimit) { [self] head, body in
                    self.receipt(carrier: carrier, format: format, head: receiptHead(head, carrier: carrier), body: body)
                }
            }
            if let refused = refusal(carrier: parts[1], query: head.query, endpoint: "dlr") { return .refuse(refused) }
            return .respond(receipt(carrier: parts[1], query: head.query))
        case ("GET", "mo") where parts.count == 2, ("POST", "mo") where parts.count == 2:
            if let refused = refusal(carrier: parts[1], query: head.query, endpoint: "mo") { return .refuse(refused) }
            return .respond(moReply(carrier: parts[1], query: head.query))
        case ("GET", "metrics"):
            guard authorized(head) else { return .respond(error(401, "unauthorized", "missing or wrong bearer token")) }
            return .respond(metrics())
        case (_, "api") where parts.count >= 2 && parts[1] == "v1":
            guard authorized(head) else {
                return .respond(error(401, "unauthorized", "missing or wrong bearer token"))
            }
            return api(head, Array(parts.dropFirst(2)))
        default:
            return .respond(error(404, "not-found", "no such endpoint: \(head.method) \(head.path)"))
        }
    }

    // MARK: - Receipts

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
    private func refusal(carrier: String, query: [String: String], endpoint: String) -> ServerResponse? {
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
            return storeError(error)
        }
    }

    // MARK: - Metrics

    /// Prometheus text format: messages by campaign, carrier and state; carriers' rates and in-flight requests.
    func metrics() -> ServerResponse {
        var out = "# HELP loa_messages Messages by campaign, carrier and state.\n# TYPE loa_messages gauge\n"
        var segments = "# HELP loa_campaign_sms_parts SMS parts of a campaign's accepted messages.\n# TYPE loa_campaign_sms_parts gauge\n"
        var recovered = "# HELP loa_campaign_recovered_unknown Messages of a campaign found in flight at a start and made unknown, over all starts.\n"
            + "# TYPE loa_campaign_recovered_unknown gauge\n"
        var queue: [String: Int64] = [:]
        do {
            for c in try store.campaigns() {
                for (carrier, states) in c.carriers.sorted(by: { $0.key < $1.key }) {
                    for (state, n) in states.sorted(by: { $0.key < $1.key }) {
                        out += "loa_messages{campaign=\"\(c.id)\",carrier=\"\(carrier)\",state=\"\(state)\"} \(n)\n"
                        if state == "queued" { queue[carrier, default: 0] += n }
                    }
                }
                segments += "loa_campaign_sms_parts{campaign=\"\(c.id)\"} \(c.segmentsTotal)\n"
                if c.recoveredUnknown > 0 { recovered += "loa_campaign_recovered_unknown{campaign=\"\(c.id)\"} \(c.recoveredUnknown)\n" }
            }
        } catch {
            return self.error(503, "store-unavailable", "\(error)")
        }
        out += segments + recovered
        let r = store.recovery
        out += "# HELP loa_recovery_unknown_messages Messages in flight at the last stop, made unknown (never resent) at this start.\n"
            + "# TYPE loa_recovery_unknown_messages gauge\nloa_recovery_unknown_messages \(r.unknownMessages)\n"
            + "# HELP loa_recovery_log_lines_repaired Delivery-log lines cut (torn, uncommitted) or written (outbox) at this start.\n"
            + "# TYPE loa_recovery_log_lines_repaired gauge\nloa_recovery_log_lines_repaired \(r.logLinesRepaired)\n"
            + "# HELP loa_recovery_seconds Time this start's recovery took (log repair, in-flight scan).\n"
            + "# TYPE loa_recovery_seconds gauge\nloa_recovery_seconds \(r.seconds)\n"
            + "# HELP loa_store_rows_written_total Rows the store's committed transactions inserted, updated or deleted since start.\n"
            + "# TYPE loa_store_rows_written_total counter\nloa_store_rows_written_total \(store.rowsWritten)\n"
            + "# HELP loa_store_transactions_total Transactions the store committed since start (group commits).\n"
            + "# TYPE loa_store_transactions_total counter\nloa_store_transactions_total \(store.transactionsCommitted)\n"
        let status = dispatcher.status()
        /// One gauge or counter with a value per carrier.
        func perCarrier(_ name: String, _ type: String, _ help: String, _ value: (Dispatcher.CarrierStatus) -> String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for c in status { out += "\(name){carrier=\"\(c.name)\"} \(value(c))\n" }
        }
        perCarrier("loa_carrier_in_flight", "gauge", "Requests in flight per carrier.") { "\($0.inFlight)" }
        perCarrier("loa_carrier_rate", "gauge", "Requests started per second over the last 10 s.") { "\($0.currentRate)" }
        perCarrier("loa_carrier_rate_limit", "gauge", "Configured rate per second (in the carrier's rate_unit).") { "\($0.configuredRate)" }
        perCarrier("loa_carrier_allowed_rate", "gauge", "The adaptive limiter's rate now (lower after throttling).") { "\($0.allowedRate)" }
        out += "# HELP loa_carrier_breaker Circuit breaker state per carrier (1 for the current state).\n# TYPE loa_carrier_breaker gauge\n"
        for c in status {
            for st in [CircuitBreaker.State.closed, .open, .halfOpen] {
                out += "loa_carrier_breaker{carrier=\"\(c.name)\",state=\"\(st.rawValue)\"} \(c.breaker == st ? 1 : 0)\n"
            }
        }
        perCarrier("loa_queue_depth", "gauge", "Queued messages per carrier.") { "\(queue[$0.name] ?? 0)" }
        perCarrier("loa_sms_parts_sent_total", "counter", "SMS parts of the messages each carrier accepted since start.") { "\($0.segmentsSent)" }
        perCarrier("loa_carrier_requests_total", "counter", "HTTP requests started per carrier since start.") { "\($0.requests)" }
        perCarrier("loa_limiter_tokens", "gauge", "Tokens in each carrier's bucket now (negative while long messages are paid for).") { "\($0.tokens)" }
        perCarrier("loa_carrier_paused", "gauge", "1 while a Retry-After answer pauses the carrier.") { $0.pausedUntil > 0 ? "1" : "0" }
        perCarrier("loa_carrier_handoff_outstanding", "gauge",
                   "Messages handed to the gateway and not yet passed on (no smsc-accepted, buffered or final receipt); pace_from_receipts carriers.") {
            "\($0.handoffOutstanding)"
        }
        perCarrier("loa_carrier_passon_rate", "gauge", "The gateway's pass-on pace learned from its receipts, messages per second (0: not known).") {
            "\($0.passOnRate ?? 0)"
        }
        perCarrier("loa_carrier_auth_refused", "gauge", "1 while the gateway refuses Loa's credentials (401/403): the breaker holds its messages.") {
            $0.authRefused != nil ? "1" : "0"
        }
        perCarrier("loa_carrier_paused_identical_failures", "gauge",
                   "1 while the carrier is paused after identical permanent answers in a row (`loa carriers resume` ends it).") {
            $0.pausedReason != nil ? "1" : "0"
        }
        perCarrier("loa_carrier_request_rate_limit", "gauge", "The request rate allowed now (requests_per_second, lower after throttling); 0: none.") {
            "\($0.allowedRequestRate ?? 0)"
        }
        out += "# HELP loa_carrier_answers_total Gateway answers per carrier by class, one per message, since start.\n# TYPE loa_carrier_answers_total counter\n"
        for c in status {
            for cls in ["accepted", "temporary", "throttled", "permanent", "unavailable", "ambiguous", "unauthorized"] {
                out += "loa_carrier_answers_total{carrier=\"\(c.name)\",class=\"\(cls)\"} \(c.answers[cls] ?? 0)\n"
            }
        }
        out += "# HELP loa_receipt_latency_seconds Time from the gateway's acceptance to the final receipt.\n# TYPE loa_receipt_latency_seconds histogram\n"
        out += store.receiptLatency.withLock { $0 }.prometheus("loa_receipt_latency_seconds")
        return ServerResponse(status: 200, headers: [.init("Content-Type", "text/plain; version=0.0.4")], body: Array(out.utf8))
    }

    // MARK: - Operator API

    private func api(_ head: RequestHead, _ p: [String]) -> Route {
        switch (head.method, p.count) {
        case ("GET", 1) where p[0] == "campaigns":
            return .respond(result { try JSONEncoder.api.encode(self.store.campaigns()) })
        case ("POST", 1) where p[0] == "campaigns":
            return .buffer(limit: 4 << 20) { [self] _, body in createCampaign(body) }
        case ("GET", 2) where p[0] == "campaigns":
            return .respond(result {
                guard let c = try self.store.campaign(p[1]) else { throw StoreError.notFound("campaign \(p[1])") }
                return try JSONEncoder.api.encode(CampaignView(c, now: SystemTimeSource().now(), feasibility: self.feasibility(c)))
            })
        case ("DELETE", 2) where p[0] == "campaigns":
            return .respond(result {
                guard let c = try self.store.campaign(p[1]) else { throw StoreError.notFound("campaign \(p[1])") }
                try self.store.discardLoadingCampaign(p[1], generation: try self.generation(head) ?? c.generation)
                _ = self.uploads.withLock { $0.removeValue(forKey: self.uploadKey(p[1], c.generation)) }
                return Data("{\"discarded\":true}".utf8)
            })
        case ("POST", 3) where p[0] == "campaigns" && p[2] == "commit":
            do { return .respond(commit(p[1], generation: try generation(head))) } catch { return .respond(storeError(error)) }
        case ("POST", 3) where p[0] == "campaigns" && ["pause", "resume", "cancel"].contains(p[2]):
            let event: CampaignEvent = p[2] == "pause" ? .pause : p[2] == "cancel" ? .cancel : .resume(started: true)
            return .respond(result {
                let state = try self.store.apply(event, to: p[1], now: SystemTimeSource().now())
                self.logger.notice("campaign state changed by the operator", ["campaign.id": p[1], "campaign.state": state.rawValue])
                self.dispatcher.wake()
                return Data("{\"id\":\(JSONText.quoted(p[1])),\"state\":\"\(state.rawValue)\"}".utf8)
            })
        case ("PUT", 4) where p[0] == "campaigns" && p[2] == "segments":
            return uploadSegment(campaign: p[1], segment: p[3], head: head)
        case ("POST", 5) where p[0] == "campaigns" && p[2] == "segments" && p[4] == "from-campaign":
            return .respond(segmentFromCampaign(campaign: p[1], segment: p[3], head: head))
        case ("PUT", 4) where p[0] == "campaigns" && p[2] == "exclusions":
            return uploadExclusion(campaign: p[1], name: p[3], head: head)
        case ("GET", 3) where p[0] == "campaigns" && p[2] == "report":
            return .respond(result {
                guard try self.store.campaign(p[1]) != nil else { throw StoreError.notFound("campaign \(p[1])") }
                return try JSONEncoder.api.encode(try self.store.reportData(campaign: p[1]))
            })
        case ("GET", 3) where p[0] == "campaigns" && p[2] == "messages":
            let after = head.query["after"].flatMap { Int64($0) } ?? 0
            let limit = min(max(head.query["limit"].flatMap { Int($0) } ?? 10_000, 1), 50_000)
            return .respond(result {
                guard try self.store.campaign(p[1]) != nil else { throw StoreError.notFound("campaign \(p[1])") }
                let rows = try self.store.reportRows(campaign: p[1], after: after, limit: limit)
                var out = "{\"rows\":["
                for (i, r) in rows.enumerated() {
                    if i > 0 { out += "," }
                    out += "[\(r.id),\(JSONText.quoted(r.phone)),\(JSONText.quoted(r.carrier)),\(JSONText.quoted(r.state)),\(JSONText.quoted(r.reason)),"
                        + "\(r.attempts),\(r.updatedAt),\(JSONText.quoted(r.source)),\(r.line),\(JSONText.quoted(r.group)),\(JSONText.quoted(r.gatewayID))]"
                }
                out += "],\"next\":\(rows.count == limit ? String(rows.last!.id) : "null")}"
                return Data(out.utf8)
            })
        case ("GET", 3) where p[0] == "campaigns" && p[2] == "rejects":
            return .respond(rejects(campaign: p[1], query: head.query))
        case ("POST", 1) where p[0] == "optouts", ("DELETE", 1) where p[0] == "optouts":
            let add = head.method == "POST"
            return .buffer(limit: 64 << 20) { [self] _, body in optOuts(body, add: add) }
        case ("GET", 1) where p[0] == "optouts":
            if head.query["format"] == "text" {
                // The list itself, one E.164 number per line (for loa preview).
                do {
                    let list = try store.optOuts()
                    return .respond(ServerResponse(status: 200, headers: [.init("Content-Type", "text/plain")],
                                                   body: Array((list.joined(separator: "\n") + (list.isEmpty ? "" : "\n")).utf8)))
                } catch {
                    return .respond(storeError(error))
                }
            }
            return .respond(result { Data("{\"count\":\(try self.store.optOutCount())}".utf8) })
        case ("GET", 1) where p[0] == "carriers":
            return .respond(result { try JSONEncoder.api.encode(self.dispatcher.status()) })
        case ("POST", 3) where p[0] == "carriers" && p[2] == "resume":
            // Ends a pause after identical permanent answers (operator routes are all behind the API token).
            guard config.carriers.contains(where: { $0.name == p[1] }) else { return .respond(error(404, "not-found", "no carrier \(p[1])")) }
            guard dispatcher.resume(carrier: p[1]) else { return .respond(error(409, "not-paused", "carrier \(p[1]) is not paused")) }
            return .respond(json(200, ["carrier": p[1], "state": "resumed"]))
        default:
            return .respond(error(404, "not-found", "no such endpoint: \(head.method) \(head.path)"))
        }
    }

    private func createCampaign(_ body: [UInt8]) -> ServerResponse {
        if let value = JSONValue.parse(body), let key = JSONValue.firstDuplicateKey(value) {
            return invalidCampaign([CampaignRules.Issue(key, "given twice")])
        }
        let sub: CampaignSubmission
        do {
            sub = try JSONDecoder().decode(CampaignSubmission.self, from: Data(body))
        } catch let e as UnknownField {
            return invalidCampaign([CampaignRules.Issue(e.path, e.reason)])
        } catch let e as DecodingError {
            return self.error(400, "bad-request", "campaign: \(DecodingProblem.text(e))")
        } catch {
            return self.error(400, "bad-request", "campaign: \(error)")
        }
        // The same rules `loa check` applies to the campaign file (``CampaignRules``).
        let issues = CampaignRules.check(sub, knownCarriers: config.carriers.map(\.name))
        guard issues.isEmpty, let start = ISOTime.parse(sub.start), let deadline = ISOTime.parse(sub.deadline) else {
            return invalidCampaign(issues)
        }
        return result(status: 201) {
            let generation = try self.store.createCampaign(sub, startAt: start, deadlineAt: deadline)
            self.logger.info("campaign created", ["campaign.id": sub.id])
            return Data("{\"id\":\(JSONText.quoted(sub.id)),\"state\":\"loading\",\"generation\":\(generation)}".utf8)
        }
    }

    /// 422 with each problem as `field: reason` in the message (as `loa check` prints them) and in `problems`.
    private func invalidCampaign(_ issues: [CampaignRules.Issue]) -> ServerResponse {
        let list = issues.map { "{\"field\":\(JSONText.quoted($0.field)),\"reason\":\(JSONText.quoted($0.reason))}" }.joined(separator: ",")
        let message = issues.map(\.description).joined(separator: "; ")
        return .json(422, Array("{\"error\":{\"code\":\"invalid-campaign\",\"message\":\(JSONText.quoted(message)),\"problems\":[\(list)]}}".utf8))
    }

    private func commit(_ id: String, generation: Int64?) -> ServerResponse {
        do {
            guard let c = try store.campaign(id), let spec = c.spec else { throw StoreError.notFound("campaign \(id)") }
            if let generation, generation != c.generation {
                throw StoreError.conflict("campaign \(id) was discarded (and perhaps created again) since this request began")
            }
            let done = uploads.withLock { $0[uploadKey(id, c.generation)] ?? [] }
            let missing = spec.segments.map(\.name).filter { !done.contains($0) }
            if c.state == .loading && !missing.isEmpty {
                return error(409, "segments-missing", "segments not uploaded yet: \(missing.joined(separator: ", "))")
            }
            try store.commitCampaign(id, generation: c.generation)
            _ = uploads.withLock { $0.removeValue(forKey: uploadKey(id, c.generation)) }
            let f = feasibility(c)
            logger.info("campaign committed", ["campaign.id": id, "accepted": "\(c.accepted)", "rejected": "\(c.rejected)",
                                               "feasibility.on_time": "\(f.onTime)"])
            dispatcher.wake()
            var answer = ["id": id, "state": "scheduled", "needed_hours": String(format: "%.2f", f.neededSeconds / 3600),
                          "window_hours": String(format: "%.2f", f.windowSeconds / 3600)]
            if let eta = f.eta { answer["eta"] = ISOTime.format(eta) }
            if let w = f.warning { answer["warning"] = w }
            return json(200, answer)
        } catch {
            return storeError(error)
        }
    }

    private func uploadSegment(campaign: String, segment: String, head: RequestHead) -> Route {
        let record: CampaignRecord
        do {
            guard let r = try store.campaign(campaign), let _ = r.spec else { return .respond(error(404, "not-found", "campaign \(campaign)")) }
            record = r
            if let g = try generation(head), g != r.generation { throw StoreError.conflict("campaign \(campaign) is not the one created with generation \(g)") }
        } catch {
            return .respond(storeError(error))
        }
        guard record.state == .loading else { return .respond(error(409, "conflict", "campaign \(campaign) is \(record.state.rawValue), not loading")) }
        guard let spec = record.spec, let info = spec.segments.first(where: { $0.name == segment }) else {
            return .respond(error(404, "unknown-segment", "campaign \(campaign) has no segment named \(segment)"))
        }
        let key = uploadKey(campaign, record.generation)
        let fresh = uploads.withLock { $0[key, default: []].insert(segment).inserted }
        guard fresh else { return .respond(error(409, "conflict", "segment \(segment) was already uploaded")) }
        let templates = spec.templates.compactMap { try? Template(name: $0.name, source: $0.text) }
        return .stream(ReaderUpload.segment(self, campaign: spec, generation: record.generation, templates: templates, segment: info))
    }

    /// A reminder wave: the recipients of an earlier campaign in the given final states become this segment's
    /// rows (the campaign's exclusions and the opt-out list apply as for any segment).
    private func segmentFromCampaign(campaign: String, segment: String, head: RequestHead) -> ServerResponse {
        do {
            guard let r = try store.campaign(campaign), let spec = r.spec else { return error(404, "not-found", "campaign \(campaign)") }
            if let g = head.query["generation"], Int64(g) != r.generation {
                return error(409, "conflict", "campaign \(campaign) was discarded (and perhaps created again) since this request began")
            }
            guard r.state == .loading else { return error(409, "conflict", "campaign \(campaign) is \(r.state.rawValue), not loading") }
            guard let info = spec.segments.first(where: { $0.name == segment }), let source = info.fromCampaign else {
                return error(404, "unknown-segment", "campaign \(campaign) has no reminder segment named \(segment)")
            }
            guard try store.campaign(source) != nil else { return error(422, "invalid-segment", "\(segment): no earlier campaign named \(source)") }
            let states = (info.states ?? []).compactMap { MessageState(name: $0) }
            guard !states.isEmpty else { return error(422, "invalid-segment", "\(segment): states must name message states") }
            let fresh = uploads.withLock { $0[uploadKey(campaign, r.generation), default: []].insert(segment).inserted }
            guard fresh else { return error(409, "conflict", "segment \(segment) was already loaded") }
            let templates = spec.templates.compactMap { try? Template(name: $0.name, source: $0.text) }
            var counts = IngestCounts()
            let reader = SegmentReader(source: segment, format: .lines, campaign: spec, templates: templates, phoneColumn: "phone",
                                       router: config.router) { rows in counts.add(try self.store.ingest(campaign: campaign, generation: r.generation, rows: rows)) }
            var after: Int64 = 0
            while true {
                let page = try store.recipients(of: source, states: states, after: after, limit: 5_000)
                guard let last = page.last else { break }
                let bytes = Array(page.map(\.phone).joined(separator: "\n").utf8) + [10]
                try bytes.withUnsafeBytes { try reader.feed($0) }
                after = last.id
            }
            try reader.finish()
            return .json(200, Array((try JSONEncoder.api.encode(counts))))
        } catch let h as SegmentReader.HeaderError {
            uploadFailed(campaign: campaign, segment: segment)
            return error(422, "invalid-segment", h.description)
        } catch {
            uploadFailed(campaign: campaign, segment: segment)
            return storeError(error)
        }
    }

    private func uploadExclusion(campaign: String, name: String, head: RequestHead) -> Route {
        let spec: CampaignSubmission
        let generation: Int64
        do {
            guard let r = try store.campaign(campaign), let sp = r.spec else { return .respond(error(404, "not-found", "campaign \(campaign)")) }
            guard r.state == .loading else { return .respond(error(409, "conflict", "campaign \(campaign) is \(r.state.rawValue), not loading")) }
            if let g = try self.generation(head), g != r.generation { throw StoreError.conflict("campaign \(campaign) is not the one created with generation \(g)") }
            spec = sp
            generation = r.generation
        } catch {
            return .respond(storeError(error))
        }
        guard let info = spec.exclusions.first(where: { $0.name == name }) else {
            return .respond(error(404, "unknown-exclusion", "campaign \(campaign) has no exclusion file named \(name)"))
        }
        let key = uploadKey(campaign, generation)
        let done = uploads.withLock { $0[key, default: []] }
        if !spec.segments.filter({ done.contains($0.name) }).isEmpty {
            return .respond(error(409, "conflict", "upload exclusion files before segments"))
        }
        _ = uploads.withLock { $0[key, default: []].insert("exclude:" + name) }
        return .stream(ReaderUpload.exclusion(self, campaign: spec, generation: generation, file: info))
    }

    private func rejects(campaign: String, query: [String: String]) -> ServerResponse {
        let after = query["after"].flatMap { Int64($0) } ?? 0
        let limit = min(max(query["limit"].flatMap { Int($0) } ?? 10_000, 1), 50_000)
        return result {
            guard try self.store.campaign(campaign) != nil else { throw StoreError.notFound("campaign \(campaign)") }
            let page = try self.store.rejects(campaign: campaign, after: after, batch: limit)
            var out = "{\"rows\":["
            for (i, r) in page.enumerated() {
                if i > 0 { out += "," }
                out += "{\"source\":\(JSONText.quoted(r.row.source)),\"line\":\(r.row.line),\"raw\":\(JSONText.quoted(r.row.raw)),"
                    + "\"reason\":\(JSONText.quoted(r.row.reason)),\"detail\":\(JSONText.quoted(r.row.detail))}"
            }
            out += "],\"next\":\(page.count == limit ? String(page.last!.cursor) : "null")}"
            return Data(out.utf8)
        }
    }

    /// The body is numbers, one per line, in any written form.
    private func optOuts(_ body: [UInt8], add: Bool) -> ServerResponse {
        var phones: [String] = []
        var invalid: [String] = []
        for (i, line) in String(decoding: body, as: UTF8.self).split(whereSeparator: \.isNewline).enumerated() {
            let raw = line.trimmingCharacters(in: .whitespaces)
            if raw.isEmpty { continue }
            switch PhoneNormalizer.normalize(raw, allowedCountryCodes: []) {
            case .success(let p): phones.append(p.e164)
            case .failure(let r): invalid.append("line \(i + 1): \(r.code)")
            }
        }
        guard invalid.isEmpty else { return error(422, "invalid-number", invalid.prefix(20).joined(separator: "; ")) }
        return result {
            let n = add ? try self.store.addOptOuts(phones, source: "api") : try self.store.removeOptOuts(phones)
            self.logger.info(add ? "numbers opted out" : "numbers opted back in", ["count": "\(n)"])
            return Data("{\"\(add ? "added" : "removed")\":\(n),\"count\":\(try self.store.optOutCount())}".utf8)
        }
    }

    fileprivate func uploadFailed(campaign: String, generation: Int64? = nil, segment: String) {
        let g = generation ?? ((try? store.campaign(campaign))??.generation ?? 0)
        _ = uploads.withLock { $0[uploadKey(campaign, g)]?.remove(segment) }
    }

    /// Deadline feasibility from what is left per carrier, the carriers' configured rates and the windows.
    func feasibility(_ c: CampaignRecord) -> Feasibility {
        var remaining: [String: Int64] = [:]
        let partsPerMessage = c.accepted == 0 ? 1 : Double(c.segmentsTotal) / Double(c.accepted)
        let inSegments = Dictionary(uniqueKeysWithValues: config.carriers.map { ($0.name, $0.rateInSegments) })
        for (carrier, states) in c.carriers {
            let messages = (states["queued"] ?? 0) + (states["sending"] ?? 0)
            // Carriers that count parts need the parts, not the messages.
            remaining[carrier] = inSegments[carrier] == true ? Int64((Double(messages) * partsPerMessage).rounded(.up)) : messages
        }
        let rates = Dictionary(uniqueKeysWithValues: config.carriers.map { ($0.name, $0.rate) })
        return Feasibility.estimate(remaining: remaining, rates: rates, maxRate: c.spec?.maxRate,
                                    windows: c.spec?.sendWindows ?? .standard, start: c.startAt, deadline: c.deadlineAt,
                                    now: SystemTimeSource().now())
    }

    // MARK: - Helpers

    private func authorized(_ head: RequestHead) -> Bool {
        guard let h = head.headers["authorization"], h.hasPrefix("Bearer ") else { return false }
        return Self.constantTimeEqual(Array(h.dropFirst(7).utf8), token)
    }

    /// Whether two secrets are equal, in a time that depends on their lengths only, never on where they differ.
    /// A length mismatch does not return early (that told a prober the secret's length): every byte up to the
    /// longer length is compared, the shorter side read as zeros, and the length difference folded into the result.
    static func constantTimeEqual<A: RandomAccessCollection<UInt8>, B: RandomAccessCollection<UInt8>>(_ a: A, _ b: B) -> Bool
    where A.Index == Int, B.Index == Int {
        var diff = UInt(bitPattern: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? a[a.startIndex + i] : 0
            let y = i < b.count ? b[b.startIndex + i] : 0
            diff |= UInt(x ^ y)
        }
        return diff == 0
    }

    func json(_ status: Int, _ dict: [String: String]) -> ServerResponse {
        .json(status, Array((try? JSONEncoder.api.encode(dict)) ?? Data("{}".utf8)))
    }

    func error(_ status: Int, _ code: String, _ message: String) -> ServerResponse {
        .json(status, Array("{\"error\":{\"code\":\(JSONText.quoted(code)),\"message\":\(JSONText.quoted(message))}}".utf8))
    }

    func storeError(_ e: Error) -> ServerResponse {
        switch e {
        case StoreError.notFound(let m): error(404, "not-found", m)
        case StoreError.conflict(let m): error(409, "conflict", m)
        case StoreError.invalid(let m): error(422, "invalid", m)
        default: error(500, "internal", "\(e)")
        }
    }

    private func result(status: Int = 200, _ body: () throws -> Data) -> ServerResponse {
        do { return .json(status, Array(try body())) } catch { return storeError(error) }
    }
}

/// Streams an uploaded body through a reader (segment or exclusion file) and answers with its result.
/// The reader's own errors become 422 naming the file, line and field; store errors map as elsewhere.
final class ReaderUpload: BodySink {
    let service: DaemonService
    private let feed: (UnsafeRawBufferPointer) throws -> Void
    private let end: () throws -> [UInt8]
    private let onFailure: () -> Void
    private let code: String
    private var failure: ServerResponse?

    init(service: DaemonService, code: String, feed: @escaping (UnsafeRawBufferPointer) throws -> Void,
         end: @escaping () throws -> [UInt8], onFailure: @escaping () -> Void = {}) {
        self.service = service
        self.code = code
        self.feed = feed
        self.end = end
        self.onFailure = onFailure
    }

    func consume(_ bytes: UnsafeRawBufferPointer) -> ServerResponse? {
        guard failure == nil else { return failure }
        do { try feed(bytes) } catch { failure = fail(error) }
        return failure
    }

    func finish() -> ServerResponse {
        if let failure { return failure }
        do { return .json(200, try end()) } catch { return fail(error) }
    }

    private func fail(_ error: Error) -> ServerResponse {
        onFailure()
        if let h = error as? SegmentReader.HeaderError { return service.error(422, code, h.description) }
        return service.storeError(error)
    }

    /// One segment into the store, in batches.
    static func segment(_ service: DaemonService, campaign: CampaignSubmission, generation: Int64, templates: [Template],
                        segment: CampaignSubmission.SegmentInfo) -> ReaderUpload {
        let counts = Box(IngestCounts())
        let reader = SegmentReader(source: segment.name, format: segment.format, campaign: campaign, templates: templates,
                                   phoneColumn: segment.phoneColumn, router: service.config.router) { rows in
            // Bound to the campaign it began for: once that one is discarded, the rest of the stream is refused.
            counts.value.add(try service.store.ingest(campaign: campaign.id, generation: generation, rows: rows))
        }
        return ReaderUpload(service: service, code: "invalid-segment", feed: { try reader.feed($0) },
                            end: { try reader.finish(); return Array(try JSONEncoder.api.encode(counts.value)) },
                            onFailure: { service.uploadFailed(campaign: campaign.id, generation: generation, segment: segment.name) })
    }

    /// One exclusion file into the campaign's exclusion list.
    static func exclusion(_ service: DaemonService, campaign: CampaignSubmission, generation: Int64, file: CampaignSubmission.SegmentInfo) -> ReaderUpload {
        let added = Box(0)
        let reader = ExclusionReader(source: file.name, format: file.format, phoneColumn: file.phoneColumn,
                                     allowedCountryCodes: Set(campaign.allowedCountryCodes)) { phones in
            added.value += try service.store.addExclusions(campaign: campaign.id, generation: generation, phones: phones)
        }
        return ReaderUpload(service: service, code: "invalid-exclusion", feed: { try reader.feed($0) }, end: {
            try reader.finish()
            return Array("{\"read\":\(reader.read),\"added\":\(added.value),\"invalid\":\(reader.invalid)}".utf8)
        })
    }
}

/// A mutable value shared by closures of one upload (all run on that connection's thread).
final class Box<T> {
    var value: T
    init(_ value: T) { self.value = value }
}

/// The operator API's view of a campaign.
struct CampaignView: Encodable {
    var campaign: CampaignRecord
    var progress: Double
    var finalCount: Int64
    var feasibility: Feasibility

    init(_ c: CampaignRecord, now: UnixMillis, feasibility: Feasibility) {
        campaign = c
        self.feasibility = feasibility
        // Every recipient (rejected rows aside) counts; progress is the share in a final state.
        let recipients = c.states.filter { $0.key != MessageState.rejected.name }
        finalCount = recipients.filter { MessageState(name: $0.key)?.isFinal == true }.values.reduce(0, +)
        let total = recipients.values.reduce(0, +)
        progress = total == 0 ? 1 : Double(finalCount) / Double(total)
    }

    func encode(to encoder: any Encoder) throws {
        try campaign.encode(to: encoder)
        var c = encoder.container(keyedBy: K.self)
        try c.encode(progress, forKey: .progress)
        try c.encode(finalCount, forKey: .finalCount)
        try c.encode(feasibility, forKey: .feasibility)
    }

    enum K: String, CodingKey { case progress, feasibility, finalCount = "final" }
}

extension JSONEncoder {
    static var api: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        return e
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
