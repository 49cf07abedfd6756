import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import Synchronization
import Testing

/// A sendsms endpoint on 127.0.0.1 that records what it received and answers as configured.
final class FakeSendsms: HTTPService {
    struct Seen: Sendable { var query: [String: String]; var headers: [String: String] = [:]; var method = "GET" }
    let seen = Mutex<[Seen]>([])
    let answer: @Sendable (RequestHead) -> ServerResponse

    init(answer: @escaping @Sendable (RequestHead) -> ServerResponse) { self.answer = answer }

    func route(_ head: RequestHead) -> Route {
        if head.method == "POST" {
            return .buffer(limit: 1 << 16) { [self] h, body in
                seen.withLock { $0.append(Seen(query: ["text": String(decoding: body, as: UTF8.self)], headers: h.headers, method: "POST")) }
                return answer(h)
            }
        }
        seen.withLock { $0.append(Seen(query: head.query, headers: head.headers)) }
        return .respond(answer(head))
    }
}

/// A ``FakeSendsms`` on 127.0.0.1, an engine, and a Kannel adapter (user `loa`) sending to it; `close()` stops both.
struct KannelFixture {
    let fake: FakeSendsms
    let server: HTTPServer
    let engine: CurlEngine
    let adapter: KannelAdapter

    init(password: String = "pw", usePOST: Bool = false, answer: @escaping @Sendable (RequestHead) -> ServerResponse) throws {
        fake = FakeSendsms(answer: answer)
        server = try HTTPServer(address: "127.0.0.1", port: 0, service: fake)
        engine = try CurlEngine()
        adapter = KannelAdapter(name: "k", sendsmsURL: "http://127.0.0.1:\(server.port)/cgi-bin/sendsms", username: "loa",
                                password: password, timeout: 5, engine: engine, usePOST: usePOST)
    }

    func close() {
        engine.shutdown()
        server.stop()
    }
}

@Suite(.serialized) struct KannelAdapterTests {
    func sms(_ text: String, encoding: SMSEncoding) -> OutgoingSMS {
        OutgoingSMS(id: 42, from: "UBND-HCM", to: "+84912345678", text: text, encoding: encoding, segments: 1,
                    receiptURL: "http://127.0.0.1:8780/dlr/k?k=secret&st=%d&id=42")
    }

    @Test func sendsTheKannelParametersOverRealHTTP() async throws {
        let f = try KannelFixture(password: "p&ss=wörd") { _ in .text(202, "0: Accepted for delivery") }
        defer { f.close() }
        let (fake, adapter) = (f.fake, f.adapter)
        let vi = "Góp ý dự thảo: đăng nhập VNeID + 100% {{}} & =?"
        #expect(await adapter.send(sms(vi, encoding: .ucs2)) == .accepted(gatewayID: nil, detail: "0: Accepted for delivery"))
        #expect(await adapter.send(sms("Hello", encoding: .gsm7)) == .accepted(gatewayID: nil, detail: "0: Accepted for delivery"))
        let seen = fake.seen.withLock { $0 }
        try #require(seen.count == 2)
        let q = seen[0].query
        #expect(q["username"] == "loa" && q["password"] == "p&ss=wörd")
        #expect(q["from"] == "UBND-HCM" && q["to"] == "+84912345678")
        #expect(q["text"] == vi)
        #expect(q["coding"] == "2" && q["charset"] == "UTF-8")
        #expect(q["dlr-mask"] == "31")
        #expect(q["dlr-url"] == "http://127.0.0.1:8780/dlr/k?k=secret&st=%d&id=42")
        #expect(seen[1].query["coding"] == nil)
    }

    @Test func postCarriesParametersAsKannelHeaders() async throws {
        let f = try KannelFixture(usePOST: true) { _ in .text(202, "0: Accepted for delivery") }
        defer { f.close() }
        let (fake, adapter) = (f.fake, f.adapter)
        #expect(await adapter.send(sms("Đăng nhập VNeID", encoding: .ucs2)) == .accepted(gatewayID: nil, detail: "0: Accepted for delivery"))
        let seen = try #require(fake.seen.withLock { $0.first })
        #expect(seen.method == "POST" && seen.query["text"] == "Đăng nhập VNeID")
        #expect(seen.headers["x-kannel-username"] == "loa" && seen.headers["x-kannel-to"] == "+84912345678")
        #expect(seen.headers["x-kannel-coding"] == "2" && seen.headers["x-kannel-dlr-mask"] == "31")
        #expect(seen.headers["content-type"] == "text/plain; charset=UTF-8")
    }

