import Foundation
import LoaCarriers
import LoaCore
import Testing

/// Conditionals, the encoding, validity and deadline placeholders, per-recipient results matched by number and
/// per-part ids (issue 17: what the generic adapter could not express).
@Suite(.serialized) struct GenericTemplateTests {
    let engine: CurlEngine
    init() throws { engine = try CurlEngine() }

    func adapter(_ spec: GenericGatewaySpec) -> GenericHTTPAdapter {
        GenericHTTPAdapter(name: "gw", spec: spec, secrets: ["key": "K", "secret": "S"], timeout: 5, engine: engine)
    }

    func message(_ id: Int64, _ to: String, _ encoding: SMSEncoding = .gsm7, segments: Int = 1, until: UnixMillis? = nil) -> OutgoingSMS {
        OutgoingSMS(id: id, from: "LOA", to: to, text: "hi", encoding: encoding, segments: segments,
                    receiptURL: "http://127.0.0.1:8780/dlr/gw?k=rs", validUntil: until)
    }

    func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Vonage's SMS API (developer.vonage.com/en/api/sms): form fields, `type` text or unicode by the encoding.
    let vonage = """
    {
      url: "https://rest.nexmo.com/sms/json",
      body: { format: "form", fields: { api_key: "{{secret.key}}", api_secret: "{{secret.secret}}", from: "{{from}}", to: "{{to.digits}}",
              text: "{{text}}", type: "{{encoding|gsm7=text|ucs2=unicode}}", ttl: "{{validity.seconds}}000", callback: "{{receipt_url}}",
              "client-ref": "{{id}}", kind: "{{segments|1=single|*=multi}}" } },
      response: {
        rules: [ { status: "200", pointer: "/messages/0/status", equals: "1", class: "throttled" },
                 { status: "200", pointer: "/messages", class: "accepted" } ],
        detail: "/messages/0/error-text",
        results: { pointer: "/messages", match: "to", to_pointer: "/to", id_pointer: "/message-id", detail_pointer: "/error-text",
                   rules: [ { pointer: "/status", equals: "0", class: "accepted" }, { pointer: "/status", equals: "1", class: "throttled" },
                            { pointer: "/status", class: "permanent" } ] },
      },
    }
    """

    @Test func conditionalsFollowTheEncodingAndTheParts() throws {
        defer { engine.shutdown() }
        let a = adapter(try genericSpec(vonage))
        #expect(a.spec.validate(secretNames: ["key", "secret"]).isEmpty)
        let until = nowMillis() + 3_600_500
        func fields(_ m: OutgoingSMS) -> [String: String] {
            Dictionary(String(decoding: a.request(for: m).body, as: UTF8.self).split(separator: "&").map {
                let kv = $0.split(separator: "=", maxSplits: 1).map(String.init)
                return (kv[0], kv.count > 1 ? kv[1].removingPercentEncoding! : "")
            }, uniquingKeysWith: { $1 })
        }
        let gsm = fields(message(1, "+84912345678", until: until))
        #expect(gsm["type"] == "text" && gsm["kind"] == "single" && gsm["ttl"] == "3600000" && gsm["client-ref"] == "1")
        let ucs = fields(message(2, "+84912345678", .ucs2, segments: 3, until: until))
        #expect(ucs["type"] == "unicode" && ucs["kind"] == "multi")
        // Less than a second left still gives the gateway a validity of 1 (it would otherwise mean "no limit").
        #expect(fields(message(3, "+84912345678", until: nowMillis() + 200))["ttl"] == "1000")
        #expect(fields(message(4, "+84912345678", until: nowMillis() - 5000))["ttl"] == "1000")
    }

