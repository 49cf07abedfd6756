import Foundation
import LoaCore
import LoaServer
import LoaStore

/// The console's login (issue 20): `POST /api/v1/session` trades a user's name and password for a session
/// cookie, `GET` reads the session (and its CSRF token) again, `DELETE` logs out. Every other `/api/v1` route
/// takes the cookie as its caller (``DaemonService/sessionCaller(_:)``), with the CSRF header on anything but
/// GET and HEAD. Logins are throttled per name and per address and a name is locked after repeated failures
/// (``LoginThrottle``); an admin unlocks it (`POST /api/v1/users/{name}/unlock`, `loa users unlock NAME`).
extension DaemonService {
    static let sessionEndpoints: [Endpoint] = [
        // Open: the password is the credential. Read whole (a small JSON body), checked on the connection's thread.
        Endpoint("POST", "/api/v1/session", access: .open) { s, _ in .body(limit: 8 << 10) { r in try s.login(r) } },
        // Open: answers 401 itself without a live session (the page asks it to know whether to show the login).
        Endpoint("GET", "/api/v1/session", access: .open) { s, r in s.currentSession(r) },
        // A cookie caller, so the table asks for the CSRF header: a foreign page cannot log a user out.
        Endpoint("DELETE", "/api/v1/session", access: .role(.viewer)) { s, r in try s.logout(r) },
        Endpoint("POST", "/api/v1/users/{name}/unlock", access: .role(.admin)) { s, r in
            let name = r["name"]
            let wasLocked = s.console.throttle.withLock { $0.unlock(user: name) }
            s.audit(r, "session.unlock", detail: ["user": name, "was_locked": wasLocked ? "true" : "false"])
            return .value(["name": name, "unlocked": wasLocked ? "true" : "false"])
        },
    ]

    /// The head with `remoteAddress` the real client's: when the peer is one of `trusted_proxies`, the rightmost
    /// address of `X-Forwarded-For` that is not itself a trusted proxy (nginx sets the header to the address it
    /// saw, Deploy/nginx-console.conf). From any other peer the header is ignored: a client could write anything
    /// there, and the throttle per address and the audit trail would believe it. A malformed entry leaves the peer.
    func withClientAddress(_ head: RequestHead, proxies: [String]? = nil) -> RequestHead {
        let proxies = proxies ?? console.settings.trustedProxies
        guard !proxies.isEmpty, proxies.contains(head.remoteAddress), let forwarded = head.headers["x-forwarded-for"] else { return head }
        var head = head
        for entry in forwarded.split(separator: ",").reversed().prefix(16) {
            guard let address = IPAddressText.canonicalOrNil(entry.trimmingCharacters(in: .whitespaces)) else { return head }
            head.remoteAddress = address
            if !proxies.contains(address) { break }
        }
        return head
    }

    /// The cookie that carries the session id.
    static let sessionCookie = "loa_session"

    /// What the session endpoints answer: who is logged in, their role, the CSRF token to send back, the idle timeout.
    struct SessionView: Encodable {
        var user: String
        var role: String
        var csrf: String
        var idleTimeoutSeconds: Int
    }

    func sessionView(_ s: SessionTable.Session) -> SessionView {
        SessionView(user: s.user, role: s.role.rawValue, csrf: s.csrf, idleTimeoutSeconds: console.settings.idleTimeoutSeconds)
    }

    /// The `loa_session` value of the request's `Cookie` header, if any.
    static func sessionID(_ head: RequestHead) -> String? {
        guard let header = head.headers["cookie"] else { return nil }
        for part in header.split(whereSeparator: { $0 == ";" || $0 == "," }) {
            let pair = part.trimmingCharacters(in: .whitespaces)
            if pair.hasPrefix(sessionCookie + "=") { return String(pair.dropFirst(sessionCookie.count + 1)) }
        }
        return nil
    }

    /// The caller of a request by its session cookie (no `Authorization` header), and whether its CSRF header
    /// matches the session's token (compared in constant time). Using a session moves its idle timeout.
    func sessionCaller(_ head: RequestHead) -> (principal: Principal, csrfMatches: Bool)? {
        guard head.headers["authorization"] == nil, let id = Self.sessionID(head),
              let found = console.sessions.use(id: id, now: clock.now()) else { return nil }
        let s = found.session
        let presented = Array((head.headers["x-csrf-token"] ?? "").utf8)
        let matches = !presented.isEmpty && Self.constantTimeEqual(presented, Array(s.csrf.utf8))
        return (Principal(name: s.user, role: s.role, token: nil, session: found.key), matches)
    }