    /// The dispatcher's way (`start`, no task, classified on the engine thread) and `send` read every answer alike.
    @Test func startAndSendGiveTheSameOutcomes() async throws {
        let f = try KannelFixture { head in
            switch head.query["text"] {
            case "ok": .text(202, "0: Accepted for delivery")
            case "bad": .text(400, "Missing receiver number")
            default: ServerResponse(status: 503, headers: [.init("Retry-After", "7")], body: Array("busy".utf8))
            }
        }
        defer { f.close() }
        let (fake, adapter) = (f.fake, f.adapter)
        let expected: [String: GatewayOutcome] = [
            "ok": .accepted(gatewayID: nil, detail: "0: Accepted for delivery"),
            "bad": .permanent("HTTP 400: Missing receiver number"),
            "busy": .throttled(retryAfter: 7, "HTTP 503: busy"),
        ]
        for (text, outcome) in expected {
            let message = sms(text, encoding: .gsm7)
            #expect(await adapter.send(message) == outcome)
            let started = await withCheckedContinuation { (c: CheckedContinuation<GatewayOutcome, Never>) in
                adapter.start(message) { c.resume(returning: $0) }
            }
            #expect(started == outcome)
        }
        #expect(fake.seen.withLock { $0.count } == 6)
    }

    /// Every rate-limit dialect reaches the throttled outcome through the one parser (``RateLimitHeaders``):
    /// the engine keeps those headers and the adapter turns them into its wait.
    @Test func throttledAnswersCarryTheWaitOfEveryRateLimitHeader() async throws {
        let epoch = Int64(time(nil))
        let f = try KannelFixture { head in
            switch head.query["text"] {
            case "epoch": ServerResponse(status: 429, headers: [.init("X-Rate-Limit-Reset", "\(epoch + 60)")], body: Array("slow".utf8))
            case "delta": ServerResponse(status: 429, headers: [.init("X-RateLimit-Reset", "17")], body: Array("slow".utf8))
            case "ietf": ServerResponse(status: 429, headers: [.init("RateLimit", "\"default\";r=0;t=12")], body: Array("slow".utf8))
            case "date": ServerResponse(status: 503, headers: [.init("Retry-After", HTTPDateText.format(epoch + 30))], body: Array("slow".utf8))
            default: ServerResponse(status: 429, body: Array("slow".utf8))
            }
        }
        defer { f.close() }
        func wait(_ text: String) async -> Double? {
            guard case .throttled(let ra, _) = await f.adapter.send(sms(text, encoding: .gsm7)) else { return -1 }
            return ra
        }
        // Times are read against the clock around each answer (a loaded machine may take seconds per request).
        var before = Double(time(nil))
        let e = try #require(await wait("epoch"))
        var after = Double(time(nil))
        #expect(e >= Double(epoch + 60) - after - 1 && e <= Double(epoch + 60) - before + 1, "an epoch reset is a time, not 1.7e9 seconds: \(e)")
        #expect(await wait("delta") == 17)
        #expect(await wait("ietf") == 12)
        before = Double(time(nil))
        let d = try #require(await wait("date"))
        after = Double(time(nil))
        #expect(d >= Double(epoch + 30) - after - 1 && d <= Double(epoch + 30) - before + 1, "an HTTP-date Retry-After: \(d)")
        #expect(await wait("none") == nil)
    }