    /// A provider that bounds its validity period (Twilio 1–36,000 s, Vonage 20 s–7 days in ms) gets the time left
    /// clamped into `validity_range`; the bounds are checked at load.
    @Test func validityIsClampedIntoTheProvidersRange() throws {
        defer { engine.shutdown() }
        let spec = try genericSpec("""
        { url: "http://gw/", validity_range: { min_seconds: 20, max_seconds: 36000 }, body: { format: "json", template: {
            s: "{{validity.seconds|number}}", ms: "{{validity.millis|number}}" } } }
        """)
        #expect(spec.validate().isEmpty)
        let a = adapter(spec)
        let far = try #require(JSONValue.parse(a.request(for: message(1, "+84912345678", until: nowMillis() + 30 * 86_400_000)).body))
        #expect(far["s"] == .number("36000") && far["ms"] == .number("36000000"), "\(far)")
        let near = try #require(JSONValue.parse(a.request(for: message(2, "+84912345678", until: nowMillis() + 5_000)).body))
        #expect(near["s"] == .number("20") && near["ms"] == .number("20000"), "\(near)")
        let within = try #require(JSONValue.parse(a.request(for: message(3, "+84912345678", until: nowMillis() + 600_500)).body))
        let s = try #require(within["s"]?.scalarText.flatMap { Int($0) })
        #expect((599...600).contains(s), "\(within)")
        // Without a range the time left is passed as it is.
        let open = adapter(try genericSpec("""
        { url: "http://gw/", body: { format: "json", template: { s: "{{validity.seconds|number}}" } } }
        """))
        let raw = try #require(JSONValue.parse(open.request(for: message(4, "+84912345678", until: nowMillis() + 30 * 86_400_000)).body))
        #expect(raw["s"].flatMap { $0.scalarText }.flatMap { Int($0) }.map { $0 > 2_500_000 } == true, "\(raw)")
        let bad = try genericSpec("""
        { url: "http://gw/", validity_range: { min_seconds: 50, max_seconds: 10 } }
        """)
        #expect(bad.validate().map(\.field) == ["validity_range"])
        let empty = try genericSpec("""
        { url: "http://gw/", validity_range: { max_seconds: 0 } }
        """)
        #expect(empty.validate().map(\.field) == ["validity_range.max_seconds"])
    }

    @Test func validityDeadlineAndNumbersInJSON() throws {
        defer { engine.shutdown() }
        let spec = try genericSpec("""
        { url: "http://gw/", body: { format: "json", template: {
            seconds: "{{validity.seconds|number}}", minutes: "{{validity.minutes|number}}", minutesText: "{{validity.minutes}}",
            iso: "{{deadline.iso}}", unix: "{{deadline.unix|number}}", parts: "{{segments|number}}", enc: "{{encoding}}",
            dcs: "{{unicode|1=8|0=}}", note: "valid {{validity.minutes}} min, {{encoding|gsm7=GSM|ucs2=\\"UCS\\"}}" } } }
        """)
        #expect(spec.validate().isEmpty)
        let a = adapter(spec)
        let deadline: Int64 = 4_099_859_700_000  // 2099-12-02T01:55:00Z (a fixed date that must stay in the future)
        let m = message(7, "+84912345678", .ucs2, segments: 2, until: deadline)
        let left = deadline - nowMillis()
        let doc = try #require(JSONValue.parse(a.request(for: m).body))
        #expect(doc["iso"] == .string("2099-12-02T01:55:00Z") && doc["unix"] == .number("4099859700"))
        #expect(doc["parts"] == .number("2") && doc["enc"] == .string("ucs2") && doc["dcs"] == .string("8"))
        let seconds = try #require(doc["seconds"]?.scalarText.flatMap { Int64($0) })
        #expect(doc["seconds"] == .number(String(seconds)) && abs(seconds - left / 1000) <= 1)
        #expect(doc["minutes"] == .number(String(left / 60_000)) && doc["minutesText"] == .string(String(left / 60_000)))
        #expect(doc["note"] == .string("valid \(left / 60_000) min, \"UCS\""))
        // No deadline: empty text, null numbers.
        let none = try #require(JSONValue.parse(a.request(for: message(8, "+84912345678")).body))
        #expect(none["seconds"] == .null && none["unix"] == .null && none["iso"] == .string("") && none["minutesText"] == .string(""))
        #expect(none["dcs"] == .string(""))
    }