    /// `Set-Cookie` for the session id (`nil`: the cookie cleared).
    func sessionCookie(_ id: String?) -> ServerResponse.Header {
        var value = "\(Self.sessionCookie)=\(id ?? ""); Path=/; HttpOnly; SameSite=Strict"
        if id == nil { value += "; Max-Age=0" }
        if console.settings.secureCookie { value += "; Secure" }
        return .init("Set-Cookie", value)
    }

    func currentSession(_ r: Request) -> Reply {
        guard let id = Self.sessionID(r.head), let found = console.sessions.use(id: id, now: clock.now()) else {
            return .error(401, "unauthorized", "no live session: log in")
        }
        return .value(sessionView(found.session))
    }

    func logout(_ r: Request) throws -> Reply {
        guard let key = r.principal?.session else { throw APIError(400, "bad-request", "this request has no session to end (it came with a bearer token)") }
        console.sessions.end(key: key)
        audit(r, "session.logout")
        var response = self.response(.value(["logged_out": "true"]))
        response.headers.append(sessionCookie(nil))
        return .response(response)
    }

    /// A refusal with `Retry-After` (seconds, rounded up, at least 1).
    func retryLater(_ status: Int, _ code: String, _ message: String, until: UnixMillis, now: UnixMillis) -> Reply {
        var r = error(status, code, message)
        r.headers.append(.init("Retry-After", String(max(1, (until - now + 999) / 1000))))
        return .response(r)
    }

    /// A login: the throttle first (a refused attempt is never hashed), then a hashing slot, then Argon2id.
    /// A wrong name and a wrong password get the same answer, after the same work (an unknown name is checked
    /// against a decoy hash).
    func login(_ r: Request) throws -> Reply {
        let o = try object(r)
        guard let user = o["user"] as? String, !user.isEmpty, let password = o["password"] as? String, password.utf8.count <= 1024 else {
            throw APIError(400, "bad-request", "user and password: required (strings; the password at most 1024 bytes)")
        }
        let name = String(user.prefix(64))
        let address = r.head.remoteAddress
        let now = clock.now()
        switch console.throttle.withLock({ $0.begin(user: name, address: address, now: now) }) {
        case .proceed: break
        case .locked(let until):
            auditRefusal(r.head, user: name, "session.login_refused", detail: ["reason": "locked", "until": ISOTime.format(until)])
            return retryLater(423, "locked", "\(name) is locked after repeated failed logins until \(ISOTime.format(until)) (an admin may unlock it)", until: until, now: now)
        case .throttled(let until):
            auditRefusal(r.head, user: name, "session.login_refused", detail: ["reason": "throttled"])
            return retryLater(429, "throttled", "too many failed logins; try again later", until: until, now: now)
        }
        guard console.takeHashingSlot() else {
            console.throttle.withLock { $0.abandoned(user: name, address: address) }
            return retryLater(503, "busy", "too many logins at once; try again in a moment", until: now + 1000, now: now)
        }
        let stored: String?
        do {
            defer { console.releaseHashingSlot() }
            do { stored = try store.passwordHash(of: name) } catch {
                console.throttle.withLock { $0.abandoned(user: name, address: address) }
                throw error
            }
            let matches = Secrets.verifyPassword(password, against: stored ?? ConsoleState.decoyHash)
            if stored == nil || !matches || name != user {
                let done = clock.now()
                let lockedUntil = console.throttle.withLock { $0.failed(user: name, address: address, now: done) }
                auditRefusal(r.head, user: name, "session.login_failed", detail: [:])
                if let lockedUntil {
                    audit(r.head, user: name, "session.locked", detail: ["until": ISOTime.format(lockedUntil)])
                    logger.warning("login locked after repeated failures", ["user": name, "address": address])
                }
                return .error(401, "unauthorized", "wrong user or password")
            }
        }
        guard let role = try store.users().first(where: { $0.name == name })?.role else {
            return .error(401, "unauthorized", "wrong user or password")
        }
        let done = clock.now()
        console.throttle.withLock { $0.succeeded(user: name, address: address, now: done) }
        // A login from a browser that still had a session replaces it.
        if let old = Self.sessionID(r.head), Secrets.looksLikeSessionID(old) { console.sessions.end(key: Secrets.sessionHash(old)) }
        let created = try console.sessions.create(user: name, role: role, now: done)
        var request = r
        request.principal = Principal(name: name, role: role, token: nil, session: created.key)
        audit(request, "session.login")
        var response = self.response(.value(sessionView(created.session)))
        response.headers.append(sessionCookie(created.id))
        return .response(response)
    }
}
