import LoaCore

/// One message as an adapter sends it.
public struct OutgoingSMS: Sendable, Equatable {
    /// Loa's own message id: the key receipts come back with.
    public var id: Int64
    /// The brandname.
    public var from: String
    /// E.164 with the leading `+`.
    public var to: String
    public var text: String
    /// Chosen at ingest from the campaign's policy; the adapter MUST send this coding.
    public var encoding: SMSEncoding
    public var segments: Int
    /// The full receipt URL for this message (carries Loa's id and the carrier's receipt secret).
    public var receiptURL: String
    /// The campaign's deadline (ms since the epoch), or nil when none applies: adapters that can pass a validity
    /// period to the gateway (Kannel `validity`, Jasmin `validity-period`, generic templates) derive it from this,
    /// so the network drops what it could not deliver in time instead of delivering it late.
    public var validUntil: UnixMillis?
    /// The validity period fixed when the request is built (milliseconds), when the adapter bounds it to what the
    /// provider takes (generic `validity_range`); nil: the time left until ``validUntil``.
    public var validityMillis: Int64?

    public init(id: Int64, from: String, to: String, text: String, encoding: SMSEncoding, segments: Int, receiptURL: String,
                validUntil: UnixMillis? = nil) {
        self.validUntil = validUntil
        self.id = id
        self.from = from
        self.to = to
        self.text = text
        self.encoding = encoding
        self.segments = segments
        self.receiptURL = receiptURL
    }
}

/// The response headers the adapters read: answers are classified by status and body, and the rate-limit
/// headers (`Retry-After`, `RateLimit`, `X-RateLimit-Reset`, …: ``RateLimitHeaders``) pace a throttled carrier.
/// The engine skips the other headers.
let adapterResponseHeaders = RateLimitHeaders.names

extension HTTPResponse {
    /// How long a throttled answer asks to wait, from whichever rate-limit header it carries (``RateLimitHeaders``),
    /// as the seconds text the adapters' `classify(…, retryAfter:)` take; nil when no header says.
    public var rateLimitWait: String? {
        RateLimitHeaders.parse(now: SystemTimeSource().now(), header: header).waitSeconds.map { "\($0)" }
    }
}

/// What a gateway's answer means, classified once so retries follow from the class (Kannel's
/// SMSCCONN_FAILED_TEMPORARILY / REJECTED / QFULL, Courier's retryable errors).
public enum GatewayOutcome: Sendable, Equatable {
    /// The gateway took the message; a receipt may follow. `partIDs`: the gateway's ids of each SMS part when it
    /// names them one by one (Vonage's `messages[]`), so receipts for any part find the message.
    case accepted(gatewayID: String?, detail: String?, partIDs: [String] = [])
    /// Try again later: the gateway or the link is failing, or the request never reached it.
    case temporary(String)
    /// The gateway asks us to slow down; `retryAfter` in seconds when it said.
    case throttled(retryAfter: Double?, String)
    /// Never retry this message: malformed, refused number, content rejected.
    case permanent(String)
    /// The gateway could not be reached, so nothing was sent (connection refused, connect timeout): the message
    /// waits and is tried again without spending an attempt. While a gateway is down its messages wait; they don't fail.
    case unavailable(String)
    /// The request may have reached the gateway but no answer came (timeout after sending, connection lost
    /// mid-exchange). Resending could deliver twice, so the message ends `unknown` (a receipt can still settle it),
    /// unless the carrier is marked idempotent, when it is retried like `.temporary`.
    case ambiguous(String)
    /// The gateway refused Loa's credentials (HTTP 401/403 "Authorization failed", a revoked key): nothing was
    /// sent. The message waits without spending an attempt, like `.unavailable`, and the carrier's breaker opens
    /// with this reason, shown in `campaign show`, `loa carriers`, the log and /metrics: only the operator can fix it.
    case unauthorized(String)

    /// The detail of a message fenced before its request left (``fenced``).
    public static let fencedDetail = "not sent: this node's cluster lease had ended before the request left (fenced)"

    /// A message whose request was never sent because its node no longer held its cluster lease (the engine's
    /// gate refused it, ``TransportError/fenced(_:)``, or the dispatcher did before a task-based send). Nothing
    /// left: it is requeued, and if a survivor already settled it as `unknown`, that stands (the requeue is stale).
    public static var fenced: GatewayOutcome { .unavailable(fencedDetail) }

    /// This outcome is ``fenced``.
    public var isFenced: Bool { self == .fenced }

    /// The detail of a message whose request waited at its carrier's pace until its send window closed or its
    /// campaign's deadline passed (``heldPastCutoff``).
    public static let heldPastCutoffDetail = "not sent: its send window closed or its deadline passed while it waited for the carrier's pace"

    /// A message whose request was never sent because, while it waited at its carrier's pace where requests leave,
    /// its send window closed or its deadline passed (the engine's gate refused it). Nothing left: it waits for the
    /// next window, or expires past the deadline. Never the gateway's doing: nothing for the breaker.
    public static var heldPastCutoff: GatewayOutcome { .unavailable(heldPastCutoffDetail) }

