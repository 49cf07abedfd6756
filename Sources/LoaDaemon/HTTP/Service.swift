import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import LoaStore
import Synchronization

/// Everything the embedded HTTP server answers: `/healthz`, the receipt endpoints `/dlr/<carrier>` and the
/// operator API under `/api/v1` (bearer token). Handlers run on libmicrohttpd's threads and may block on the store.
///
/// This file holds the service's state; `RouteTable.swift` the table's types and the dispatch of a request (auth,
/// encoding, errors, in one place each); the routes live by concern in
/// `ReceiptRoutes.swift` (receipts and replies), `OperatorRoutes.swift` (the operator API), `HealthRoutes.swift`
/// (health, readiness and metrics), `Uploads.swift` (streamed segment and exclusion uploads), `SessionRoutes.swift`
/// (the console's login, session cookie and CSRF) and `ConsoleRoutes.swift` (the console's static files).
final class DaemonService: HTTPService {
    let store: any MessageStore
    let config: LoaConfig
    let dispatcher: Dispatcher
    let logger: Logger
    /// The daemon's clock: handlers read the time from it, never from `Date()`, so routes run on a manual clock in tests.
    let clock: any TimeSource
    let secrets: [String: [UInt8]]
    private let token: [UInt8]
    /// The read-only scrape token (`metrics_token`), nil when none is configured.
    private let metricsToken: [UInt8]?
    /// Segments uploaded per loading campaign and generation (a restart forgets them; the campaign is then discarded
    /// and resubmitted). Keyed by ``uploadKey(_:_:)``, so a discarded campaign's late uploads never count for a new one.
    let uploads = Mutex<[String: Set<String>]>([:])
    /// Each sending campaign's measured pace (``CampaignPaces``), for the campaign view.
    let paces = CampaignPaces()
    /// The live log streams open (`GET /api/v1/log/stream`), against `listen.stream_limit`.
    let liveLogSlots = LiveLogSlots()
    /// How many refused requests the audit trail records (``RecordBudget``): a burst of 60, then one a second.
    let refusalBudget: Mutex<RecordBudget>
    /// The console's sessions, login throttle and files (``ConsoleState``).
    let console: ConsoleState

    /// How each carrier's receipts are read, as its kind built them (``CarrierKind/make(_:engine:)``).
    let receiptFormats: [String: ReceiptFormat]

    /// Polls generic carriers' status APIs; an aggregate callback asks it about its request's messages.
    let poller: ReceiptPoller?
    /// The delivery log, for its reopen counts in `/metrics` (nil in tests that wire a service without one).
    let deliveryLog: DeliveryLogFile?

    init(store: any MessageStore, config: LoaConfig, dispatcher: Dispatcher, logger: Logger, clock: any TimeSource,
         receiptFormats: [String: ReceiptFormat], poller: ReceiptPoller? = nil, deliveryLog: DeliveryLogFile? = nil) {
        self.deliveryLog = deliveryLog
        self.clock = clock
        self.refusalBudget = Mutex(RecordBudget(perSecond: 1, burst: 60, now: clock.now()))
        self.console = ConsoleState(settings: config.console)
        self.poller = poller
        self.receiptFormats = receiptFormats
        self.store = store
        self.config = config
        self.dispatcher = dispatcher
        self.logger = logger
        self.secrets = Dictionary(uniqueKeysWithValues: config.carriers.map { ($0.name, Array($0.receiptSecret.utf8)) })
        self.token = Array(config.apiToken.utf8)
        self.metricsToken = config.metricsToken.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
    }

    // MARK: - Helpers

    func authorized(_ head: RequestHead) -> Bool { authenticate(head)?.role == .admin }

    /// The caller of a request with `Authorization: Bearer <token>`: the configured `api_token` (an admin), or the
    /// live user token with that hash and its user. Nil for no token, a wrong one, or a revoked one.
    func authenticate(_ head: RequestHead) -> Principal? {
        guard let h = head.headers["authorization"], h.hasPrefix("Bearer ") else { return nil }
        let presented = String(h.dropFirst(7))
        if !token.isEmpty && Self.constantTimeEqual(Array(presented.utf8), token) { return .configuredAdmin }
        // Only a value shaped like a user token is looked up; the lookup is by the token's hash, so its time says
        // nothing about how close a guess came.
        guard Secrets.looksLikeToken(presented), let p = try? store.principal(tokenHash: Secrets.tokenHash(presented)) else { return nil }
        return Principal(name: p.user, role: p.role, token: p.token)
    }

    /// Whether the request carries the read-only scrape token (never true when none is configured).
    func metricsAuthorized(_ head: RequestHead) -> Bool {
        guard let metricsToken, let h = head.headers["authorization"], h.hasPrefix("Bearer ") else { return false }
        return Self.constantTimeEqual(Array(h.dropFirst(7).utf8), metricsToken)
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

    func error(_ status: Int, _ code: String, _ message: String) -> ServerResponse { Self.errorResponse(status, code, message) }

    /// The API's error body: `{"error":{"code":…,"message":…}}`.
    static func errorResponse(_ status: Int, _ code: String, _ message: String) -> ServerResponse {
        .json(status, Array("{\"error\":{\"code\":\(JSONText.quoted(code)),\"message\":\(JSONText.quoted(message))}}".utf8))
    }
}

extension JSONEncoder {
    static var api: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        return e
    }
}