    @Test func classifiesEveryAnswer() {
        #expect(KannelAdapter.classify(status: 202, body: "0: Accepted for delivery", retryAfter: nil) == .accepted(gatewayID: nil, detail: "0: Accepted for delivery"))
        #expect(KannelAdapter.classify(status: 202, body: "3: Queued for later delivery", retryAfter: nil) == .accepted(gatewayID: nil, detail: "3: Queued for later delivery"))
        #expect(KannelAdapter.classify(status: 400, body: "Missing receiver number", retryAfter: nil) == .permanent("HTTP 400: Missing receiver number"))
        // A refusal of the credentials is its own class: the message waits without an attempt, the breaker opens.
        #expect(KannelAdapter.classify(status: 403, body: "Authorization failed for sendsms", retryAfter: nil)
            == .unauthorized("HTTP 403: gateway refused the credentials: Authorization failed for sendsms"))
        guard case .unauthorized = KannelAdapter.classify(status: 401, body: "", retryAfter: nil) else {
            Issue.record("401 is a refusal of the credentials"); return
        }
        #expect(KannelAdapter.classify(status: 503, body: "busy", retryAfter: "7") == .throttled(retryAfter: 7, "HTTP 503: busy"))
        #expect(KannelAdapter.classify(status: 429, body: "", retryAfter: nil) == .throttled(retryAfter: nil, "HTTP 429: "))
        guard case .temporary = KannelAdapter.classify(status: 500, body: "oops", retryAfter: nil) else { Issue.record("500"); return }
        guard case .temporary = KannelAdapter.classify(status: 202, body: "garbage", retryAfter: nil) else { Issue.record("unknown 2xx body"); return }
    }

    @Test func anUnreachableGatewayIsUnavailableAndCredentialsStayHidden() async throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        // A port nothing listens on (bound then closed).
        let fake = FakeSendsms { _ in .text(200, "") }
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: fake)
        let port = server.port
        server.stop()
        let adapter = KannelAdapter(name: "k", sendsmsURL: "http://127.0.0.1:\(port)/cgi-bin/sendsms", username: "loa",
                                    password: "TOPSECRET", timeout: 2, engine: engine)
        let outcome = await adapter.send(sms("x", encoding: .gsm7))
        guard case .unavailable(let detail) = outcome else { Issue.record("expected unavailable, got \(outcome)"); return }
        #expect(detail.contains("could not connect"))
        #expect(!detail.contains("TOPSECRET"))
    }

    /// A port nothing listens on (bound, then closed).
    func closedPort() throws -> Int {
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: FakeSendsms { _ in .text(200, "") })
        defer { server.stop() }
        return server.port
    }

    @Test func aConfiguredProxyCarriesTheRequestAndItsCredentialsStayHidden() async throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        let gatewayPort = try closedPort()  // reachable only through the proxy
        let proxy = FakeSendsms { _ in .text(202, "0: Accepted for delivery") }
        let proxyServer = try HTTPServer(address: "127.0.0.1", port: 0, service: proxy)
        defer { proxyServer.stop() }
        for usePOST in [false, true] {
            let adapter = KannelAdapter(name: "k", sendsmsURL: "http://127.0.0.1:\(gatewayPort)/cgi-bin/sendsms", username: "loa",
                                        password: "pw", timeout: 5, engine: engine, usePOST: usePOST,
                                        proxy: "http://proxyuser:PROXYPASS@127.0.0.1:\(proxyServer.port)")
            #expect(await adapter.send(sms("Hello", encoding: .gsm7)) == .accepted(gatewayID: nil, detail: "0: Accepted for delivery"))
        }
        let seen = proxy.seen.withLock { $0 }
        try #require(seen.count == 2)
        for s in seen {
            // The proxy got the request for the gateway, with the proxy's own credentials.
            #expect(s.headers["host"] == "127.0.0.1:\(gatewayPort)")
            #expect(s.headers["proxy-authorization"] == "Basic " + Data("proxyuser:PROXYPASS".utf8).base64EncodedString())
        }
        #expect(seen[0].query["to"] == "+84912345678" && seen[1].headers["x-kannel-to"] == "+84912345678")
        // A proxy that is down: the gateway is unavailable, and the proxy's password appears nowhere.
        let down = KannelAdapter(name: "k", sendsmsURL: "http://127.0.0.1:\(proxyServer.port)/cgi-bin/sendsms", username: "loa",
                                 password: "pw", timeout: 2, engine: engine, proxy: "http://proxyuser:PROXYPASS@127.0.0.1:\(try closedPort())")
        let outcome = await down.send(sms("x", encoding: .gsm7))
        guard case .unavailable(let detail) = outcome else { Issue.record("expected unavailable, got \(outcome)"); return }
        #expect(!detail.contains("PROXYPASS") && !detail.contains("proxyuser"), "\(detail)")
        #expect(proxy.seen.withLock { $0.count } == 2, "nothing went around the proxy")
    }

    @Test func failuresAfterSendingAreAmbiguousUnlessTheGatewayIsIdempotent() {
        guard case .ambiguous = GatewayOutcome.transport(.timedOut("5 s")) else { Issue.record("timeout"); return }
        guard case .ambiguous = GatewayOutcome.transport(.connectionLost("reset")) else { Issue.record("reset"); return }
        guard case .temporary = GatewayOutcome.transport(.timedOut("5 s"), idempotent: true) else { Issue.record("idempotent"); return }
        guard case .unavailable = GatewayOutcome.transport(.couldNotConnect("refused")) else { Issue.record("refused"); return }
        guard case .temporary = GatewayOutcome.transport(.other(code: 7, message: "other")) else { Issue.record("other"); return }
        // A request that cannot be built from the message is that message's permanent failure, never retried.
        guard case .permanent = GatewayOutcome.transport(.other(code: 3, message: "bad url")) else { Issue.record("malformed"); return }
        guard case .permanent = GatewayOutcome.transport(.other(code: 43, message: "too long")) else { Issue.record("too long"); return }
    }

    @Test func queryEscaping() {
        #expect(URLQuery.escape("a b+c/é%") == "a%20b%2Bc%2F%C3%A9%25")
        var q = URLQuery()
        q.add("dlr-url", "http://h/x?a=1&b=%d")
        #expect(q.encoded == "dlr-url=http%3A%2F%2Fh%2Fx%3Fa%3D1%26b%3D%25d")
    }
}

/// IMF-fixdate text for a Unix time (the test's side of ``HTTPDate``).
enum HTTPDateText {
    static func format(_ t: Int64) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return f.string(from: Date(timeIntervalSince1970: TimeInterval(t)))
    }
}
