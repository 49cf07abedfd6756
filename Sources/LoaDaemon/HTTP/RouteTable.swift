import Foundation
import LoaCore
import LoaServer
import LoaStore

/// Who may call an endpoint. ``Endpoint`` defaults to ``operatorToken``: a new route is protected unless the
/// table says otherwise, in the line that adds it.
enum Access: Sendable, Equatable {
    /// The admin: the configured `api_token`, or a user token whose user is an admin, as `Authorization: Bearer
    /// <token>` (`/metrics`, and any line that names no other access).
    case operatorToken
    /// A user token (`Authorization: Bearer loa_…`) whose user's role includes this one (``Role/includes(_:)``),
    /// or the configured `api_token`, which acts as an admin. The handler gets the caller in ``Request/principal``.
    case role(Role)
    /// The admin or the read-only scrape token (`metrics_token`): `/metrics`. Prometheus gets a token that cannot
    /// pause or cancel a campaign; the scrape token is refused everywhere else with 403 (known, and not allowed).
    case metricsReader
    /// The carrier's receipt secret in the query's `k`; the path's `{carrier}` names the carrier. Checked on the
    /// head: a refused request's body is never read (an unknown carrier is 404, a wrong secret 401).
    case carrierSecret(CarrierEndpoint)
    /// Anyone: the health probes, which tell nothing but that the daemon is up and its store takes work.
    case open
}

/// The two kinds of requests a gateway makes.
enum CarrierEndpoint: String, Sendable {
    /// Delivery receipts, `/dlr/<carrier>`.
    case dlr
    /// Subscribers' replies, `/mo/<carrier>`.
    case mo
}

/// A path with parameters, such as `/api/v1/campaigns/{id}/pause`. Empty segments are ignored, as they always
/// were (`/api/v1//campaigns/` is `/api/v1/campaigns`); a parameter matches one whole non-empty segment.
struct PathPattern: Sendable, CustomStringConvertible {
    enum Part: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    let parts: [Part]
    let description: String

    init(_ text: String) {
        description = text
        parts = text.split(separator: "/").map { s in
            s.hasPrefix("{") && s.hasSuffix("}") ? .parameter(String(s.dropFirst().dropLast())) : .literal(String(s))
        }
    }

    /// The parameters by name when `segments` (the request path split at `/`) fit this pattern, else nil.
    func match(_ segments: [Substring]) -> [String: String]? {
        guard segments.count == parts.count else { return nil }
        var parameters: [String: String] = [:]
        for (part, segment) in zip(parts, segments) {
            switch part {
            case .literal(let l): if segment != l { return nil }
            case .parameter(let name): parameters[name] = String(segment)
            }
        }
        return parameters
    }
}

/// Who made a request: a user by their token, or the configured `api_token` (``Principal/configuredAdmin``).
struct Principal: Sendable, Equatable {
    var name: String
    var role: Role
    /// The user token's id; nil for the configured `api_token` and for a console session.
    var token: Int64?
    /// The console session's key (``SessionTable``) when the caller came with the session cookie, else nil.
    var session: String? = nil

    /// The name the audit trail gives the configured `api_token`; no user may take it.
    static let configuredAdminName = "api_token"
    static let configuredAdmin = Principal(name: configuredAdminName, role: .admin, token: nil)
}

/// One request as a handler sees it: the head, the path's parameters and, once read, the body.
struct Request: Sendable {
    var head: RequestHead
    var parameters: [String: String]
    var body: [UInt8] = []
    /// The caller, for endpoints behind a token (``Access/operatorToken``, ``Access/role(_:)``).
    var principal: Principal?

    /// The caller's name for the audit trail (empty when the endpoint took no token).
    var who: String { principal?.name ?? "" }

    /// A parameter of the endpoint's pattern (the pattern guarantees it is there).
    subscript(_ name: String) -> String { parameters[name] ?? "" }
    var query: [String: String] { head.query }
}

/// What a handler answers. Values are encoded to JSON in one place (``DaemonService/response(_:)``), with
/// `JSONEncoder.api`; the other cases are for what is not one value.
enum Reply {
    /// A value encoded as the JSON body (snake_case keys, sorted).
    case value(any Encodable, status: Int = 200)
    /// A JSON body written by hand: pages of up to 50,000 rows, written straight into one buffer.
    case json(Int, [UInt8])
    /// Any other response: text for gateways, Prometheus text, a CSV-like list, an error with extra fields.
    case response(ServerResponse)
    /// Stream the body into a sink (segment and exclusion uploads), never holding it whole.
    case stream(BodySink)
    /// Read the body whole, up to `limit` bytes (beyond it the client gets 413), then answer with `then`.
    case body(limit: Int, then: @Sendable (Request) throws -> Reply)

    static func error(_ status: Int, _ code: String, _ message: String) -> Reply { .response(DaemonService.errorResponse(status, code, message)) }
}

/// An answer other than success, thrown by a handler: the status, a stable code and a message for the client.
struct APIError: Error {
    var status: Int
    var code: String
    var message: String

    init(_ status: Int, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }
}

/// One line of the route table: method, path pattern, who may call it, and the handler.
struct Endpoint: Sendable {
    let method: String
    let pattern: PathPattern
    let access: Access
    let handler: @Sendable (DaemonService, Request) throws -> Reply

    init(_ method: String, _ pattern: String, access: Access = .operatorToken,
         _ handler: @escaping @Sendable (DaemonService, Request) throws -> Reply) {
        self.method = method
        self.pattern = PathPattern(pattern)
        self.access = access
        self.handler = handler
    }
}