    @Test func badConditionalsAreRefusedNamingThePath() throws {
        let spec = try genericSpec("""
        { url: "http://gw/{{segments|number}}", headers: { "X-Type": "{{encoding|gsm7=text}}" },
          body: { format: "json", template: {
            a: "{{segments|1=single}}", b: "{{encodin|gsm7=text|*=x}}", c: "{{encoding|gsm=text|*=x}}", d: "{{to|number}}",
            e: "x {{segments|number}}", f: "{{coding|0=a|0=b|8=c}}", g: "{{unicode|1}}", h: "{{encoding|gsm7=text|ucs2=unicode}}" } } }
        """)
        let byField = Dictionary(spec.validate().map { ($0.field, $0.reason) }, uniquingKeysWith: { $0 + " | " + $1 })
        #expect(Set(byField.keys) == ["url", "headers.X-Type", "body.template.a", "body.template.b", "body.template.c", "body.template.d",
                                      "body.template.e", "body.template.f", "body.template.g"])
        #expect(byField["headers.X-Type"] == "{{encoding|gsm7=text}}: no output for encoding ucs2 (add them or *=DEFAULT)")
        #expect(byField["body.template.a"] == "{{segments|1=single}}: segments can take any value: add *=DEFAULT")
        #expect(byField["body.template.b"]?.hasPrefix("unknown field 'encodin' in {{encodin|gsm7=text|*=x}}") == true)
        #expect(byField["body.template.c"] == "{{encoding|gsm=text|*=x}}: encoding is never 'gsm' (it is one of gsm7, ucs2)")
        #expect(byField["body.template.d"]?.contains("|number takes a numeric field") == true)
        #expect(byField["body.template.e"]?.contains("makes a JSON number only where") == true)
        #expect(byField["url"]?.contains("makes a JSON number only where") == true)
        #expect(byField["body.template.f"] == "{{coding|0=a|0=b|8=c}}: value '0' given twice")
        #expect(byField["body.template.g"]?.contains("'1' is not VALUE=OUT") == true)
    }

    /// Vonage's answer for a 3-part message: one `messages[]` entry per part, each with its `message-id`
    /// (developer.vonage.com/en/api/sms, the send response example's fields and values, repeated per part as
    /// `message-count` says: "Number of message parts sent"); status codes from
    /// developer.vonage.com/messaging/sms/guides/troubleshooting-sms (0 success, 1 throttled, 2 missing
    /// parameters, 4 invalid credentials).
    @Test func everyPartsIDAndResultsMatchedByNumber() throws {
        defer { engine.shutdown() }
        let a = adapter(try genericSpec(vonage))
        let m = message(11, "+447700900000", segments: 3)
        let answer = json("""
        {"message-count":"3","messages":[
         {"to":"447700900000","message-id":"0A0000000123ABCD1","status":"0","remaining-balance":"3.14159265","message-price":"0.03330000","network":"12345","client-ref":"11"},
         {"to":"447700900000","message-id":"0A0000000123ABCD2","status":"0","remaining-balance":"3.10829265","message-price":"0.03330000","network":"12345","client-ref":"11"},
         {"to":"447700900000","message-id":"0A0000000123ABCD3","status":"0","remaining-balance":"3.07499265","message-price":"0.03330000","network":"12345","client-ref":"11"}]}
        """)
        #expect(a.classify(status: 200, retryAfter: nil, body: answer, batch: [m])
            == [.accepted(gatewayID: "0A0000000123ABCD1", detail: nil, partIDs: ["0A0000000123ABCD1", "0A0000000123ABCD2", "0A0000000123ABCD3"])])
        // One part: its id, no part list.
        let one = json(#"{"message-count":"1","messages":[{"to":"447700900000","message-id":"0A0000000123ABCD1","status":"0"}]}"#)
        #expect(a.classify(status: 200, retryAfter: nil, body: one, batch: [m]) == [.accepted(gatewayID: "0A0000000123ABCD1", detail: nil)])
        // Vonage's error answer (status 2, "Missing to param") and its throttling (status 1).
        let refused = json(#"{"message-count":"1","messages":[{"status":"2","error-text":"Missing to param"}]}"#)
        #expect(a.classify(status: 200, retryAfter: nil, body: refused, batch: [m]) == [.temporary("HTTP 200: gateway answer has no result for this message")])
        let throttled = json(#"{"message-count":"1","messages":[{"to":"447700900000","status":"1","error-text":"Throughput Rate Exceeded - please wait [ 10 ] and retry"}]}"#)
        #expect(a.classify(status: 200, retryAfter: nil, body: throttled, batch: [m])
            == [.throttled(retryAfter: nil, "HTTP 200: Throughput Rate Exceeded - please wait [ 10 ] and retry")])
        // A part refused after another was accepted: the message takes the refusal.
        let mixed = json(#"{"messages":[{"to":"447700900000","message-id":"A1","status":"0"},{"to":"447700900000","message-id":"A2","status":"4","error-text":"Invalid credentials"}]}"#)
        #expect(a.classify(status: 200, retryAfter: nil, body: mixed, batch: [m]) == [.permanent("HTTP 200: Invalid credentials")])
    }

    /// Infobip's answer (`POST /sms/2/text/advanced`): one object per destination with its own `messageId`, the
    /// number written without `+`; matched by number, in any order and written form, no `"<id>:<number>"` needed.
    @Test func perRecipientIDsByNumberInAnyWrittenForm() throws {
        defer { engine.shutdown() }
        let spec = try genericSpec("""
        { url: "https://api.infobip.com/sms/2/text/advanced", body: { format: "json", template: { messages: [] } },
          batch: { max: 100, list_pointer: "/messages", item: { destinations: [ { to: "{{to.digits}}" } ], from: "{{from}}", text: "{{text}}" } },
          response: { rules: [ { status: "2xx", pointer: "/messages", class: "accepted" } ], message_id: "/bulkId",
            results: { pointer: "/messages", match: "to", to_pointer: "/to", id_pointer: "/messageId", detail_pointer: "/status/description",
                       rules: [ { pointer: "/status/groupName", in: ["PENDING", "ACCEPTED"], class: "accepted" },
                                { pointer: "/status/groupName", equals: "REJECTED", class: "permanent" } ] } } }
        """)
        #expect(spec.validate().isEmpty)
        let a = adapter(spec)
        let batch = [message(1, "+84912345678"), message(2, "+84987654321"), message(3, "+84911111111")]
        let answer = json("""
        {"bulkId":"2034072219640523072","messages":[
         {"messageId":"2250be2d4219-3af1-78856-aabe-1362af1edfd2","status":{"description":"Message sent to next instance","groupId":1,"groupName":"PENDING","id":26,"name":"MESSAGE_ACCEPTED"},"to":"0987654321"},
         {"messageId":"2250be2d4219-3af1-78856-aabe-1362af1edfd1","status":{"description":"Message sent to next instance","groupId":1,"groupName":"PENDING","id":26,"name":"MESSAGE_ACCEPTED"},"to":"84912345678"},
         {"messageId":"x3","status":{"description":"Destination address invalid","groupId":5,"groupName":"REJECTED","id":51,"name":"REJECTED_DESTINATION"},"to":"+84 911 111 111"}]}
        """)
        #expect(a.classify(status: 200, retryAfter: nil, body: answer, batch: batch) == [
            .accepted(gatewayID: "2250be2d4219-3af1-78856-aabe-1362af1edfd1", detail: nil),
            .accepted(gatewayID: "2250be2d4219-3af1-78856-aabe-1362af1edfd2", detail: nil),
            .permanent("HTTP 200: Destination address invalid"),
        ])
        var bad = spec
        bad.response?.results?.toPointer = nil
        bad.response?.results?.refPointer = "/ref"
        #expect(Set(bad.validate().map(\.field)) == ["response.results.to_pointer", "response.results.ref_pointer"])
    }

    // MARK: poll and aggregate

    let polling = """
    { url: "https://api.example/send", body: { format: "json", template: { to: "{{to}}" } },
      receipts: { format: "json", key: "gateway", id: ["/SMSID", "/Phone"], status: "/SendStatus", statuses: { "5": "delivered" },
                  aggregate: { when: "/SendSuccess", request_id: "/SMSID", counts: ["/SendSuccess", "/SendFailed"] } },
      poll: { method: "POST", url: "https://api.example/status?key={{secret.key}}&ids={{gateway_ids}}", max_ids: 3, ids_separator: ";",
              headers: { "X-Ids": "{{gateway_ids}}" }, basic_auth: { username: "{{secret.key}}", password: "{{secret.secret}}" },
              body: { format: "json", template: { ids: "{{gateway_ids|list}}", joined: "ids {{gateway_ids}}", n: 1 } },
              answer: { items_pointer: "/items", id: "/id", status: "/st", detail: "/err",
                        statuses: { "DELIVRD": "delivered", "UNDELIV": "undelivered", "ENROUTE": "buffered" } } } }
    """

    @Test func pollRequestsAreRenderedAndBounded() throws {
        defer { engine.shutdown() }
        let spec = try genericSpec(polling)
        #expect(spec.validate(secretNames: ["key", "secret"]).map { "\($0.field): \($0.reason)" } == [])
        let a = adapter(spec)
        let r = a.pollRequest(ids: ["a b", "c\"d", "e"])
        #expect(r.method == "POST" && r.url == "https://api.example/status?key=K&ids=a%20b%3Bc%22d%3Be" && r.timeout == 5)
        #expect(r.headers == [HTTPHeader("X-Ids", "a b;c\"d;e"), HTTPHeader("Authorization", "Basic " + Data("K:S".utf8).base64EncodedString()),
                              HTTPHeader("Content-Type", "application/json")])
        #expect(String(decoding: r.body, as: UTF8.self) == #"{"ids":["a b","c\"d","e"],"joined":"ids a b;c\"d;e","n":1}"#)
        // max_ids per request, max_requests per round (default 10).
        let candidates = (1...40).map { (id: Int64($0), gatewayID: "g\($0)") }
        let batches = a.pollBatches(candidates)
        #expect(batches.count == 10 && batches.allSatisfy { $0.messages.count == 3 } && batches[0].messages.map(\.id) == [1, 2, 3])
        // By request: one poll per request id, every message of it.
        var byRequest = spec
        byRequest.poll?.by = "request"
        byRequest.poll?.maxIDs = nil
        byRequest.poll?.url = "https://api.example/status?request={{request_id}}"
        byRequest.poll?.body = nil
        byRequest.poll?.method = nil
        byRequest.poll?.maxRequests = 2
        #expect(byRequest.validate(secretNames: ["key", "secret"]).isEmpty)
        let grouped = adapter(byRequest).pollBatches([(1, "R1:849"), (2, "R2:848"), (3, "R1:847"), (4, "R3:846")])
        #expect(grouped.map { $0.messages.map(\.id) } == [[1, 3], [2]])
        #expect(grouped.map(\.request.url) == ["https://api.example/status?request=R1", "https://api.example/status?request=R2"])
        #expect(grouped[0].request.method == "GET")
    }

    @Test func pollAnswersBecomeReceiptsForTheIDsAskedOnly() throws {
        defer { engine.shutdown() }
        let a = adapter(try genericSpec(polling))
        let asked: [(id: Int64, gatewayID: String)] = [(1, "g1"), (2, "g2"), (3, "g3")]
        let body = json(#"{"items":[{"id":"g2","st":"UNDELIV","err":"absent subscriber"},{"id":"g1","st":"DELIVRD"},{"id":"g9","st":"DELIVRD"},{"id":"g3","st":"HUH"},{"st":"DELIVRD"}]}"#)
        #expect(a.pollReceipts(status: 200, body: body, for: asked) == [
            PolledReceipt(messageID: 2, gatewayID: "g2", status: .undelivered, detail: "poll: UNDELIV err=absent subscriber"),
            PolledReceipt(messageID: 1, gatewayID: "g1", status: .delivered, detail: "poll: DELIVRD"),
        ])
        #expect(a.pollReceipts(status: 500, body: body, for: asked).isEmpty)
        #expect(a.pollReceipts(status: 200, body: json("<html>"), for: asked).isEmpty)
        // Ids built from a request id and a number in any written form, as receipts.id does.
        var spec = try genericSpec(polling)
        spec.poll?.answer.id = ["/SMSID", "/Phone"]
        spec.poll?.answer.status = "/SendStatus"
        spec.poll?.answer.statuses = ["5": "delivered", "*": "buffered"]
        let b = adapter(spec)
        let esms = json(#"{"items":[{"SMSID":"R1","Phone":"0912345678","SendStatus":"5"},{"SMSID":"R1","Phone":"84912345679","SendStatus":"2"}]}"#)
        #expect(b.pollReceipts(status: 200, body: esms, for: [(7, "R1:84912345678"), (8, "R1:84912345679")]).map { "\($0.messageID) \($0.status)" }
            == ["7 delivered", "8 buffered"])
    }

    @Test func aggregateCallbacksAreRecognised() throws {
        defer { engine.shutdown() }
        let a = adapter(try genericSpec(polling))
        let cb = try #require(a.aggregateCallback(body: json(#"{"SMSID":"R7","SendSuccess":2,"SendFailed":1}"#), fields: [:]))
        #expect(cb.requestID == "R7" && cb.counts.map { "\($0.name)=\($0.value)" } == ["SendSuccess=2", "SendFailed=1"])
        #expect(a.aggregateCallback(body: json(#"{"SMSID":"R7","Phone":"0912345678","SendStatus":"5"}"#), fields: [:]) == nil)
        var form = try genericSpec(polling)
        form.receipts?.format = "query"
        form.receipts?.aggregate?.when = "SendSuccess"
        form.receipts?.aggregate?.requestID = "SMSID"
        form.receipts?.aggregate?.counts = ["SendSuccess"]
        let q = try #require(adapter(form).aggregateCallback(body: [], fields: ["SMSID": "R8", "SendSuccess": "30"]))
        #expect(q.requestID == "R8" && q.counts.map(\.value) == ["30"])
    }

    @Test func badPollAndAggregateKeysAreNamed() throws {
        let spec = try genericSpec("""
        { url: "http://gw/",
          receipts: { format: "json", key: "gateway", id: "/id", status: "/s", statuses: { "1": "delivered" },
                      aggregate: { when: "/a~2", request_id: "" } },
          poll: { url: "ftp://x/{{gateway_id}}/{{to}}", max_ids: 0, interval_seconds: 0, after_seconds: -1, max_age_seconds: 99999999,
                  max_requests: 5000, by: "batch", ids_separator: "", method: "GET",
                  body: { format: "json", template: { a: "x {{gateway_ids|list}}", b: "{{request_id}}", c: "{{secret.nope}}" } },
                  answer: { items_pointer: "items", id: [], status: "/s", statuses: {} } } }
        """)
        let byField = Dictionary(spec.validate(secretNames: ["key"]).map { ($0.field, $0.reason) }, uniquingKeysWith: { $0 + " | " + $1 })
        #expect(Set(byField.keys) == ["receipts.aggregate.when", "receipts.aggregate.request_id", "poll.url", "poll.max_ids", "poll.interval_seconds",
                                      "poll.after_seconds", "poll.max_age_seconds", "poll.max_requests", "poll.by", "poll.ids_separator", "poll.body",
                                      "poll.body.template.a", "poll.body.template.b", "poll.body.template.c", "poll.answer.items_pointer",
                                      "poll.answer.id", "poll.answer.statuses"], "\(byField)")
        #expect(byField["poll.url"]?.contains("must start with http:// or https://") == true)
        #expect(byField["poll.url"]?.contains("unknown placeholder {{to}}") == true)
        #expect(byField["poll.body.template.a"]?.contains("makes a JSON list only as the whole") == true)
        // {{gateway_id}} with several ids per request.
        var many = try genericSpec(polling)
        many.poll?.url = "https://x/{{gateway_id}}"
        #expect(many.validate(secretNames: ["key", "secret"]).map(\.field) == ["poll.url"])
        // An aggregate callback needs a poll to answer it.
        many.poll = nil
        #expect(many.validate(secretNames: ["key", "secret"]).map(\.field) == ["receipts.aggregate"])
    }
}
