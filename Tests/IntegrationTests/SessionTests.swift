import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import Testing

/// A browser's view of the console's session API: the cookie it was given and the CSRF token it read.
struct ConsoleLogin {
    var cookie: String
    var csrf: String
    var setCookie: String
    var body: [String: Any]

    /// `POST /api/v1/session`; the answer as it came (for refusals) and the login when it was 200.
    static func attempt(_ loa: LoaDaemonProcess, _ user: String, _ password: String,
                        headers: [HTTPHeader] = []) async throws -> (HTTPResponse, ConsoleLogin?) {
        let body = try JSONSerialization.data(withJSONObject: ["user": user, "password": password])
        let r = try await loa.engine.perform(HTTPRequest(method: "POST", url: loa.base + "/api/v1/session",
                                                         headers: [HTTPHeader("Content-Type", "application/json")] + headers,
                                                         body: Array(body), timeout: 10))
        guard r.status == 200, let set = r.header("Set-Cookie"),
              let value = set.split(separator: ";").first.map(String.init), value.hasPrefix("loa_session="),
              let o = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any], let csrf = o["csrf"] as? String
        else { return (r, nil) }
        return (r, ConsoleLogin(cookie: value, csrf: csrf, setCookie: set, body: o))
    }

    static func login(_ loa: LoaDaemonProcess, _ user: String, _ password: String = AccessTests.password) async throws -> ConsoleLogin {
        let (r, login) = try await attempt(loa, user, password)
        return try #require(login, "login \(user): \(r.status) \(r.bodyText)")
    }

    /// A request as the page makes it: the cookie, and the CSRF header when `csrf` is given.
    func request(_ loa: LoaDaemonProcess, _ path: String, method: String = "GET", csrf: String? = nil, body: String = "") async throws -> HTTPResponse {
        var headers = [HTTPHeader("Cookie", cookie)]
        if let csrf { headers.append(HTTPHeader("X-CSRF-Token", csrf)) }
        if !body.isEmpty { headers.append(HTTPHeader("Content-Type", "application/json")) }
        return try await loa.engine.perform(HTTPRequest(method: method, url: loa.base + path, headers: headers, body: Array(body.utf8), timeout: 10))
    }
}