extension DaemonService {
    /// Every endpoint the daemon serves, in the order they are tried (the first whose method and pattern fit).
    static let endpoints: [Endpoint] = receiptEndpoints + healthEndpoints + operatorEndpoints + accessEndpoints
        + sessionEndpoints
        + previewEndpoints
        + liveLogEndpoints

    /// Finds the request's endpoint, checks its access, runs its handler. A path no endpoint has is 404; a path
    /// served for other methods only is 405 with `Allow` naming them.
    func route(_ head: RequestHead) -> Route {
        let head = withClientAddress(head)
        if let console = consoleRoute(head) { return console }
        let segments = head.path.split(separator: "/")
        var allowed: [String] = []
        for endpoint in Self.endpoints {
            guard let parameters = endpoint.pattern.match(segments) else { continue }
            guard endpoint.method == head.method else {
                if !allowed.contains(endpoint.method) { allowed.append(endpoint.method) }
                continue
            }
            return run(endpoint, Request(head: head, parameters: parameters))
        }
        guard allowed.isEmpty else {
            var r = error(405, "method-not-allowed", "\(head.path) does not take \(head.method)")
            r.headers.append(.init("Allow", allowed.sorted().joined(separator: ", ")))
            return .respond(r)
        }
        return .respond(error(404, "not-found", "no such endpoint: \(head.method) \(head.path)"))
    }

    private func run(_ endpoint: Endpoint, _ request: Request) -> Route {
        var request = request
        switch endpoint.access {
        case .open: break
        case .operatorToken, .role:
            let needed: Role = if case .role(let r) = endpoint.access { r } else { .admin }
            // A bearer token, else the console's session cookie; a cookie caller changing anything must also send
            // the session's CSRF token, or nothing happens.
            let bearer = authenticate(request.head)
            let session = bearer == nil ? sessionCaller(request.head) : nil
            guard let principal = bearer ?? session?.principal else {
                if metricsAuthorized(request.head) { return .respond(error(403, "forbidden", "the metrics token may read /metrics only")) }
                auditRefusal(request.head, user: "", "auth.failed", detail: ["method": request.head.method, "path": request.head.path])
                return .respond(error(401, "unauthorized", "missing, wrong or revoked bearer token, or no live session"))
            }
            if let session, !session.csrfMatches, request.head.method != "GET", request.head.method != "HEAD" {
                auditRefusal(request.head, user: principal.name, "auth.csrf", detail: ["method": request.head.method, "path": request.head.path])
                return .respond(error(403, "csrf", "a session's request that changes something needs its X-CSRF-Token header (GET /api/v1/session gives it)"))
            }
            guard principal.role.includes(needed) else {
                auditRefusal(request.head, user: principal.name, "auth.forbidden",
                      detail: ["method": request.head.method, "path": request.head.path, "role": principal.role.rawValue, "needs": needed.rawValue])
                return .respond(error(403, "forbidden", "\(principal.name) is \(principal.role.rawValue); this needs \(needed.rawValue)"))
            }
            request.principal = principal
        case .metricsReader:
            guard authenticate(request.head)?.role == .admin || metricsAuthorized(request.head) else {
                auditRefusal(request.head, user: "", "auth.failed", detail: ["method": request.head.method, "path": request.head.path])
                return .respond(error(401, "unauthorized", "missing, wrong or revoked bearer token"))
            }
        case .carrierSecret(let kind):
            let carrier = request["carrier"]
            request.head = carrierHead(request.head, carrier: carrier, endpoint: kind)
            if let refused = refusal(carrier: carrier, query: request.query, endpoint: kind.rawValue) { return .refuse(refused) }
        }
        switch invoke(endpoint.handler, request) {
        case .stream(let sink): return .stream(sink)
        case .body(let limit, let then):
            return .buffer(limit: limit) { [self, request] _, body in
                var r = request
                r.body = body
                return response(invoke({ _, r in try then(r) }, r))
            }
        case let reply: return .respond(response(reply))
        }
    }

    private func invoke(_ handler: (DaemonService, Request) throws -> Reply, _ request: Request) -> Reply {
        do { return try handler(self, request) } catch { return .response(failure(error, request.head)) }
    }

    /// The one place replies become responses: values are encoded here.
    func response(_ reply: Reply) -> ServerResponse {
        switch reply {
        case .value(let value, let status):
            do { return .json(status, Array(try JSONEncoder.api.encode(value))) } catch { return failure(error) }
        case .json(let status, let body): return .json(status, body)
        case .response(let r): return r
        case .stream, .body:
            // Only a handler run on the head may stream or read the body; one run on the body has it already.
            logger.error("a body handler asked for the body again")
            return error(500, "internal", Self.internalMessage)
        }
    }

    /// The message of every 500: what went wrong inside (SQLite's message, the statement) is for the log only.
    static let internalMessage = "internal error; the daemon's log has the detail"

    /// The one mapping of a thrown error to a response: the client's mistakes by their status, the store's own
    /// verdicts (not found, conflict, invalid) by theirs, and anything else a 500 with a generic message, the
    /// detail logged (a store error can carry SQLite's message and SQL, which a client must never see).
    func failure(_ e: Error, _ head: RequestHead? = nil) -> ServerResponse {
        switch e {
        case let a as APIError: return error(a.status, a.code, a.message)
        case StoreError.notFound(let m): return error(404, "not-found", m)
        case StoreError.conflict(let m): return error(409, "conflict", m)
        case StoreError.invalid(let m): return error(422, "invalid", m)
        case let a as ApprovalRefused: return error(403, "self-approval", a.description)
        default:
            var meta = ["error": "\(e)"]
            if let head { meta["http.method"] = head.method; meta["http.path"] = head.path }
            logger.error("request failed", meta)
            return error(500, "internal", Self.internalMessage)
        }
    }
}
