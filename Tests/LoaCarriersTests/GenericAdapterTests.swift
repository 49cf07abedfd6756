import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import Testing

/// Decodes a spec the way the daemon does: JSONDecoder in JSON5 mode, from the carrier entry.
func genericSpec(_ json5: String) throws -> GenericGatewaySpec {
    let d = JSONDecoder()
    d.allowsJSON5 = true
    return try d.decode(GenericGatewaySpec.self, from: Data(json5.utf8))
}

/// A carrier file under Config/carriers, found from this file's path.
func carrierFile(_ name: String) throws -> GenericGatewaySpec {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return try genericSpec(String(contentsOf: root.appendingPathComponent("Config/carriers/\(name)"), encoding: .utf8))
}

func sms(_ id: Int64, _ to: String, _ text: String, _ encoding: SMSEncoding = .gsm7, carrier: String = "gw") -> OutgoingSMS {
    OutgoingSMS(id: id, from: "LOA", to: to, text: text, encoding: encoding, segments: 1,
                receiptURL: "http://127.0.0.1:8780/dlr/\(carrier)?k=rs&m=\(id)")
}

func json(_ s: String) -> [UInt8] { Array(s.utf8) }

@Suite(.serialized) struct GenericAdapterTests {
    let engine: CurlEngine
    init() throws { engine = try CurlEngine() }

    func adapter(_ spec: GenericGatewaySpec, _ secrets: [String: String] = [:]) -> GenericHTTPAdapter {
        GenericHTTPAdapter(name: "gw", spec: spec, secrets: secrets, timeout: 5, engine: engine)
    }

    // MARK: The simulator's generic JSON shape

    @Test func simulatorRequestBytesWithJSONEscaping() throws {
        defer { engine.shutdown() }
        let a = adapter(try carrierFile("gateway-sim-generic.json5"), ["token": "T0KEN-abc"])
        #expect(a.maxBatch == 100)
        let vi = "Chào \"bạn\"\nđăng ký\\ok\t\u{01}"
        let r = a.request(for: [sms(123, "+84912345678", vi, .ucs2), sms(124, "+84987654321", "Hello")])
        #expect(r.method == "POST" && r.url == "http://127.0.0.1:13100/api/sms" && r.timeout == 5)
        #expect(r.headers == [HTTPHeader("Authorization", "Bearer T0KEN-abc"), HTTPHeader("Content-Type", "application/json")])
        let body = String(decoding: r.body, as: UTF8.self)
        #expect(body == #"{"callback_url":"http://127.0.0.1:8780/dlr/gw?k=rs&m=123","messages":[{"ref":"123","text":"Chào \"bạn\"\nđăng ký\\ok\t\u0001","to":"84912345678"},{"ref":"124","text":"Hello","to":"84987654321"}],"sender":"LOA"}"#)
        // Foundation reads back exactly the text sent.
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
        let messages = try #require(parsed["messages"] as? [[String: Any]])
        #expect(messages[0]["text"] as? String == vi)
    }

    @Test func everyRequestGoesThroughTheCarriersProxyOrNone() throws {
        defer { engine.shutdown() }
        let spec = try carrierFile("gateway-sim-generic.json5")
        let batch = [sms(1, "+84912345678", "Hi"), sms(2, "+84912345679", "Hi")]
        #expect(adapter(spec, ["token": "t"]).request(for: batch).proxy == nil)
        let proxied = GenericHTTPAdapter(name: "gw", spec: spec, secrets: ["token": "t"], timeout: 5, engine: engine, proxy: "http://10.0.0.1:3128")
        #expect(proxied.request(for: batch).proxy == "http://10.0.0.1:3128")
    }

