import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import LoaStore
import Synchronization

/// Everything the embedded HTTP server answers: `/healthz`, the receipt endpoints `/dlr/<carrier>` and the
/// operator API under `/api/v1` (bearer token). Handlers run on libmicrohttpd's threads and may block on the store.
///
/// This file holds the service's state and the dispatch of a request; the routes live by concern in
/// `ReceiptRoutes.swift` (receipts and replies), `OperatorRoutes.swift` (the operator API), `HealthRoutes.swift`
/// (health, readiness and metrics) and `Uploads.swift` (streamed segment and exclusion uploads).
final class DaemonService: HTTPService {
    let store: Store
    let config: LoaConfig
    let dispatcher: Dispatcher
    let logger: Logger
    let secrets: [String: [UInt8]]
    private let token: [UInt8]
    /// Segments uploaded per loading campaign and generation (a restart forgets them; the campaign is then discarded
    /// and resubmitted). Keyed by ``uploadKey(_:_:)``, so a discarded campaign's late uploads never count for a new one.
    let uploads = Mutex<[String: Set<String>]>([:])

    /// How each carrier's receipts are read, as its kind built them (``CarrierKind/make(_:engine:)``).
    let receiptFormats: [String: ReceiptFormat]

    /// Polls generic carriers' status APIs; an aggregate callback asks it about its request's messages.
    let poller: ReceiptPoller?

    init(store: Store, config: LoaConfig, dispatcher: Dispatcher, logger: Logger, receiptFormats: [String: ReceiptFormat],
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
        case ("GET", "healthz"): return .respond(healthz())
        case ("GET", "readyz"): return .respond(readyz())
        case ("GET", ReceiptURL.pathSegment) where parts.count == 2, ("POST", ReceiptURL.pathSegment) where parts.count == 2:
            // The carrier and its secret are checked on the head: a refused request's body is never read.
            if let format = receiptFormats[parts[1]], case .body(let ack) = format.reading {
                let carrier = parts[1]
                let head = receiptHead(head, carrier: carrier)
                if let refused = refusal(carrier: carrier, query: head.query, endpoint: "dlr") { return .refuse(refused) }
                // Jasmin and generic gateways put the receipt in a form or JSON body: read it whole, up to
                // `receiptBodyLimit`.
                return .buffer(limit: Self.receiptBodyLimit) { [self] head, body in
                    self.receipt(carrier: carrier, format: format, ack: ack, head: receiptHead(head, carrier: carrier), body: body)
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

    // MARK: - Helpers

    func authorized(_ head: RequestHead) -> Bool {
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

    func result(status: Int = 200, _ body: () throws -> Data) -> ServerResponse {
        do { return .json(status, Array(try body())) } catch { return storeError(error) }
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
