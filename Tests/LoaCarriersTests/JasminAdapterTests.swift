import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import Testing

@Suite(.serialized) struct JasminAdapterTests {
    static let receiptURL = "http://127.0.0.1:8780/dlr/jasmin?k=s3cret&m=42"

    func sms(_ text: String, encoding: SMSEncoding, id: Int64 = 42) -> OutgoingSMS {
        OutgoingSMS(id: id, from: "UBND-HCM", to: "+84912345678", text: text, encoding: encoding, segments: 1, receiptURL: Self.receiptURL)
    }

    func adapter(_ engine: CurlEngine, url: String = "http://127.0.0.1:1401/send", post: Bool = false) -> JasminAdapter {
        JasminAdapter(name: "jasmin", sendURL: url, username: "loa", password: "p&ss wörd", timeout: 5, engine: engine, usePOST: post)
    }

    @Test func gsm7RequestIsAQueryString() throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        let r = adapter(engine).request(for: sms("Hello & bye", encoding: .gsm7))
        #expect(r.method == "GET")
        #expect(r.url == "http://127.0.0.1:1401/send?username=loa&password=p%26ss%20w%C3%B6rd&to=84912345678&from=UBND-HCM"
            + "&coding=0&content=Hello%20%26%20bye&dlr=yes"
            + "&dlr-url=http%3A%2F%2F127.0.0.1%3A8780%2Fdlr%2Fjasmin%3Fk%3Ds3cret%26m%3D42&dlr-level=3&dlr-method=POST")
        #expect(r.body.isEmpty)
    }

    @Test func everyRequestGoesThroughTheCarriersProxyOrNone() throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        for post in [false, true] {
            #expect(adapter(engine, post: post).request(for: sms("Hi", encoding: .gsm7)).proxy == nil)
            let proxied = JasminAdapter(name: "jasmin", sendURL: "http://127.0.0.1:1401/send", username: "loa", password: "pw", timeout: 5,
                                        engine: engine, usePOST: post, proxy: "socks5h://10.0.0.1:1080")
            #expect(proxied.request(for: sms("Hi", encoding: .gsm7)).proxy == "socks5h://10.0.0.1:1080", "POST \(post)")
        }
    }

    @Test func ucs2GoesAsHexContentWithoutContent() throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        let r = adapter(engine).request(for: sms("Đăng ký 😀", encoding: .ucs2))
        #expect(JasminAdapter.utf16BEHex("Đăng ký 😀") == "01100103006E00670020006B00FD0020D83DDE00")
        #expect(r.url.contains("&coding=8&hex-content=01100103006E00670020006B00FD0020D83DDE00&dlr=yes"))
        #expect(!r.url.contains("content=%"))
        #expect(!r.url.contains("&content="))
    }

    @Test func postSendsTheSameFieldsFormEncoded() throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        let r = adapter(engine, post: true).request(for: sms("Hi", encoding: .gsm7))
        #expect(r.method == "POST" && r.url == "http://127.0.0.1:1401/send")
        #expect(r.headers == [HTTPHeader("Content-Type", "application/x-www-form-urlencoded")])
        #expect(String(decoding: r.body, as: UTF8.self) == "username=loa&password=p%26ss%20w%C3%B6rd&to=84912345678&from=UBND-HCM&coding=0"
            + "&content=Hi&dlr=yes&dlr-url=http%3A%2F%2F127.0.0.1%3A8780%2Fdlr%2Fjasmin%3Fk%3Ds3cret%26m%3D42&dlr-level=3&dlr-method=POST")
    }

    @Test func overRealHTTPTheGatewaySeesEveryField() async throws {
        let fake = FakeSendsms { _ in .text(200, "Success \"07033084-5cfd-4812-90a4-e4d24ffb6e3d\"") }
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: fake)
        defer { server.stop() }
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        let a = adapter(engine, url: "http://127.0.0.1:\(server.port)/send")
        #expect(await a.send(sms("Góp ý", encoding: .ucs2)) == .accepted(gatewayID: "07033084-5cfd-4812-90a4-e4d24ffb6e3d", detail: nil))
        let q = try #require(fake.seen.withLock { $0.first }).query
        #expect(q["username"] == "loa" && q["password"] == "p&ss wörd" && q["to"] == "84912345678" && q["from"] == "UBND-HCM")
        #expect(q["coding"] == "8" && q["hex-content"] == "004700F30070002000FD" && q["content"] == nil)
        #expect(q["dlr"] == "yes" && q["dlr-url"] == Self.receiptURL && q["dlr-level"] == "3" && q["dlr-method"] == "POST")
    }

    @Test func classifiesEveryJasminAnswer() {
        #expect(JasminAdapter.classify(status: 200, body: "Success \"abc-123\"", retryAfter: nil) == .accepted(gatewayID: "abc-123", detail: nil))
        #expect(JasminAdapter.classify(status: 200, body: "OK", retryAfter: nil) == .temporary("HTTP 200: unrecognized answer: OK"))
        #expect(JasminAdapter.classify(status: 400, body: "Error \"Argument _ is unknown.\"", retryAfter: nil)
            == .permanent("HTTP 400: Error \"Argument _ is unknown.\""))
        #expect(JasminAdapter.classify(status: 403, body: "Error \"User throughput exceeded\"", retryAfter: nil)
            == .throttled(retryAfter: nil, "HTTP 403: Error \"User throughput exceeded\""))
        guard case .unauthorized = JasminAdapter.classify(status: 403, body: "Error \"Authentication failure for username:loa\"", retryAfter: nil) else {
            Issue.record("bad credentials are a refusal of the credentials"); return
        }
        guard case .unauthorized = JasminAdapter.classify(status: 403, body: "Error \"Cannot charge submit_sm, check RemoteBalance\"", retryAfter: nil) else {
            Issue.record("balance"); return
        }
        #expect(JasminAdapter.classify(status: 412, body: "Error \"No route found\"", retryAfter: nil) == .permanent("HTTP 412: Error \"No route found\""))
        #expect(JasminAdapter.classify(status: 412, body: "Error \"Failover route has no bound connectors\"", retryAfter: nil)
            == .temporary("HTTP 412: Error \"Failover route has no bound connectors\""))
        #expect(JasminAdapter.classify(status: 429, body: "", retryAfter: "3") == .throttled(retryAfter: 3, "HTTP 429: "))
        #expect(JasminAdapter.classify(status: 503, body: "busy", retryAfter: nil) == .throttled(retryAfter: nil, "HTTP 503: busy"))
        #expect(JasminAdapter.classify(status: 500, body: "Error \"Cannot send submit_sm\"", retryAfter: nil)
            == .temporary("HTTP 500: Error \"Cannot send submit_sm\""))
    }

    @Test func anUnreachableGatewayIsUnavailableAndThePasswordHidden() async throws {
        let fake = FakeSendsms { _ in .text(200, "") }
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: fake)
        let port = server.port
        server.stop()
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        let outcome = await adapter(engine, url: "http://127.0.0.1:\(port)/send").send(sms("secret text", encoding: .gsm7))
        guard case .unavailable(let d) = outcome else { Issue.record("expected unavailable, got \(outcome)"); return }
        #expect(d.contains("could not connect") && !d.contains("ss w") && !d.contains("secret text"))
    }

    @Test func levelOneReceipts() {
        let ok = JasminAdapter.parseReceipt(["k": "s3cret", "m": "42", "id": "abc-123", "level": "1", "message_status": "ESME_ROK"])
        #expect(ok == .success(InboundReceipt(key: .loa(42), status: .smscAccepted, gatewayID: "abc-123", detail: "ESME_ROK")))
        let bad = JasminAdapter.parseReceipt(["id": "abc-123", "level": "1", "message_status": "ESME_RINVDSTADR"])
        #expect(bad == .success(InboundReceipt(key: .gateway("abc-123"), status: .smscRejected, gatewayID: "abc-123", detail: "ESME_RINVDSTADR")))
        #expect(JasminAdapter.parseReceipt(["id": "a", "level": "1", "message_status": "DELIVRD"])
            == .failure(ReceiptParseError(field: "message_status", reason: "unknown level 1 status 'DELIVRD'")))
    }

    @Test func levelTwoReceipts() {
        func parse(_ stat: String, err: String = "000") -> Result<InboundReceipt, ReceiptParseError> {
            JasminAdapter.parseReceipt(["k": "s3cret", "m": "42", "id": "abc-123", "level": "2", "message_status": stat, "id_smsc": "0815",
                                        "sub": "001", "dlvrd": "001", "subdate": "2601011200", "donedate": "2601011201", "err": err,
                                        "text": "Hello the message"])
        }
        #expect(parse("DELIVRD") == .success(InboundReceipt(key: .loa(42), status: .delivered, gatewayID: "abc-123", detail: "DELIVRD err 000")))
        #expect(parse("UNDELIV", err: "011") == .success(InboundReceipt(key: .loa(42), status: .undelivered, gatewayID: "abc-123", detail: "UNDELIV err 011")))
        // The network dropped it at the end of its validity period: its own final state, the word as the reason.
        #expect(parse("EXPIRED") == .success(InboundReceipt(key: .loa(42), status: .expired, gatewayID: "abc-123", detail: "EXPIRED err 000")))
        let expected: [(String, ReceiptStatus)] = [("ACCEPTD", .smscAccepted), ("ENROUTE", .buffered), ("EXPIRED", .expired),
                                                   ("DELETED", .undelivered), ("UNKNOWN", .undelivered), ("REJECTD", .smscRejected)]
        for (stat, status) in expected {
            #expect((try? parse(stat).get().status) == status, "\(stat)")
        }
        if case .success(let r) = parse("DELIVRD") { #expect(!(r.detail ?? "").contains("Hello")) }
        #expect(parse("WHATEVER") == .failure(ReceiptParseError(field: "message_status", reason: "unknown status 'WHATEVER'")))
    }

    @Test func receiptKeysAndMissingFields() {
        // m that is not a number: fall back to Jasmin's id.
        #expect((try? JasminAdapter.parseReceipt(["m": "x", "id": "abc", "level": "2", "message_status": "DELIVRD"]).get().key) == .gateway("abc"))
        #expect(JasminAdapter.parseReceipt(["level": "2", "message_status": "DELIVRD"]) == .failure(ReceiptParseError(field: "id", reason: "missing")))
        #expect(JasminAdapter.parseReceipt(["id": "abc", "level": "2"]) == .failure(ReceiptParseError(field: "message_status", reason: "missing")))
        #expect(JasminAdapter.parseReceipt(["id": "abc", "level": "9", "message_status": "DELIVRD"])
            == .failure(ReceiptParseError(field: "level", reason: "unknown level '9'")))
    }
}
