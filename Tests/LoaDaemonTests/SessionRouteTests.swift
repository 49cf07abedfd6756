import Foundation
import LoaCore
import LoaServer
@testable import LoaStore
import Testing
@testable import LoaDaemon

/// The console's sessions through the route table, in-process on a manual clock: the idle timeout to the
/// millisecond, the longest life, CSRF on changes, and the forwarded address believed only from a trusted proxy.
@Suite struct SessionRouteTests {
    static let password = "correct horse battery"

    func login(_ f: FuzzService, _ user: String, address: String = "127.0.0.1", headers: [String: String] = [:]) -> ServerResponse {
        let body = Array(#"{"user": "\#(user)", "password": "\#(Self.password)"}"#.utf8)
        return f.handle(RequestHead(method: "POST", path: "/api/v1/session", headers: headers, remoteAddress: address), body: body)
    }

    func cookie(_ r: ServerResponse) -> String {
        let set = r.headers.first { $0.name == "Set-Cookie" }?.value ?? ""
        return String(set.split(separator: ";").first ?? "")
    }

    func csrf(_ r: ServerResponse) -> String {
        ((try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["csrf"] as? String) ?? ""
    }

    func get(_ f: FuzzService, _ path: String, cookie: String) -> Int {
        f.handle(RequestHead(method: "GET", path: path, headers: ["cookie": "theme=dark; " + cookie], remoteAddress: "127.0.0.1"), body: []).status
    }

    func service(_ clock: ManualTimeSource) throws -> FuzzService {
        let f = FuzzService(clock: clock)
        try f.store.addUser(name: "oanh", role: .operator, passwordHash: try Secrets.hashPassword(Self.password), now: clock.now())
        return f
    }

    /// Idle 900 s (the default): used at 899 s it lives on (the use moves the timeout); unused for 900 s it is gone.
    @Test func aSessionEndsAfterTheIdleTimeoutOnTheDaemonsClock() throws {
        let clock = ManualTimeSource()
        let f = try service(clock)
        let r = login(f, "oanh")
        try #require(r.status == 200, "\(String(decoding: r.body, as: UTF8.self))")
        let c = cookie(r)
        clock.advance(byMillis: 899_999)
        #expect(get(f, "/api/v1/campaigns", cookie: c) == 200)
        clock.advance(byMillis: 899_999)
        #expect(get(f, "/api/v1/session", cookie: c) == 200)
        clock.advance(byMillis: 900_000)
        #expect(get(f, "/api/v1/session", cookie: c) == 401)
        #expect(get(f, "/api/v1/campaigns", cookie: c) == 401)
        #expect(f.service.console.sessions.count == 0)
    }

    /// A session used all along still ends after 12 hours.
    @Test func aSessionEndsAfterItsLongestLife() throws {
        let clock = ManualTimeSource()
        let f = try service(clock)
        let c = cookie(login(f, "oanh"))
        var used = 0
        while used + 600_000 < SessionTable.maxLifeMillis {
            clock.advance(byMillis: 600_000)
            used += 600_000
            #expect(get(f, "/api/v1/campaigns", cookie: c) == 200)
        }
        clock.advance(byMillis: 600_000)
        #expect(get(f, "/api/v1/campaigns", cookie: c) == 401)
    }

    /// A change through a session needs its CSRF token; a read does not; a bearer token needs none.
    @Test func changesThroughASessionNeedItsCSRFToken() throws {
        let f = try service(ManualTimeSource())
        let r = login(f, "oanh")
        let c = cookie(r), token = csrf(r)
        func pause(_ headers: [String: String]) -> ServerResponse {
            f.handle(RequestHead(method: "POST", path: "/api/v1/campaigns/nosuch/pause", headers: headers, remoteAddress: "127.0.0.1"), body: [])
        }
        #expect(pause(["cookie": c]).status == 403)
        #expect(pause(["cookie": c, "x-csrf-token": String(token.reversed())]).status == 403)
        #expect(pause(["cookie": c, "x-csrf-token": ""]).status == 403)
        // Past the check, the handler answers: no such campaign.
        #expect(pause(["cookie": c, "x-csrf-token": token]).status == 404)
        #expect(pause(["authorization": "Bearer " + FuzzService.apiToken]).status == 404)
        // A session id of the right shape that was never given is no session.
        #expect(get(f, "/api/v1/campaigns", cookie: "loa_session=" + String(repeating: "a", count: 64)) == 401)
    }

    /// `X-Forwarded-For` names the client only when the peer is a trusted proxy; the rightmost untrusted entry
    /// counts, and a malformed one leaves the peer.
    @Test func theForwardedAddressIsBelievedOnlyFromATrustedProxy() {
        var settings = ConsoleSettings()
        settings.trustedProxies = ["127.0.0.1", "10.0.0.2"]
        let f = FuzzService()
        let s = f.service
        func client(_ peer: String, _ xff: String?) -> String {
            var head = RequestHead(method: "GET", path: "/", remoteAddress: peer)
            if let xff { head.headers["x-forwarded-for"] = xff }
            return s.withClientAddress(head, proxies: settings.trustedProxies).remoteAddress
        }
        #expect(client("127.0.0.1", "198.51.100.7") == "198.51.100.7")
        #expect(client("127.0.0.1", "192.0.2.1, 198.51.100.7") == "198.51.100.7")
        #expect(client("127.0.0.1", "198.51.100.7, 10.0.0.2") == "198.51.100.7")
        #expect(client("127.0.0.1", "2001:db8::0001") == "2001:db8::1")
        #expect(client("127.0.0.1", "not-an-address") == "127.0.0.1")
        #expect(client("127.0.0.1", nil) == "127.0.0.1")
        #expect(client("192.0.2.50", "198.51.100.7") == "192.0.2.50")
    }
}
