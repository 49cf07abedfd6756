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

/// The console's keys in the config: read with their defaults, and each bad one named with its line.
@Suite struct ConsoleConfigTests {
    let env = ["T": "0123456789abcdef-token", "S": "receipt-secret-0123456789"]

    @Test func consoleKeysLoadAndBadOnesAreNamed() throws {
        let s = Scratch()
        _ = s.write("kannel.pw", "hunter2\n")
        let plain = try ConfigLoader.load(path: s.write("a.json", goodConfig), environment: env).get()
        #expect(plain.console == ConsoleSettings())
        let good = goodConfig.replacingOccurrences(of: #""api_token": { "env": "T" },"#, with: #"""
            "api_token": { "env": "T" },
              "console": { "directory": "web", "secure_cookie": true, "idle_timeout_seconds": 60,
                           "login": { "max_failures": 3, "failure_window_seconds": 60, "lock_seconds": 120, "address_max_failures": 9 } },
              "trusted_proxies": ["127.0.0.1", "::0001"],
            """#)
        let c = try ConfigLoader.load(path: s.write("b.json", good), environment: env).get().console
        #expect(c.directory == s.path + "/web" && c.secureCookie && c.idleTimeoutSeconds == 60)
        #expect(c.login.maxFailures == 3 && c.login.failureWindowMillis == 60_000 && c.login.lockMillis == 120_000 && c.login.addressMaxFailures == 9)
        #expect(c.trustedProxies == ["127.0.0.1", "::1"])
        let bad = goodConfig.replacingOccurrences(of: #""api_token": { "env": "T" },"#, with: #"""
            "api_token": { "env": "T" },
              "console": { "idle_timeout_seconds": 0, "login": { "max_failures": 0, "lock_sec": 5 } },
              "trusted_proxies": ["nginx.local"],
            """#)
        guard case .failure(let problems) = ConfigLoader.load(path: s.write("c.json", bad), environment: env) else {
            Issue.record("a bad console config loaded")
            return
        }
        let text = problems.description
        for expected in ["c.json:6: console.idle_timeout_seconds: must be 1-86400", "console.login.max_failures: must be 1-1000",
                         "console.login.lock_sec", "c.json:7: trusted_proxies.0: must be a numeric IPv4 or IPv6 address"] {
            #expect(text.contains(expected), "\(text)")
        }
    }
}