/// The console's sessions through the real binary (issue 20): the cookie's flags, the cookie as the user's caller on
/// every route, CSRF on every change, roles, logout, the idle timeout, the login throttle and lockout, the audit rows.
@Suite(.ownThreads, .serialized) struct SessionTests {
    static func errorCode(_ r: HTTPResponse) -> String {
        ((try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["error"] as? [String: Any])?["code"] as? String ?? ""
    }

    @Test(.timeLimit(.minutes(3))) func aSessionIsTheUsersCallerAndEveryChangeNeedsItsCSRFToken() async throws {
        let gateway = SilentGateway()
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: gateway)
        defer { server.stop() }
        let work = WorkDir("session")
        // One message a second: the campaign is still running when the test is done.
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:\(server.port)/cgi-bin/sendsms", username: "u", password: "p", rate: 1)
        try await loa.start()
        defer { _ = loa.stop() }
        _ = try AccessTests.user(loa, "oanh", "operator")
        _ = try AccessTests.user(loa, "vy", "viewer")

        // A wrong password: 401, no cookie; the same for a name nobody has.
        let (wrong, none) = try await ConsoleLogin.attempt(loa, "oanh", "not the password")
        #expect(wrong.status == 401 && none == nil && wrong.header("Set-Cookie") == nil, "\(wrong.status) \(wrong.bodyText)")
        let (nobody, _) = try await ConsoleLogin.attempt(loa, "nobody", "not the password")
        #expect(nobody.status == 401 && nobody.bodyText == wrong.bodyText, "\(nobody.bodyText)")

        let op = try await ConsoleLogin.login(loa, "oanh")
        #expect(op.setCookie.wholeMatch(of: /loa_session=[0-9a-f]{64}; Path=\/; HttpOnly; SameSite=Strict/) != nil, "\(op.setCookie)")
        #expect(op.body["user"] as? String == "oanh" && op.body["role"] as? String == "operator", "\(op.body)")
        #expect(op.body["idle_timeout_seconds"] as? Int == 900 && op.csrf.count == 64, "\(op.body)")
        // The cookie reads like the user's token; without it, 401.
        #expect(try await op.request(loa, "/api/v1/campaigns").status == 200)
        #expect(try await loa.engine.perform(HTTPRequest(url: loa.base + "/api/v1/campaigns")).status == 401)
        let again = try await op.request(loa, "/api/v1/session")
        #expect(again.status == 200 && again.bodyText.contains(op.csrf), "\(again.bodyText)")

        SchedulingPathTests.campaign(work, id: "live", n: 300, extra: #", "windows": ["00:00-24:00"]"#)
        try #require(try loa.cli(["campaign", "submit", work.file("live/c.json")]).status == 0)
        try await poll(30, every: 0.2, "the campaign to run") { try await loa.campaign("live")["state"] as? String == "running" }

        // Without the CSRF header, with another session's, or a viewer's session with its own: refused, nothing changes.
        let vy = try await ConsoleLogin.login(loa, "vy")
        let noToken = try await op.request(loa, "/api/v1/campaigns/live/pause", method: "POST")
        #expect(noToken.status == 403 && Self.errorCode(noToken) == "csrf", "\(noToken.bodyText)")
        let foreign = try await op.request(loa, "/api/v1/campaigns/live/pause", method: "POST", csrf: vy.csrf)
        #expect(foreign.status == 403 && Self.errorCode(foreign) == "csrf", "\(foreign.bodyText)")
        let viewer = try await vy.request(loa, "/api/v1/campaigns/live/pause", method: "POST", csrf: vy.csrf)
        #expect(viewer.status == 403 && Self.errorCode(viewer) == "forbidden", "\(viewer.bodyText)")
        #expect(try await loa.campaign("live")["state"] as? String == "running")
        // The operator's own token pauses it.
        let paused = try await op.request(loa, "/api/v1/campaigns/live/pause", method: "POST", csrf: op.csrf)
        #expect(paused.status == 200, "\(paused.bodyText)")
        #expect(try await loa.campaign("live")["state"] as? String == "paused")

        // Logout needs the CSRF header too; then the cookie is dead and cleared.
        #expect(try await op.request(loa, "/api/v1/session", method: "DELETE").status == 403)
        #expect(try await op.request(loa, "/api/v1/campaigns").status == 200)
        let out = try await op.request(loa, "/api/v1/session", method: "DELETE", csrf: op.csrf)
        #expect(out.status == 200 && out.header("Set-Cookie")?.hasPrefix("loa_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0") == true,
                "\(out.status) \(out.header("Set-Cookie") ?? "")")
        #expect(try await op.request(loa, "/api/v1/session").status == 401)
        #expect(try await op.request(loa, "/api/v1/campaigns").status == 401)
        #expect(try await op.request(loa, "/api/v1/campaigns/live/resume", method: "POST", csrf: op.csrf).status == 401)

        // On the record, once each, with the user and the address.
        let rows = try await AccessTests.audit(loa, token: loa.token)
        let seen = rows.filter { ($0["action"] as? String ?? "").hasPrefix("session.") || $0["action"] as? String == "auth.csrf"
                                 || $0["action"] as? String == "campaign.pause" }
            .map { "\($0["user"] ?? "") \($0["action"] ?? "")" }
        #expect(seen == ["oanh session.login_failed", "nobody session.login_failed", "oanh session.login", "vy session.login",
                         "oanh auth.csrf", "oanh auth.csrf", "oanh campaign.pause", "oanh auth.csrf", "oanh session.logout"], "\(seen)")
        #expect(rows.allSatisfy { $0["address"] as? String == "127.0.0.1" })
    }

    /// Wrong passwords lock the name: the right one is refused too until an admin unlocks it; each failure, the
    /// lock and the unlock are on the record once, with the user and the address.
    @Test(.timeLimit(.minutes(2))) func aLockedOutUserStaysLockedUntilAnAdminUnlocks() async throws {
        let work = WorkDir("lockout")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p")
        try await loa.start()
        defer { _ = loa.stop() }
        _ = try AccessTests.user(loa, "lan", "planner")
        var checked: [Double] = []
        for i in 0..<5 {
            let started = Date()
            let (r, _) = try await ConsoleLogin.attempt(loa, "lan", "wrong password \(i)")
            checked.append(Date().timeIntervalSince(started))
            #expect(r.status == 401, "attempt \(i): \(r.status) \(r.bodyText)")
        }
        let (locked, login) = try await ConsoleLogin.attempt(loa, "lan", AccessTests.password)
        let refusedAt = Date()
        #expect(try await ConsoleLogin.attempt(loa, "lan", "wrong password again").0.status == 423)
        let refusedSeconds = Date().timeIntervalSince(refusedAt)
        #expect(locked.status == 423 && login == nil && Self.errorCode(locked) == "locked", "\(locked.status) \(locked.bodyText)")
        #expect(Int(locked.header("Retry-After") ?? "") ?? 0 > 800, "\(locked.headers)")
        // (That a refusal checks no password is counted in-process: SessionRouteTests.) The times, for the record.
        print("lockout: five checked logins took \(checked.map { String(format: "%.3f", $0) }) s; a refused one \(String(format: "%.3f", refusedSeconds)) s")

        let unlock = try loa.cli(["users", "unlock", "lan"])
        #expect(unlock.status == 0 && unlock.output.contains("unlocked"), "\(unlock.output)")
        _ = try await ConsoleLogin.login(loa, "lan")

        let rows = try await AccessTests.audit(loa, token: loa.token).filter { ($0["action"] as? String ?? "").hasPrefix("session.") }
        let seen = rows.map { "\($0["user"] ?? "") \($0["action"] ?? "") \($0["address"] ?? "")" }
        #expect(seen == Array(repeating: "lan session.login_failed 127.0.0.1", count: 5)
                + ["lan session.locked 127.0.0.1", "lan session.login_refused 127.0.0.1", "lan session.login_refused 127.0.0.1",
                   "api_token session.unlock 127.0.0.1", "lan session.login 127.0.0.1"], "\(seen)")
        let unlocked = try #require(rows.first { $0["action"] as? String == "session.unlock" })
        #expect((unlocked["detail"] as? [String: Any])?["user"] as? String == "lan")
    }

    /// A flood of logins (60 at once, each a password check) is bounded: at most two checks run at a time, the rest
    /// are answered 503 at once, and the daemon's other work goes on (its health probe and the API answer meanwhile).
    @Test(.timeLimit(.minutes(2))) func aFloodOfLoginsIsBoundedAndTheDaemonAnswersMeanwhile() async throws {
        let work = WorkDir("login-flood")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p",
                                       extraConfig: #""console": { "login": { "address_max_failures": 100000 } }"#)
        try await loa.start()
        defer { _ = loa.stop() }
        let flood = try CurlEngine(maxConnectionsPerHost: 60)
        defer { flood.shutdown() }
        // The probe and an API read, one after another, timed: before the flood (the machine's own pace) and during it.
        func probe() async throws -> Double {
            let t = Date()
            #expect(try await loa.engine.perform(HTTPRequest(url: loa.base + "/healthz", timeout: 10)).status == 200)
            #expect(try await loa.api("/api/v1/campaigns").status == 200)
            return Date().timeIntervalSince(t)
        }
        var before = 0.0
        for _ in 0..<10 { before = max(before, try await probe()) }
        let url = loa.base + "/api/v1/session"
        let started = Date()
        async let statuses: [Int] = withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<60 {
                let body = Array(#"{"user": "flood\#(i)", "password": "wrong password"}"#.utf8)
                group.addTask {
                    try await flood.perform(HTTPRequest(method: "POST", url: url, headers: [HTTPHeader("Content-Type", "application/json")],
                                                        body: body, timeout: 60)).status
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        var slowest = 0.0
        for _ in 0..<10 { slowest = max(slowest, try await probe()) }
        let all = try await statuses
        let seconds = Date().timeIntervalSince(started)
        let checked = all.filter { $0 == 401 }.count, busy = all.filter { $0 == 503 }.count
        #expect(checked + busy == 60, "\(all)")
        #expect(checked >= 2 && busy > 0, "\(checked) checked, \(busy) busy")
        // Relative to the machine's own pace before the flood (a shared, loaded machine is slow for everyone).
        #expect(slowest < max(1, 10 * before), "the probe and a read took \(slowest) s during the flood, \(before) s before it")
        print("login flood: 60 at once: \(checked) checked (401), \(busy) busy (503) in \(String(format: "%.2f", seconds)) s; "
              + "slowest probe+read \(String(format: "%.3f", slowest)) s during, \(String(format: "%.3f", before)) s before")
    }

    /// One address trying many names is refused after `address_max_failures`, whatever the name (the right password
    /// too); a request through a trusted proxy counts against the client's address in `X-Forwarded-For`, and that
    /// header from any other peer is ignored.
    @Test(.timeLimit(.minutes(2))) func oneAddressTryingManyNamesIsThrottled() async throws {
        let work = WorkDir("throttle")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p",
                                       extraConfig: #""console": { "login": { "address_max_failures": 6 } }"#)
        try await loa.start()
        defer { _ = loa.stop() }
        _ = try AccessTests.user(loa, "lan", "planner")
        for i in 0..<6 { #expect(try await ConsoleLogin.attempt(loa, "guess\(i)", "wrong password").0.status == 401) }
        let (refused, _) = try await ConsoleLogin.attempt(loa, "guess6", "wrong password")
        #expect(refused.status == 429 && Self.errorCode(refused) == "throttled" && refused.header("Retry-After") != nil, "\(refused.status) \(refused.bodyText)")
        #expect(try await ConsoleLogin.attempt(loa, "lan", AccessTests.password).0.status == 429)
        // Not from a trusted proxy: the header changes nothing.
        #expect(try await ConsoleLogin.attempt(loa, "lan", AccessTests.password, headers: [HTTPHeader("X-Forwarded-For", "198.51.100.7")]).0.status == 429)
        #expect(loa.stop() == 0)

        // Behind a trusted proxy (127.0.0.1 here), each client's address counts on its own.
        let behind = try LoaDaemonProcess(work: WorkDir("throttle-proxy"), carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p",
                                          extraConfig: #""console": { "login": { "address_max_failures": 6 } }, "trusted_proxies": ["127.0.0.1"]"#)
        try await behind.start()
        defer { _ = behind.stop() }
        _ = try AccessTests.user(behind, "lan", "planner")
        let attacker = [HTTPHeader("X-Forwarded-For", "203.0.113.9")]
        for i in 0..<6 { #expect(try await ConsoleLogin.attempt(behind, "guess\(i)", "wrong password", headers: attacker).0.status == 401) }
        #expect(try await ConsoleLogin.attempt(behind, "guess6", "wrong password", headers: attacker).0.status == 429)
        // A client-written header before the proxy's own entry is not believed: the proxy's (rightmost) entry counts.
        let spoofed = [HTTPHeader("X-Forwarded-For", "192.0.2.1, 203.0.113.9")]
        #expect(try await ConsoleLogin.attempt(behind, "lan", AccessTests.password, headers: spoofed).0.status == 429)
        let colleague = [HTTPHeader("X-Forwarded-For", "198.51.100.7")]
        let (ok, login) = try await ConsoleLogin.attempt(behind, "lan", AccessTests.password, headers: colleague)
        #expect(ok.status == 200 && login != nil, "\(ok.status) \(ok.bodyText)")
        let rows = try await AccessTests.audit(behind, token: behind.token).filter { ($0["action"] as? String ?? "").hasPrefix("session.login") }
        #expect(rows.filter { $0["action"] as? String == "session.login_failed" }.allSatisfy { $0["address"] as? String == "203.0.113.9" }, "\(rows)")
        #expect(rows.last?["action"] as? String == "session.login" && rows.last?["address"] as? String == "198.51.100.7", "\(rows)")
    }

    /// A session unused for `idle_timeout_seconds` is gone (here 3 s; the boundary itself is tested on a manual clock
    /// in SessionRouteTests). The wait is for time itself: the session must not be used while it passes. (1 s was
    /// too short on a machine at a load average of 50: the first use came more than a second after the login.)
    @Test(.timeLimit(.minutes(2))) func anIdleSessionExpires() async throws {
        let work = WorkDir("idle")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p",
                                       extraConfig: #""console": { "idle_timeout_seconds": 3, "secure_cookie": true }"#)
        try await loa.start()
        defer { _ = loa.stop() }
        _ = try AccessTests.user(loa, "vy", "viewer")
        let vy = try await ConsoleLogin.login(loa, "vy")
        #expect(vy.setCookie.hasSuffix("; Secure") && vy.body["idle_timeout_seconds"] as? Int == 3, "\(vy.setCookie) \(vy.body)")
        #expect(try await vy.request(loa, "/api/v1/campaigns").status == 200)
        let lastUse = Date()
        try await poll(10, every: 0.1, "the idle timeout to pass") { Date().timeIntervalSince(lastUse) > 3.3 }
        #expect(try await vy.request(loa, "/api/v1/campaigns").status == 401)
        #expect(try await vy.request(loa, "/api/v1/session").status == 401)
    }

    /// `/console/` serves the console's files from the bundle beside the binary, with the security headers; `/`
    /// leads there; nothing outside the directory is served however the path is written (sent byte for byte on a
    /// raw socket: curl would resolve `..` itself); a configured directory that does not exist gives a 404 naming it.
    @Test(.timeLimit(.minutes(2))) func theConsoleIsServedWithItsHeadersAndNothingElse() async throws {
        let work = WorkDir("console")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p")
        try await loa.start()
        defer { _ = loa.stop() }
        let bundle = URL(fileURLWithPath: Env.loaBinary).deletingLastPathComponent().path + "/Loa_LoaDaemon.resources/Console"
        let index = try #require(FileManager.default.contents(atPath: bundle + "/index.html"), "no console bundle beside \(Env.loaBinary)")
        let page = try await loa.engine.perform(HTTPRequest(url: loa.base + "/console/"))
        #expect(page.status == 200 && page.body == Array(index), "\(page.status)")
        #expect(page.header("Content-Type") == "text/html; charset=utf-8")
        #expect(page.header("Content-Security-Policy") == "default-src 'self'; frame-ancestors 'none'")
        #expect(page.header("X-Content-Type-Options") == "nosniff" && page.header("Referrer-Policy") == "no-referrer")
        #expect(page.header("Cache-Control") == "no-cache")
        let script = try await loa.engine.perform(HTTPRequest(url: loa.base + "/console/console.js"))
        #expect(script.status == 200 && script.header("Content-Type") == "text/javascript; charset=utf-8")
        let root = try await loa.engine.perform(HTTPRequest(url: loa.base + "/"))
        #expect(root.status == 302 && root.header("Location") == "/console/", "\(root.status)")
        #expect(try await loa.engine.perform(HTTPRequest(url: loa.base + "/console/nosuch.js")).status == 404)
        #expect(try await loa.engine.perform(HTTPRequest(method: "POST", url: loa.base + "/console/index.html")).status == 405)

        for path in ["/console/../Package.swift", "/console/%2e%2e/Package.swift", "/console/..%2fPackage.swift", "/console/%2E%2E%2FPackage.swift",
                     "/console/.%2e/.%2e/.%2e/Package.swift", "/console/..%5cPackage.swift", "/console//etc/passwd", "/console/%2fetc%2fpasswd",
                     "/console/..", "/console/.hidden", "/console/../../../../../../etc/passwd",
                     // A small file of the build beside the bundle, within reach of a short path.
                     "/console/../../LoaDaemon.build/output-file-map.json", "/console/%2e%2e/%2e%2e/LoaDaemon.build/output-file-map.json",
                     "/console/..%2f..%2fLoaDaemon.build%2foutput-file-map.json", "/console/.%2E/.%2e/LoaDaemon.build/output-file-map.json"] {
            let fd = try #require(HardeningTests.connect(loa.port))
            defer { close(fd) }
            #expect(HardeningTests.send(fd, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
            let answer = HardeningTests.readAll(fd)
            let status = answer.split(separator: " ").dropFirst().first.map(String.init) ?? ""
            #expect(status == "404" || status == "400", "\(path): \(answer.prefix(200))")
            #expect(!answer.contains("PackageDescription") && !answer.contains("root:"), "\(path) served a file outside the console")
        }
        #expect(loa.stop() == 0)

        // console.directory: its files are served; a symbolic link in it that leads out of it is not followed out.
        work.write("custom/index.html", "<!doctype html><title>custom</title>")
        work.write("custom/app.js", "console.log(1)")
        work.write("outside.txt", "not for the console")
        try FileManager.default.createSymbolicLink(atPath: work.file("custom/leak.txt"), withDestinationPath: work.file("outside.txt"))
        let custom = try LoaDaemonProcess(work: WorkDir("console-custom"), carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p",
                                          extraConfig: #""console": { "directory": "\#(work.file("custom"))" }"#)
        try await custom.start()
        defer { _ = custom.stop() }
        let customPage = try await custom.engine.perform(HTTPRequest(url: custom.base + "/console/"))
        #expect(customPage.status == 200 && customPage.bodyText.contains("custom"), "\(customPage.status)")
        #expect(try await custom.engine.perform(HTTPRequest(url: custom.base + "/console/app.js")).status == 200)
        let leak = try await custom.engine.perform(HTTPRequest(url: custom.base + "/console/leak.txt"))
        #expect(leak.status == 404 && !leak.bodyText.contains("not for the console"), "\(leak.status) \(leak.bodyText)")
        #expect(custom.stop() == 0)

        // A configured directory that is not there: the daemon runs on, and the 404 names it.
        let elsewhere = try LoaDaemonProcess(work: WorkDir("console-missing"), carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p",
                                             extraConfig: #""console": { "directory": "/nonexistent/loa-console" }"#)
        try await elsewhere.start()
        defer { _ = elsewhere.stop() }
        let missing = try await elsewhere.engine.perform(HTTPRequest(url: elsewhere.base + "/console/"))
        #expect(missing.status == 404 && missing.bodyText.contains("/nonexistent/loa-console"), "\(missing.status) \(missing.bodyText)")
        #expect(try await elsewhere.api("/api/v1/campaigns").status == 200)
    }
}