    /// This outcome is ``heldPastCutoff``.
    public var isHeldPastCutoff: Bool { self == .heldPastCutoff }

    /// The same outcome with its detail text passed through `f` (to scrub secrets and message text).
    public func mapDetail(_ f: (String) -> String) -> GatewayOutcome {
        switch self {
        case .accepted(let id, let d, let parts): .accepted(gatewayID: id, detail: d.map(f), partIDs: parts)
        case .temporary(let d): .temporary(f(d))
        case .throttled(let r, let d): .throttled(retryAfter: r, f(d))
        case .permanent(let d): .permanent(f(d))
        case .unavailable(let d): .unavailable(f(d))
        case .ambiguous(let d): .ambiguous(f(d))
        case .unauthorized(let d): .unauthorized(f(d))
        }
    }

    /// The outcome of a request that got no HTTP answer. `idempotent` gateways (a request id deduplicates
    /// resends, like eSMS's `RequestId`) turn ambiguous failures into plain temporary ones.
    public static func transport(_ e: TransportError, idempotent: Bool = false) -> GatewayOutcome {
        switch e {
        case .couldNotConnect(let s): return .unavailable("could not connect: \(s)")
        case .timedOut(let s):
            let d = "timed out after sending (the gateway may have the message): \(s)"
            return idempotent ? .temporary(d) : .ambiguous(d)
        case .connectionLost(let s):
            let d = "connection lost mid-exchange (the gateway may have the message): \(s)"
            return idempotent ? .temporary(d) : .ambiguous(d)
        case .other(let code, let s) where code == TransportError.malformedURLCode || code == TransportError.badArgumentCode:
            // The request could not be built from this message (a URL longer than libcurl takes, a header value with
            // a line break): nothing was sent, and a retry would build the same request, charging the carrier's
            // bucket each time. A permanent failure of this message.
            return .permanent("request could not be built, nothing sent: curl error \(code): \(s)")
        case .other(let code, let s):
            let d = "curl error \(code): \(s)"
            // A cancelled request may have left; any other libcurl failure is treated as not having reached the gateway.
            return e.isCancellation && !idempotent ? .ambiguous(d) : .temporary(d)
        case .shutdown: return .unavailable("shutting down before the request was sent")
        case .fenced: return .fenced
        }
    }
}

/// A carrier gateway connection.
///
/// Contract, in the manner of Kannel's `smscconn_p.h`:
/// - An adapter MUST return exactly one ``GatewayOutcome`` for every ``send(_:)`` call and MUST NOT throw or
///   trap on any gateway answer, however malformed.
/// - An adapter MUST classify an answer it does not understand as `.temporary` unless the gateway said in a
///   documented way that the message is refused for good.
/// - An adapter MUST send the message in the ``OutgoingSMS/encoding`` given, and MUST pass ``OutgoingSMS/receiptURL``
///   (or its own receipt correlation) so the gateway's receipts reach Loa's receipt endpoint.
/// - An adapter MUST NOT block a thread while waiting: it awaits the shared libcurl engine. It MUST bound every
///   request by a timeout.
/// - An adapter MUST NOT put credentials or message text in outcome details (they reach logs and the API): it
///   passes every answer through its ``SecretMask`` before cutting it to length.
/// - An adapter SHOULD report the gateway's own message id in `.accepted` when the gateway returns one.
/// - An adapter SHOULD turn HTTP 429 and 503 into `.throttled`, passing the wait its rate-limit headers give
///   (``HTTPResponse/rateLimitWait``).
/// - An adapter SHOULD turn a refusal of its credentials (401, 403 that is not throttling) into `.unauthorized`.
/// - An adapter MAY batch several messages into one request when the gateway takes lists.
/// - An adapter whose send is one HTTP exchange SHOULD be a ``OneExchangeAdapter``: the dispatcher then sends
///   its messages without a task each.
/// - At shutdown the engine fails requests still queued; an adapter MUST then return `.temporary` for them,
///   and the dispatcher records them as `unknown` if they may have left.
public protocol CarrierAdapter: Sendable {
    /// The configured carrier name (the routing target and the `/dlr/<name>` path).
    var name: String { get }
    /// The most messages one request carries; 1 for gateways that take one number per request.
    var maxBatch: Int { get }
    /// True when one request carries one text for all its recipients (eSMS bulk, SpeedSMS): the dispatcher then
    /// hands over batches grouped by text.
    var batchesShareText: Bool { get }
    func send(_ message: OutgoingSMS) async -> GatewayOutcome
    /// Sends up to ``maxBatch`` messages in one request. MUST return exactly one outcome per message,
    /// in the order given (a whole-request failure is that outcome repeated).
    func send(batch: [OutgoingSMS]) async -> [GatewayOutcome]
}

extension CarrierAdapter {
    public var maxBatch: Int { 1 }
    public var batchesShareText: Bool { false }

    public func send(batch: [OutgoingSMS]) async -> [GatewayOutcome] {
        var outcomes: [GatewayOutcome] = []
        outcomes.reserveCapacity(batch.count)
        for m in batch { outcomes.append(await send(m)) }
        return outcomes
    }
}

