import Foundation
import LoaCore
import LoaServer
@testable import LoaStore
import Testing
@testable import LoaCommandLine
@testable import LoaDaemon
@testable import LoaSim

/// The HTTP route table, run in-process (no socket): who may call what, 404 and 405, path parameters, the
/// 500 that keeps SQL to the log, and the daemon's clock in the handlers.
@Suite struct RouteTableTests {
    func head(_ method: String, _ path: String, query: [String: String] = [:], token: Bool = true) -> RequestHead {
        RequestHead(method: method, path: path, query: query,
                    headers: token ? ["authorization": "Bearer " + FuzzService.apiToken] : [:], remoteAddress: "127.0.0.1")
    }

    func text(_ r: ServerResponse) -> String { String(decoding: r.body, as: UTF8.self) }

    /// The path with each parameter filled in (the carrier with one the service knows).
    func concrete(_ pattern: PathPattern) -> String {
        "/" + pattern.parts.map { part in
            switch part {
            case .literal(let l): l
            case .parameter(let name): name == "carrier" ? "kannel" : "nosuch"
            }
        }.joined(separator: "/")
    }

    @Test func everyEndpointNeedsItsCredentialUnlessMarkedOpen() {
        let f = FuzzService.shared
        var open: [String] = []
        for e in DaemonService.endpoints {
            let path = concrete(e.pattern)
            let r = f.handle(head(e.method, path, token: false), body: [])
            switch e.access {
            case .operatorToken, .metricsReader, .role:
                #expect(r.status == 401 && text(r).contains("bearer token"), "\(e.method) \(e.pattern) answered \(r.status) without the token")
            case .carrierSecret:
                #expect(r.status == 401 && text(r).contains("secret"), "\(e.method) \(e.pattern) answered \(r.status) without the secret")
                // The carrier's secret is not the operator's token, nor the other way round.
                let withToken = f.handle(head(e.method, path, token: true), body: [])
                #expect(withToken.status == 401, "\(e.method) \(e.pattern) took the operator token for a receipt secret")
            case .open:
                // The session read is open and says itself that there is no session.
                let sessionRead = "\(e.method) \(e.pattern)" == "GET /api/v1/session"
                #expect(r.status != 401 || (sessionRead && text(r).contains("no live session")), "\(e.method) \(e.pattern)")
                open.append("\(e.method) \(e.pattern)")
            }
        }
        // A route is open only by a line of the table that says so: the probes, and the console's login and its
        // session read (which answers 401 itself without a live session).
        #expect(open.sorted() == ["GET /api/v1/session", "GET /healthz", "GET /readyz", "POST /api/v1/session"])
        let carrierRoutes = DaemonService.endpoints.filter { if case .carrierSecret = $0.access { true } else { false } }
        #expect(Set(carrierRoutes.map { $0.pattern.description }) == ["/dlr/{carrier}", "/mo/{carrier}"])
        // A wrong token of the right shape is refused too.
        var wrong = head("GET", "/api/v1/campaigns")
        wrong.headers["authorization"] = "Bearer " + String(FuzzService.apiToken.reversed())
        #expect(f.handle(wrong, body: []).status == 401)
    }

    /// The read-only scrape token reads `/metrics` and the probes, and nothing else: every operator endpoint
    /// answers it 403 (a known token, not allowed there), a receipt endpoint 401; the operator token still reads
    /// `/metrics`.
    @Test func theScrapeTokenReadsMetricsOnly() {
        let f = FuzzService.shared
        var readable: [String] = []
        for e in DaemonService.endpoints {
            var h = head(e.method, concrete(e.pattern), token: false)
            h.headers["authorization"] = "Bearer " + FuzzService.metricsToken
            let r = f.handle(h, body: [])
            switch e.access {
            case .operatorToken, .role:
                #expect(r.status == 403 && text(r).contains("metrics"), "\(e.method) \(e.pattern) answered \(r.status) to the scrape token")
            case .carrierSecret:
                #expect(r.status == 401, "\(e.method) \(e.pattern) took the scrape token for a receipt secret")
            case .open where e.pattern.description == "/api/v1/session":
                // The console's login: the scrape token is no session and no password.
                #expect(r.status == 400 || r.status == 401, "\(e.method) \(e.pattern) answered \(r.status) to the scrape token")
            case .metricsReader, .open:
                #expect(r.status == 200, "\(e.method) \(e.pattern) answered \(r.status) to the scrape token")
                readable.append("\(e.method) \(e.pattern)")
            }
        }
        #expect(readable.sorted() == ["GET /healthz", "GET /metrics", "GET /readyz"])
        let admin = f.handle(head("GET", "/metrics"), body: [])
        #expect(admin.status == 200 && text(admin).contains("# TYPE loa_build_info gauge"))
    }