    @Test func simulatorAnswers() throws {
        defer { engine.shutdown() }
        let a = adapter(try carrierFile("gateway-sim-generic.json5"), ["token": "T0KEN-abc"])
        let batch = [sms(123, "+84912345678", "Xin chao ban"), sms(124, "+84912345679", "Xin chao ban")]
        let ok = json(#"{"status":"ok","results":[{"ref":"123","id":"g-00000001","status":"queued"},{"ref":"124","status":"rejected","error":"invalid number"}]}"#)
        #expect(a.classify(status: 200, retryAfter: nil, body: ok, batch: batch)
            == [.accepted(gatewayID: "g-00000001", detail: nil), .permanent("HTTP 200: invalid number")])
        // Matched by ref, not position.
        let reversed = json(#"{"status":"ok","results":[{"ref":"124","id":"g-2","status":"queued"},{"ref":"123","id":"g-1","status":"queued"}]}"#)
        #expect(a.classify(status: 200, retryAfter: nil, body: reversed, batch: batch)
            == [.accepted(gatewayID: "g-1", detail: nil), .accepted(gatewayID: "g-2", detail: nil)])
        let missing = json(#"{"status":"ok","results":[{"ref":"123","id":"g-1","status":"queued"}]}"#)
        #expect(a.classify(status: 200, retryAfter: nil, body: missing, batch: batch)[1] == .temporary("HTTP 200: gateway answer has no result for this message"))
        let odd = json(#"{"status":"ok","results":[{"ref":"123","id":"g-1","status":"pondering"}]}"#)
        #expect(a.classify(status: 200, retryAfter: nil, body: odd, batch: [batch[0]]) == [.temporary("HTTP 200: unrecognized result for this message")])
        var quiet = try carrierFile("gateway-sim-generic.json5")
        quiet.response?.results?.detailPointer = nil
        #expect(adapter(quiet).classify(status: 200, retryAfter: nil, body: ok, batch: batch)[1] == .permanent("HTTP 200: the gateway's result for this message"))
        let limited = json(#"{"status":"error","error":"rate limited"}"#)
        #expect(a.classify(status: 429, retryAfter: "2", body: limited, batch: batch) == Array(repeating: .throttled(retryAfter: 2, "HTTP 429: rate limited"), count: 2))
        #expect(a.classify(status: 503, retryAfter: nil, body: json(#"{"status":"error","error":"overloaded"}"#), batch: [batch[0]])
            == [.throttled(retryAfter: nil, "HTTP 503: overloaded")])
        #expect(a.classify(status: 500, retryAfter: nil, body: json(#"{"status":"error","error":"boom"}"#), batch: [batch[0]]) == [.temporary("HTTP 500: boom")])
        #expect(a.classify(status: 401, retryAfter: nil, body: json(#"{"status":"error","error":"bad token"}"#), batch: [batch[0]]) == [.unauthorized("HTTP 401: bad token")])
        #expect(a.classify(status: 200, retryAfter: nil, body: json("garbage"), batch: [batch[0]]) == [.temporary("HTTP 200: unrecognized answer: garbage")])
        // Wrong types never trap: results that are not a list mean no result for anyone.
        #expect(a.classify(status: 200, retryAfter: nil, body: json(#"{"status":"ok","results":"nope"}"#), batch: batch)
            == Array(repeating: .temporary("HTTP 200: gateway answer has no result for this message"), count: 2))
    }

    @Test func detailsHideSecretsTextAndNumbersAndStayShort() throws {
        defer { engine.shutdown() }
        let a = adapter(try carrierFile("gateway-sim-generic.json5"), ["token": "T0KEN-abc"])
        let echo = json(#"{"status":"error","error":"bad T0KEN-abc for Xin chao ban to 84912345678"}"#)
        #expect(a.classify(status: 500, retryAfter: nil, body: echo, batch: [sms(1, "+84912345678", "Xin chao ban")])
            == [.temporary("HTTP 500: bad *** for <text> to 8491****678")])
        let long = json(String(repeating: "x", count: 100_000))
        guard case .temporary(let d) = a.classify(status: 502, retryAfter: nil, body: long, batch: [sms(1, "+84912345678", "t")])[0] else {
            Issue.record("502"); return
        }
        #expect(d.count == 200)
    }

    @Test func hostileBodiesNeverTrap() throws {
        defer { engine.shutdown() }
        let a = adapter(try carrierFile("gateway-sim-generic.json5"), ["token": "T0KEN-abc"])
        let m = [sms(1, "+84912345678", "t")]
        for body in [Array(repeating: UInt8(ascii: "["), count: 1 << 20), Array(repeating: UInt8(ascii: "{"), count: 5 << 20),
                     json(#"{"status":"ok","results":[{"ref":1e999999}]}"#), [0xFF, 0xFE, 0x00], json(#"{"status":"\ud800"}"#), []] {
            let o = a.classify(status: 200, retryAfter: nil, body: body, batch: m)
            #expect(o.count == 1)
            if case .accepted = o[0] { Issue.record("accepted a hostile body") }
        }
    }

    @Test func simulatorReceipts() throws {
        defer { engine.shutdown() }
        let a = adapter(try carrierFile("gateway-sim-generic.json5"), ["token": "T0KEN-abc"])
        #expect(a.receiptAck == "OK")
        func parse(_ s: String) -> Result<[InboundReceipt], ReceiptParseError> { a.parseReceipts(body: json(s), fields: ["k": "rs", "m": "999"]) }
        #expect(parse(#"{"id":"g-00000001","ref":"123","to":"84912345678","status":"DELIVERED","error_code":"000"}"#)
            == .success([InboundReceipt(key: .loa(123), status: .delivered, gatewayID: "g-00000001", detail: "DELIVERED error_code=000")]))
        #expect((try? parse(#"{"id":"g-1","ref":"123","status":"UNDELIVERED","error_code":"011"}"#).get())?.first?.status == .undelivered)
        #expect((try? parse(#"{"id":"g-1","ref":"123","status":"ENROUTE"}"#).get())?.first?.status == .buffered)
        #expect((try? parse(#"{"id":"g-1","ref":"123","status":"EXPIRED"}"#).get())?.first?.status == .undelivered)
        #expect(parse(#"{"id":"g-1","ref":"123","status":"LOST"}"#) == .failure(ReceiptParseError(field: "/status", reason: "unknown status 'LOST'")))
        #expect(parse(#"{"id":"g-1","status":"DELIVERED"}"#) == .failure(ReceiptParseError(field: "/ref", reason: "missing")))
        #expect(parse(#"{"id":"g-1","ref":"abc","status":"DELIVERED"}"#) == .failure(ReceiptParseError(field: "/ref", reason: "'abc' is not a Loa message id")))
        #expect(parse("ref=1") == .failure(ReceiptParseError(field: "body", reason: "not JSON")))
    }

    @Test func sendBatchOverRealHTTPKeepsInputOrder() async throws {
        defer { engine.shutdown() }
        let fake = FakeSendsms { _ in .text(200, #"{"status":"ok","results":[{"ref":"1","id":"g-1","status":"queued"},{"ref":"2","id":"g-2","status":"queued"},{"ref":"3","status":"rejected","error":"invalid number"}]}"#) }
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: fake)
        defer { server.stop() }
        var spec = try carrierFile("gateway-sim-generic.json5")
        spec.url = "http://127.0.0.1:\(server.port)/api/sms"
        spec.batch?.max = 2
        let a = adapter(spec, ["token": "T0KEN-abc"])
        let outcomes = await a.send(batch: [sms(1, "+84912345671", "a"), sms(2, "+84912345672", "b"), sms(3, "+84912345673", "c")])
        #expect(outcomes == [.accepted(gatewayID: "g-1", detail: nil), .accepted(gatewayID: "g-2", detail: nil), .permanent("HTTP 200: invalid number")])
        let seen = fake.seen.withLock { $0 }
        try #require(seen.count == 2)
        #expect(seen[0].method == "POST" && seen[0].headers["authorization"] == "Bearer T0KEN-abc" && seen[0].headers["content-type"] == "application/json")
        #expect(seen[0].query["text"]?.contains(#"{"ref":"1","text":"a","to":"84912345671"},{"ref":"2","text":"b","to":"84912345672"}]"#) == true)
        #expect(seen[1].query["text"]?.contains(#""messages":[{"ref":"3","text":"c","to":"84912345673"}]"#) == true)
    }

    @Test func anUnreachableGatewayIsUnavailableForTheWholeRequest() async throws {
        defer { engine.shutdown() }
        let fake = FakeSendsms { _ in .text(200, "") }
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: fake)
        let port = server.port
        server.stop()
        var spec = try carrierFile("gateway-sim-generic.json5")
        spec.url = "http://127.0.0.1:\(port)/api/sms?key={{secret.token}}"
        let outcomes = await adapter(spec, ["token": "T0KEN-abc"]).send(batch: [sms(1, "+84912345671", "a"), sms(2, "+84912345672", "b")])
        #expect(outcomes.count == 2)
        for o in outcomes {
            guard case .unavailable(let d) = o else { Issue.record("\(o)"); continue }
            #expect(d.contains("could not connect") && !d.contains("T0KEN"))
        }
    }

    // MARK: eSMS

    static let esmsSingle = """
    // eSMS customer care: one number per request.
    {
      name: "esms", kind: "generic", rate: 20,
      url: "https://rest.esms.vn/MainService.svc/json/SendMultipleMessage_V4_post_json/",
      secrets: { api_key: { env: "K" }, secret_key: { env: "S" } },
      body: { format: "json", template: {
        ApiKey: "{{secret.api_key}}", SecretKey: "{{secret.secret_key}}", Phone: "{{to.national}}", Content: "{{text}}",
        Brandname: "{{from}}", SmsType: "2", IsUnicode: "{{unicode}}", Sandbox: "0", RequestId: "loa-{{id}}",
        CallbackUrl: "{{receipt_url}}",
      } },
      response: {
        rules: [
          { status: 200, pointer: "/CodeResult", equals: 100, class: "accepted" },
          { status: "200", pointer: "/CodeResult", in: ["101", "103", "104", "140"], class: "temporary" },
          { status: "200", pointer: "/CodeResult", in: [99, 108, 177], class: "permanent" },
        ],
        message_id: "/SMSID",
      },
      receipts: {
        format: "query", key: "gateway", id: ["SMSID", "phonenumber"], status: "SendStatus",
        statuses: { "1": "buffered", "2": "buffered", "4": "undelivered", "5": "delivered", "7": "smsc-accepted" },
      },
    }
    """

    @Test func esmsSingle() throws {
        defer { engine.shutdown() }
        let spec = try genericSpec(Self.esmsSingle)
        #expect(spec.validate(secretNames: ["api_key", "secret_key"]).isEmpty)
        let a = adapter(spec, ["api_key": "AK1", "secret_key": "SK1"])
        #expect(a.maxBatch == 1)
        let m = OutgoingSMS(id: 42, from: "UBND-HCM", to: "+84912345678", text: "Góp ý", encoding: .ucs2, segments: 1,
                            receiptURL: "http://127.0.0.1:8780/dlr/esms?k=rs&m=42")
        let r = a.request(for: [m])
        #expect(r.method == "POST" && r.url == "https://rest.esms.vn/MainService.svc/json/SendMultipleMessage_V4_post_json/")
        #expect(String(decoding: r.body, as: UTF8.self) == #"{"ApiKey":"AK1","Brandname":"UBND-HCM","CallbackUrl":"http://127.0.0.1:8780/dlr/esms?k=rs&m=42","Content":"Góp ý","IsUnicode":"1","Phone":"0912345678","RequestId":"loa-42","Sandbox":"0","SecretKey":"SK1","SmsType":"2"}"#)
        func code(_ c: String) -> GatewayOutcome {
            a.classify(status: 200, retryAfter: nil, body: json(#"{"CodeResult":\#(c),"CountRegenerate":0,"SMSID":"9c1f-77"}"#), batch: [m])[0]
        }
        #expect(code(#""100""#) == .accepted(gatewayID: "9c1f-77:84912345678", detail: nil))
        #expect(code("100") == .accepted(gatewayID: "9c1f-77:84912345678", detail: nil))
        for c in ["101", "103", "104", "140"] {
            guard case .temporary = code("\"\(c)\"") else { Issue.record("\(c) must be temporary"); continue }
        }
        for c in ["99", "108", "177"] {
            guard case .permanent = code("\"\(c)\"") else { Issue.record("\(c) must be permanent"); continue }
        }
        guard case .temporary(let d) = code(#""555""#) else { Issue.record("unknown code"); return }
        #expect(d.hasPrefix("HTTP 200: unrecognized answer: "))
        // The GET callback, query fields merged by the daemon.
        #expect(a.parseReceipts(body: [], fields: ["k": "rs", "m": "42", "SMSID": "9c1f-77", "SendStatus": "5", "phonenumber": "0912345678", "telcoid": "1"])
            == .success([InboundReceipt(key: .gateway("9c1f-77:84912345678"), status: .delivered, gatewayID: "9c1f-77:84912345678", detail: "5")]))
        #expect((try? a.parseReceipts(body: [], fields: ["SMSID": "9c1f-77", "SendStatus": "7", "phonenumber": "84912345678"]).get())?.first?.status == .smscAccepted)
        #expect(a.parseReceipts(body: [], fields: ["SMSID": "9c1f-77", "SendStatus": "9", "phonenumber": "0912345678"])
            == .failure(ReceiptParseError(field: "SendStatus", reason: "unknown status '9'")))
        #expect(a.parseReceipts(body: [], fields: ["SMSID": "9c1f-77", "SendStatus": "5"])
            == .failure(ReceiptParseError(field: "phonenumber", reason: "missing")))
    }

    @Test func esmsBulkGroupsBySameText() async throws {
        defer { engine.shutdown() }
        let fake = FakeSendsms { _ in .text(200, #"{"CodeResult":"100","CountRegenerate":0,"SMSID":"S1"}"#) }
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: fake)
        defer { server.stop() }
        var spec = try carrierFile("esms-bulk.json5")
        #expect(spec.validate(secretNames: ["api_key", "secret_key"]).isEmpty)
        let a0 = adapter(spec, ["api_key": "AK", "secret_key": "SK"])
        #expect(a0.maxBatch == 5000)
        let batch = [sms(123, "+84912345678", "Tin A"), sms(124, "+84912345679", "Tin B"), sms(125, "+84912345670", "Tin A")]
        #expect(GenericHTTPAdapter.groups(batch, max: 5000, sameText: true) == [[batch[0], batch[2]], [batch[1]]])
        let r = a0.request(for: [batch[0], batch[2]])
        #expect(String(decoding: r.body, as: UTF8.self) == #"{"ApiKey":"AK","Brandname":"LOA","CallbackUrl":"http://127.0.0.1:8780/dlr/gw?k=rs&m=123","Content":"Tin A","IsUnicode":"0","Phones":["0912345678","0912345670"],"Sandbox":"0","SecretKey":"SK","SmsType":"1"}"#)

        spec.url = "http://127.0.0.1:\(server.port)/SendMultipleSMSBrandname_json/"
        let outcomes = await adapter(spec, ["api_key": "AK", "secret_key": "SK"]).send(batch: batch)
        #expect(outcomes == [.accepted(gatewayID: "S1:84912345678", detail: nil), .accepted(gatewayID: "S1:84912345679", detail: nil),
                             .accepted(gatewayID: "S1:84912345670", detail: nil)])
        let seen = fake.seen.withLock { $0 }
        try #require(seen.count == 2)
        #expect(seen[0].query["text"]?.contains(#""Content":"Tin A","IsUnicode":"0","Phones":["0912345678","0912345670"]"#) == true)
        #expect(seen[1].query["text"]?.contains(#""Content":"Tin B","IsUnicode":"0","Phones":["0912345679"]"#) == true)
        // The callback for one number of the bulk request finds its message.
        #expect((try? a0.parseReceipts(body: [], fields: ["SMSID": "S1", "SendStatus": "5", "phonenumber": "0912345670"]).get())?.first?.key
            == .gateway("S1:84912345670"))
    }

    // MARK: SpeedSMS

    @Test func speedSMS() throws {
        defer { engine.shutdown() }
        let spec = try carrierFile("speedsms.json5")
        #expect(spec.validate(secretNames: ["token"]).isEmpty)
        let a = adapter(spec, ["token": "tok123"])
        #expect(a.maxBatch == 100)
        let batch = [sms(1, "+84912345678", "Hi"), sms(2, "+84987654321", "Hi")]
        let r = a.request(for: batch)
        #expect(r.method == "POST" && r.url == "https://api.speedsms.vn/index.php/sms/send")
        #expect(r.headers == [HTTPHeader("Authorization", "Basic dG9rMTIzOng="), HTTPHeader("Content-Type", "application/json")])
        #expect(String(decoding: r.body, as: UTF8.self) == #"{"content":"Hi","sender":"LOA","sms_type":3,"to":["84912345678","84987654321"]}"#)
        let ok = json(#"{"status":"success","code":"00","data":{"tranId":123456,"totalSMS":1,"totalPrice":250,"invalidPhone":["0987654321"]}}"#)
        #expect(a.classify(status: 200, retryAfter: nil, body: ok, batch: batch)
            == [.accepted(gatewayID: "123456:84912345678", detail: nil), .permanent("gateway rejected the number")])
        let err = json(#"{"status":"error","code":"007","message":"invalid phone","invalidPhone":["84987654321"]}"#)
        #expect(a.classify(status: 200, retryAfter: nil, body: err, batch: batch)
            == [.temporary("HTTP 200: unrecognized answer: invalid phone"), .permanent("gateway rejected the number")])
        #expect(a.parseReceipts(body: json(#"{"type":"report","tranId":123456,"phone":"84912345678","status":0}"#), fields: [:])
            == .success([InboundReceipt(key: .gateway("123456:84912345678"), status: .delivered, gatewayID: "123456:84912345678", detail: "0")]))
        #expect((try? a.parseReceipts(body: json(#"{"type":"report","tranId":123456,"phone":"0912345678","status":3}"#), fields: [:]).get())?.first
            == InboundReceipt(key: .gateway("123456:84912345678"), status: .undelivered, gatewayID: "123456:84912345678", detail: "3"))
    }

    // MARK: Receipts in other shapes

    @Test func jsonReceiptListsAndFormReceipts() throws {
        defer { engine.shutdown() }
        let a = adapter(try genericSpec("""
        { url: "http://gw/", receipts: { format: "json", items_pointer: "/receipts", key: "loa", id: "/ref", status: "/s",
          statuses: { D: "delivered", U: "undelivered" }, detail: "/err" } }
        """))
        #expect(a.parseReceipts(body: json(#"{"receipts":[{"ref":"1","s":"D"},{"ref":2,"s":"U","err":"011"}]}"#), fields: [:])
            == .success([InboundReceipt(key: .loa(1), status: .delivered, detail: "D"), InboundReceipt(key: .loa(2), status: .undelivered, detail: "U err=011")]))
        #expect(a.parseReceipts(body: json(#"{"receipts":[{"ref":"1","s":"D"},{"ref":"2","s":"Q"}]}"#), fields: [:])
            == .failure(ReceiptParseError(field: "/receipts/1/s", reason: "unknown status 'Q'")))
        #expect(a.parseReceipts(body: json(#"{"receipts":{}}"#), fields: [:]) == .failure(ReceiptParseError(field: "/receipts", reason: "missing or not a list")))
        #expect(a.parseReceipts(body: json(#"{"receipts":[]}"#), fields: [:]) == .success([]))

        let form = adapter(try genericSpec("""
        { url: "http://gw/", receipts: { format: "form", key: "loa", id: "ref", gateway_id: "msgid", status: "st",
          statuses: { "1": "delivered", "2": "undelivered", "*": "smsc-rejected" }, ack: "ACK" } }
        """))
        #expect(form.receiptAck == "ACK")
        #expect(form.parseReceipts(body: json("ignored"), fields: ["ref": "77", "msgid": "x-1", "st": "1"])
            == .success([InboundReceipt(key: .loa(77), status: .delivered, gatewayID: "x-1", detail: "1")]))
        #expect((try? form.parseReceipts(body: [], fields: ["ref": "77", "st": "whatever"]).get())?.first?.status == .smscRejected)
        #expect(form.parseReceipts(body: [], fields: ["ref": "77"]) == .failure(ReceiptParseError(field: "st", reason: "missing")))
        // A JSON receipt that echoes nothing: Loa's id from the receipt URL's query.
        let byURL = adapter(try genericSpec(#"{ url: "http://gw/", receipts: { format: "json", key: "loa", id: "m", gateway_id: "/msgId", status: "/state", statuses: { ok: "delivered" } } }"#))
        #expect(byURL.spec.validate().isEmpty)
        #expect(byURL.parseReceipts(body: json(#"{"msgId":"x9","state":"ok"}"#), fields: ["k": "rs", "m": "42"])
            == .success([InboundReceipt(key: .loa(42), status: .delivered, gatewayID: "x9", detail: "ok")]))
        #expect(adapter(try genericSpec(#"{ url: "http://gw/" }"#)).parseReceipts(body: [], fields: [:])
            == .failure(ReceiptParseError(field: "receipts", reason: "this carrier has no receipts configured")))
    }

    // MARK: URL and form templates

    @Test func urlAndFormValuesArePercentEncoded() throws {
        defer { engine.shutdown() }
        let get = adapter(try genericSpec(#"{ url: "https://gw.example/send?to={{to}}&msg={{text}}&key={{secret.k}}&u={{unicode}}&n={{to.national}}" }"#), ["k": "a/b c"])
        let r = get.request(for: [sms(7, "+84912345678", "Chào bạn & =", .ucs2)])
        #expect(r.method == "GET" && r.body.isEmpty && r.headers.isEmpty)
        #expect(r.url == "https://gw.example/send?to=%2B84912345678&msg=Ch%C3%A0o%20b%E1%BA%A1n%20%26%20%3D&key=a%2Fb%20c&u=1&n=0912345678")

        let post = adapter(try genericSpec("""
        { url: "http://gw/x", headers: { "X-Api-Key": "{{secret.k}}", "X-Ref": "loa-{{id}}" },
          body: { format: "form", fields: { to: "{{to.national}}", text: "{{text}}", seg: "{{segments}}", coding: "{{coding}}", id: "{{id}}", dlr: "{{receipt_url}}" } } }
        """), ["k": "K\r\nX: injected"])
        var m = sms(42, "+84912345678", "Đ & é", .ucs2)
        m.segments = 2
        let p = post.request(for: [m])
        #expect(p.method == "POST")
        #expect(p.headers == [HTTPHeader("X-Api-Key", "KX: injected"), HTTPHeader("X-Ref", "loa-42"),
                              HTTPHeader("Content-Type", "application/x-www-form-urlencoded")])
        #expect(String(decoding: p.body, as: UTF8.self)
            == "coding=8&dlr=http%3A%2F%2F127.0.0.1%3A8780%2Fdlr%2Fgw%3Fk%3Drs%26m%3D42&id=42&seg=2&text=%C4%90%20%26%20%C3%A9&to=0912345678")
    }

    @Test func groupsKeepOrderAndRespectMax() {
        let ms = (1...7).map { sms(Int64($0), "+8491234567\($0)", $0 % 2 == 0 ? "even" : "odd") }
        #expect(GenericHTTPAdapter.groups(ms, max: 3, sameText: false).map { $0.map(\.id) } == [[1, 2, 3], [4, 5, 6], [7]])
        #expect(GenericHTTPAdapter.groups(ms, max: 3, sameText: true).map { $0.map(\.id) } == [[1, 3, 5], [7], [2, 4, 6]])
        var ucs = ms[0]
        ucs.encoding = .ucs2
        #expect(GenericHTTPAdapter.groups([ms[0], ucs], max: 10, sameText: true).count == 2)
        #expect(GenericHTTPAdapter.groups([], max: 10, sameText: true).isEmpty)
    }

    // MARK: validate()

    @Test func validateNamesEveryProblem() throws {
        let spec = try genericSpec("""
        {
          method: "PATCH",
          url: "ftp://x/{{foo}}",
          headers: { "X-Key": "{{secret.nope}}" },
          body: { format: "json", template: { list: [1], t: "{{txt}}" } },
          batch: { max: 0, list_pointer: "/list", item: { to: "{{to.digits}}" } },
          response: {
            rules: [ { status: "2xy", class: "accepted" }, { pointer: "CodeResult", class: "temporary" }, { regex: "(", class: "great" } ],
            default_class: "meh",
            results: { pointer: "/r", match: "name" },
          },
          receipts: { format: "xml", key: "both", id: [], status: "/s", statuses: { "1": "delivred" } },
        }
        """)
        let problems = spec.validate(secretNames: ["token"])
        #expect(Set(problems.map(\.field)) == ["method", "url", "headers.X-Key", "body.template.t", "batch.max", "batch.list_pointer",
                                               "response.rules.0.status", "response.rules.1.pointer", "response.rules.2.regex",
                                               "response.rules.2.class", "response.default_class", "response.results.match",
                                               "receipts.format", "receipts.key", "receipts.id", "receipts.statuses.1"])
        let byField = Dictionary(problems.map { ($0.field, $0.reason) }, uniquingKeysWith: { $0 + " | " + $1 })
        #expect(byField["url"]?.contains("must start with http:// or https://") == true)
        #expect(byField["url"]?.contains("unknown placeholder {{foo}}") == true)
        #expect(byField["headers.X-Key"]?.hasPrefix("unknown secret 'nope'") == true)
        #expect(byField["response.rules.2.class"] == "unknown class 'great' (accepted, temporary, throttled, permanent, unauthorized)")
        #expect(byField["receipts.statuses.1"] == "unknown status 'delivred' (buffered, smsc-accepted, delivered, undelivered, smsc-rejected)")
        // Without the secret names, only the syntax of {{secret.NAME}} is checked.
        #expect(!spec.validate().contains { $0.field == "headers.X-Key" })
        // A batch needs a JSON body; a GET has none.
        let more = try genericSpec(#"{ url: "http://gw/", method: "GET", body: { format: "form", fields: { a: "b" } }, batch: { max: 5, list_pointer: "/x", item: 3 } }"#)
        #expect(Set(more.validate().map(\.field)) == ["body", "batch", "batch.item"])
    }

    @Test func shippedCarrierFilesAreValid() throws {
        #expect(try carrierFile("gateway-sim-generic.json5").validate(secretNames: ["token"]).map { "\($0.field): \($0.reason)" } == [])
        #expect(try carrierFile("esms-bulk.json5").validate(secretNames: ["api_key", "secret_key"]).map { "\($0.field): \($0.reason)" } == [])
        #expect(try carrierFile("speedsms.json5").validate(secretNames: ["token"]).map { "\($0.field): \($0.reason)" } == [])
    }

    // MARK: JSON

    @Test func jsonReaderAndPointers() throws {
        let v = try #require(JSONValue.parse(json(#" {"a":{"b~c/d":[1,"x\u00e9\ud83d\ude00\n",true,null,-1.5e3]},"n":123456789012345678901} "#)))
        #expect(JSONPointer("/a/b~0c~1d/0")?.resolve(v)?.scalarText == "1")
        #expect(JSONPointer("/a/b~0c~1d/1")?.resolve(v)?.scalarText == "xé😀\n")
        #expect(JSONPointer("/a/b~0c~1d/2")?.resolve(v)?.scalarText == "true")
        #expect(JSONPointer("/a/b~0c~1d/4")?.resolve(v)?.scalarText == "-1.5e3")
        #expect(JSONPointer("/n")?.resolve(v)?.scalarText == "123456789012345678901")
        #expect(JSONPointer("/a/b~0c~1d/9")?.resolve(v) == nil)
        #expect(JSONPointer("/a/b~0c~1d/01")?.resolve(v) == nil)
        #expect(JSONPointer("")?.resolve(v) == v)
        #expect(JSONPointer("a") == nil && JSONPointer("/a~2") == nil)
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "01x", "\"\u{01}\"", "[1] 2", "tru", "-", "1.", "1e"] {
            #expect(JSONValue.parse(json(bad)) == nil, "\(bad)")
        }
        #expect(JSONValue.parse(Array(repeating: UInt8(ascii: "["), count: 100) + Array(repeating: UInt8(ascii: "]"), count: 100)) == nil)
        #expect(JSONValue.parse(json("[[[]]]")) == .array([.array([.array([])])]))
    }

    // MARK: Rendering speed (not a test: run with LOA_BENCH=1)

    @Test(.enabled(if: ProcessInfo.processInfo.environment["LOA_BENCH"] != nil))
    func renderingThroughput() throws {
        defer { engine.shutdown() }
        let a = adapter(try carrierFile("gateway-sim-generic.json5"), ["token": "T0KEN-abc"])
        let batch = (0..<100).map { sms(Int64(1_000_000 + $0), "+8491234\(String(format: "%04d", $0))", "Góp ý dự thảo \"Luật\" đăng nhập VNeID\n#\($0)", .ucs2) }
        var bytes = 0
        let start = ContinuousClock.now
        let rounds = 5000
        for _ in 0..<rounds { bytes &+= a.request(for: batch).body.count }
        let seconds = (ContinuousClock.now - start) / .seconds(1)
        print("generic render: \(Int(Double(rounds * batch.count) / seconds)) recipients/s (\(rounds) requests of \(batch.count), \(bytes / rounds) bytes each)")
    }
}

@Suite struct JSONDuplicateKeyTests {
    @Test func theFirstKeyGivenTwiceIsNamedWithItsPath() throws {
        func dup(_ text: String) throws -> String? { JSONValue.firstDuplicateKey(try #require(JSONValue.parse(Array(text.utf8)))) }
        #expect(try dup(#"{"a": 1, "b": 2}"#) == nil)
        #expect(try dup(#"{"a": 1, "a": 2}"#) == "a")
        #expect(try dup(#"{"t": [{"w": 1}, {"w": 1, "w": 2}]}"#) == "t.1.w")
        #expect(try dup(#"[{"x": {"y": 1, "y": 1}}]"#) == "0.x.y")
        #expect(try dup(#"{"a": {"b": 1}, "c": {"b": 1}}"#) == nil, "the same key in two objects is no duplicate")
    }
}