/// An adapter whose ``CarrierAdapter/send(_:)`` is one HTTP exchange on the shared engine: a request built from
/// the message, and an outcome read from the answer or the transport failure. The dispatcher then runs the
/// exchange without a task per message (``start(_:completion:)``): the request is built on its thread and the
/// answer classified on the engine's. Both ways run the same two functions.
public protocol OneExchangeAdapter: CarrierAdapter {
    var engine: CurlEngine { get }
    /// The request for one message.
    func request(for message: OutgoingSMS) -> HTTPRequest
    /// What the answer to ``request(for:)``, or its failure, means for `message`. Runs on the engine thread
    /// from ``start(_:completion:)``: it MUST NOT block.
    func outcome(of result: Result<HTTPResponse, TransportError>, for message: OutgoingSMS) -> GatewayOutcome
    /// The outcome of a message the gateway is known to mishandle, decided without sending it (Jasmin cuts a
    /// message longer than its `long_content_max_parts` and reports it delivered); nil to send. The default: nil.
    func refusal(for message: OutgoingSMS) -> GatewayOutcome?
}

extension OneExchangeAdapter {
    public func refusal(for message: OutgoingSMS) -> GatewayOutcome? { nil }

    public func send(_ message: OutgoingSMS) async -> GatewayOutcome {
        if let refused = refusal(for: message) { return refused }
        let result: Result<HTTPResponse, TransportError>
        do {
            result = .success(try await engine.perform(request(for: message)))
        } catch {
            result = .failure(error)
        }
        return outcome(of: result, for: message)
    }

    /// Sends `message` and returns at once; `completion` gets its outcome, exactly once, on the engine thread
    /// (``CurlEngine/start(_:completion:)``). It MUST NOT block.
    public func start(_ message: OutgoingSMS, completion: @escaping @Sendable (GatewayOutcome) -> Void) {
        if let refused = refusal(for: message) { return completion(refused) }
        engine.start(request(for: message)) { [self] result in completion(outcome(of: result, for: message)) }
    }

    /// Sends `messages` in one hand-over to the engine and returns at once: `completion` gets each message's index
    /// in `messages` and its outcome, exactly once per message, and `round` hears of the end of each engine round
    /// that brought some of them (``CurlEngine/start(_:round:completion:)``). A message refused without sending
    /// (``refusal(for:)``) completes at once, on the caller's thread, before this returns; a round end follows
    /// only the answers of the engine. Neither may block.
    ///
    /// `gate` (nil: none) is asked on the engine thread before each request's handle is added and again in
    /// libcurl's pre-request callback, just before its first byte leaves: a request it refuses is never sent and
    /// completes as ``GatewayOutcome/fenced`` (a cluster node whose lease ended sends nothing it claimed before).
    ///
    /// `pace` (nil: none) admits each request just before it leaves, its cost the message's SMS parts
    /// (``CurlEngine/start(_:round:gate:pace:costs:completion:)``).
    public func start(_ messages: [OutgoingSMS], round: any CompletionRound, gate: (@Sendable () -> Bool)? = nil,
                      pace: (any SendPace)? = nil, completion: @escaping @Sendable (Int, GatewayOutcome) -> Void) {
        var requests: [HTTPRequest] = []
        requests.reserveCapacity(messages.count)
        var costs: [Int] = []
        // Positions in `messages` of the requests sent; nil while none was refused (then they are the same).
        var sent: [Int]?
        for (i, m) in messages.enumerated() {
            if let refused = refusal(for: m) {
                if sent == nil { sent = Array(0..<i) }
                completion(i, refused)
            } else {
                requests.append(request(for: m))
                if pace != nil { costs.append(max(1, m.segments)) }
                sent?.append(i)
            }
        }
        let positions = sent
        engine.start(requests, round: round, gate: gate, pace: pace, costs: pace == nil ? nil : costs) { [self] k, result in
            let i = positions?[k] ?? k
            if case .failure(.fenced) = result { return completion(i, .fenced) }
            completion(i, outcome(of: result, for: messages[i]))
        }
    }
}

/// A delivery receipt as an adapter's receipt format reads it, before the store matches it to a message.
public struct InboundReceipt: Sendable, Equatable {
    /// How the receipt names its message.
    public enum Key: Sendable, Equatable, Hashable {
        /// Loa's own message id (carried in a per-message receipt URL or echoed back by the gateway).
        case loa(Int64)
        /// The gateway's message id, as returned in its answer to the send request.
        case gateway(String)
    }
    public var key: Key
    public var status: ReceiptStatus
    /// The gateway's message id when the receipt carries one.
    public var gatewayID: String?
    /// The gateway's own status words or error code, for the log (no credentials, no message text).
    public var detail: String?

    public init(key: Key, status: ReceiptStatus, gatewayID: String? = nil, detail: String? = nil) {
        self.key = key
        self.status = status
        self.gatewayID = gatewayID
        self.detail = detail
    }
}

/// Why a receipt request could not be read: names the field, for the 400 answer.
public struct ReceiptParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var reason: String
    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }
    public var description: String { "\(field): \(reason)" }
}