    /// Deploy/openapi.json and the table list the same operations, and those documented as public are the open ones.
    @Test func theTableIsTheDocumentedAPI() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let spec = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("Deploy/openapi.json"))) as? [String: Any])
        let paths = try #require(spec["paths"] as? [String: [String: Any]])
        var documented: [String: Bool] = [:]
        for (path, item) in paths {
            for method in ["get", "post", "put", "delete", "patch"] {
                guard let op = item[method] as? [String: Any] else { continue }
                documented["\(method.uppercased()) \(path)"] = (op["security"] as? [Any])?.isEmpty == true
            }
        }
        var served: [String: Bool] = [:]
        for e in DaemonService.endpoints {
            if case .carrierSecret = e.access { continue }  // gateways' endpoints: documented in the README, not the operator API
            served["\(e.method) \(e.pattern)"] = e.access == .open
        }
        #expect(served == documented)
    }

    @Test func anUnknownPathIs404() {
        let f = FuzzService.shared
        for (method, path) in [("GET", "/api/v1/nope"), ("GET", "/api/v1/campaigns/c/nope"), ("POST", "/api/v1/campaigns/c/pause/now"),
                               ("GET", "/nope"), ("GET", "/dlr"), ("GET", "/api/v2/campaigns")] {
            let r = f.handle(head(method, path), body: [])
            #expect(r.status == 404 && text(r).contains("no such endpoint"), "\(method) \(path): \(r.status) \(text(r))")
        }
    }

    @Test func aWrongMethodIs405WithAllow() {
        let f = FuzzService.shared
        for (method, path, allow) in [("PATCH", "/api/v1/campaigns", "GET, POST"), ("GET", "/api/v1/campaigns/c/pause", "POST"),
                                      ("PUT", "/api/v1/optouts", "DELETE, GET, POST"), ("DELETE", "/healthz", "GET"),
                                      ("PUT", "/dlr/kannel", "GET, POST"), ("POST", "/metrics", "GET")] {
            let r = f.handle(head(method, path), body: [])
            #expect(r.status == 405, "\(method) \(path): \(r.status) \(text(r))")
            #expect(r.headers.contains(.init("Allow", allow)), "\(method) \(path): \(r.headers)")
        }
    }

    @Test func pathParametersAreDecoded() {
        let p = PathPattern("/api/v1/campaigns/{id}/segments/{name}")
        #expect(p.match("/api/v1/campaigns/spring/segments/north.csv".split(separator: "/")) == ["id": "spring", "name": "north.csv"])
        #expect(p.match("/api/v1/campaigns/spring/segments".split(separator: "/")) == nil)
        #expect(p.match("/api/v1/campaigns/spring/exclusions/x".split(separator: "/")) == nil)
        // Through the service: each handler reads its own parameter (the server has percent-decoded the path).
        let f = FuzzService.shared
        let missing = f.handle(head("GET", "/api/v1/campaigns/spring sale"), body: [])
        #expect(missing.status == 404 && text(missing).contains("campaign spring sale"), "\(text(missing))")
        let carrier = f.handle(head("POST", "/api/v1/carriers/jasmin/resume"), body: [])
        #expect(carrier.status == 409 && text(carrier).contains("carrier jasmin is not paused"), "\(text(carrier))")
        let unknown = f.handle(head("POST", "/api/v1/carriers/nosuch/resume"), body: [])
        #expect(unknown.status == 404 && text(unknown).contains("no carrier nosuch"), "\(text(unknown))")
        let segment = f.handle(head("PUT", "/api/v1/campaigns/gone/segments/a.csv"), body: [])
        #expect(segment.status == 404 && text(segment).contains("campaign gone"), "\(text(segment))")
    }

    /// The store's errors carry SQLite's message and the statement; a client gets a 500 saying only that it
    /// failed, on every path a handler can take (head, buffered body).
    @Test func aStoreErrorIsA500WithoutSQL() throws {
        let f = FuzzService()
        let db = try Connection(path: f.store.path)
        try db.exec("DROP TABLE suppressions")
        // What the client must not see is there to see: the store's own error names the table and the statement.
        var detail = ""
        do { _ = try f.store.optOutCount() } catch { detail = "\(error)" }
        #expect(detail.contains("suppressions"), "\(detail)")
        let requests = [(head("GET", "/api/v1/optouts"), [UInt8]()), (head("POST", "/api/v1/optouts"), Array("+84912345678\n".utf8))]
        for (h, body) in requests {
            let r = f.handle(h, body: body)
            #expect(r.status == 500, "\(h.method) \(h.path): \(r.status) \(text(r))")
            #expect(text(r).contains("\"internal\""), "\(text(r))")
            for leak in ["suppressions", "SELECT", "INSERT", "sqlite", "no such table"] {
                #expect(!text(r).lowercased().contains(leak.lowercased()), "\(h.method) \(h.path) showed \(leak): \(text(r))")
            }
        }
    }

    /// Handlers read the daemon's clock: a campaign's feasibility on a clock past its deadline has no window
    /// left (on the wall clock, years before 2030, it has a week of windows).
    @Test func handlersReadTheDaemonsClock() throws {
        let clock = ManualTimeSource(ISOTime.parse("2030-02-01T12:00:00Z")!)
        let f = FuzzService(clock: clock)
        let campaign = #"{"id": "clocked", "sender": "Loa", "templates": [{"name": "t", "text": "Hello"}], "segments": [{"name": "s.csv"}],"#
            + #" "start": "2030-01-01T08:00:00Z", "deadline": "2030-01-08T20:00:00Z"}"#
        let created = f.handle(head("POST", "/api/v1/campaigns"), body: Array(campaign.utf8))
        try #require(created.status == 201, "\(text(created))")
        let view = f.handle(head("GET", "/api/v1/campaigns/clocked"), body: [])
        #expect(view.status == 200)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(view.body)) as? [String: Any])
        let feasibility = try #require(json["feasibility"] as? [String: Any], "\(text(view))")
        #expect(feasibility["window_seconds"] as? Double == 0, "\(text(view))")
        // The same campaign at its start on the same clock: a week of daily windows is ahead.
        clock.set(ISOTime.parse("2030-01-01T00:00:00Z")!)
        let early = try #require(try JSONSerialization.jsonObject(with: Data(f.handle(head("GET", "/api/v1/campaigns/clocked"), body: []).body)) as? [String: Any])
        #expect((early["feasibility"] as? [String: Any])?["window_seconds"] as? Double ?? 0 > 7 * 3600, "\(early)")
    }
}
