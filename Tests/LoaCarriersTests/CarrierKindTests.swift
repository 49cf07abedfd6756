import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import Testing

/// The registry of carrier kinds: every kind is there, each one's options are read and checked by it, and each
/// one's receipt URL, as its gateway fills it, comes back through its own receipt format to the message sent.
@Suite(.serialized) struct CarrierKindTests {
    let engine: CurlEngine
    init() throws { engine = try CurlEngine() }

    /// Where Loa's receipt endpoint is, as the dispatcher builds every carrier's base.
    static let base = ReceiptURL.base(publicURL: "http://127.0.0.1:8780", carrier: "c", secret: "receipt-secret-0123456789")

    /// A kind's options decoded from a carrier entry the way the config decodes them.
    struct Decoded: Decodable {
        static let kindKey = CodingUserInfoKey(rawValue: "kind")!
        var values: (any CarrierOptionValues)?
        init(from decoder: any Decoder) throws {
            guard let kind = CarrierKinds.named(decoder.userInfo[Self.kindKey] as? String ?? "") else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "no such kind"))
            }
            values = try kind.decodeOptions(from: decoder, own: true)
        }
    }

    /// `entry`'s options checked by `kind`: the options and the problems as `key: reason`.
    func checked(_ kind: String, _ entry: String, method: String? = nil) throws -> (any CarrierOptions, [String]) {
        let d = JSONDecoder()
        d.allowsJSON5 = true
        d.userInfo[Decoded.kindKey] = kind
        let values = try d.decode(Decoded.self, from: Data(entry.utf8)).values
        var problems: [String] = []
        let options = try #require(CarrierKinds.named(kind)).check(values, entry: CarrierEntryFacts(method: method, secretNames: [])) {
            problems.append("\($0): \($1)")
        }
        return (options, problems)
    }

    /// The query of `url` decoded as the server decodes it.
    func query(_ url: String) -> [String: String] {
        let q = url.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        return Dictionary(FormURLEncoded.parse(Array(q.utf8)), uniquingKeysWith: { _, last in last })
    }

    func message(_ id: Int64, receiptURL: String) -> OutgoingSMS {
        OutgoingSMS(id: id, from: "LOA", to: "+84912345678", text: "Xin chao", encoding: .gsm7, segments: 1, receiptURL: receiptURL)
    }

    @Test func everyKindIsRegisteredOnceByItsName() {
        #expect(CarrierKinds.names == ["kannel", "jasmin", "generic"])
        #expect(Set(CarrierKinds.names).count == CarrierKinds.all.count)
        for name in CarrierKinds.names { #expect(CarrierKinds.named(name)?.name == name) }
        #expect(CarrierKinds.named("smpp") == nil)
        #expect(CarrierKinds.named("Kannel") == nil, "kinds are named exactly as the config writes them")
        #expect(CarrierKinds.optionKeys == ["smsc", "priority", "deferred_minutes", "validity", "max_parts"])
        #expect(CarrierKinds.named("kannel")?.pacesFromReceiptsByDefault == true)
        #expect(CarrierKinds.named("generic")?.pacesFromReceiptsByDefault == false)
    }

    @Test func anOptionOfAnotherKindIsRefusedNamingItsKinds() {
        #expect(CarrierKinds.refusal(of: "max_parts", onKind: "kannel") == "only for kind jasmin (this carrier is kannel)")
        #expect(CarrierKinds.refusal(of: "smsc", onKind: "jasmin") == "only for kind kannel (this carrier is jasmin)")
        #expect(CarrierKinds.refusal(of: "validity", onKind: "generic")
                == "only for kinds kannel and jasmin (a generic gateway uses {{validity.minutes}} in its template)")
        #expect(CarrierKinds.refusal(of: "validity", onKind: "kannel") == nil)
        #expect(CarrierKinds.refusal(of: "validity", onKind: "jasmin") == nil)
        #expect(CarrierKinds.refusal(of: "headers", onKind: "kannel") == nil, "not an option key: the unknown-key check reports it")
    }

    @Test func eachKindReadsAndChecksItsOwnOptions() throws {
        let (kannel, kp) = try checked("kannel", #"{ smsc: "two words", priority: 4, deferred_minutes: 30, validity: false }"#, method: "PUT")
        #expect(kannel as? KannelOptions == KannelOptions(smsc: "two words", priority: 4, deferredMinutes: 30, validity: false))
        #expect(kp == ["smsc: must be a Kannel smsc-id: 1-64 characters, no spaces or control characters",
                       "priority: must be 0-3 (Kannel's priority; smsbox refuses other values)", "method: must be GET or POST"])
        let (jasmin, jp) = try checked("jasmin", #"{ max_parts: 0 }"#, method: "POST")
        #expect(jasmin as? JasminOptions == JasminOptions(validity: true, maxParts: 0))
        #expect(jp == ["max_parts: must be 1-255 (Jasmin's long_content_max_parts)"])
        let (generic, gp) = try checked("generic", #"""
            { url: "http://127.0.0.1:1/send", method: "POST", body: { format: "json", template: { m: [] } },
              batch: { max: 10, list_pointer: "/m", item: "{{to}}", min: 6, remainder_carrier: "other" },
              response: { rules: [ { status: "200", class: "accepted" } ] } }
            """#)
        #expect(gp.contains("batch.min: must be 1 to half of batch.max (5), so every count from it up splits into batches of at least it"), "\(gp)")
        #expect(generic.batchMin == 6 && generic.remainderCarrier == "other")
        #expect(kannel.batchMin == 1 && kannel.remainderCarrier == nil)
    }

    @Test func onlyJasminLimitsTheParts() throws {
        let jasmin = try #require(CarrierKinds.named("jasmin"))
        let limit = try #require(jasmin.partLimit(JasminOptions(maxParts: 2)))
        #expect(limit.maxParts == 2)
        #expect(limit.parts(String(repeating: "a", count: 306), .gsm7) == 2)
        #expect(limit.parts(String(repeating: "a", count: 152) + "€" + String(repeating: "b", count: 152), .gsm7)
                == JasminAdapter.partsSent(String(repeating: "a", count: 152) + "€" + String(repeating: "b", count: 152), encoding: .gsm7))
        #expect(CarrierKinds.named("kannel")?.partLimit(KannelOptions()) == nil)
    }

    @Test func kannelsReceiptURLFilledByKannelComesBackToTheMessage() throws {
        defer { engine.shutdown() }
        let kind = try #require(CarrierKinds.named("kannel"))
        let url = kind.receiptURL(base: Self.base)
        #expect(url.url(for: 42) == Self.base + "&st=%d&ts=%T&fc=%F&ans=%A&id=42")
        let parts = kind.make(CarrierSettings(name: "c", url: "http://127.0.0.1:13013/cgi-bin/sendsms", username: "loa", password: "pw",
                                              receiptSecret: "receipt-secret-0123456789", options: KannelOptions()), engine: engine)
        #expect(parts.adapter is KannelAdapter && parts.receipts.reading == .query)
        // The request carries the URL as Kannel's dlr-url.
        let request = try #require(parts.adapter as? any OneExchangeAdapter).request(for: message(42, receiptURL: url.url(for: 42)))
        #expect(query(request.url)["dlr-url"] == url.url(for: 42))
        // Kannel fills the placeholders (escaped, as urltrans.c does) and calls the URL.
        let filled = url.url(for: 42).replacingOccurrences(of: "%d", with: "1").replacingOccurrences(of: "%T", with: "1700000000")
            .replacingOccurrences(of: "%F", with: "0a1b2c3d").replacingOccurrences(of: "%A", with: URLQuery.escape("id:0a1b2c3d stat:DELIVRD err:000"))
        let receipts = try parts.receipts.parse([], query(filled)).get()
        #expect(receipts == [InboundReceipt(key: .loa(42), status: .delivered, gatewayID: "0a1b2c3d", detail: "DELIVRD err 000")])
        #expect(query(filled)["k"] == "receipt-secret-0123456789")
    }

    @Test func jasminsReceiptURLWithItsPostedFieldsComesBackToTheMessage() throws {
        defer { engine.shutdown() }
        let kind = try #require(CarrierKinds.named("jasmin"))
        let url = kind.receiptURL(base: Self.base)
        #expect(url.url(for: 42) == Self.base + "&m=42")
        let parts = kind.make(CarrierSettings(name: "c", url: "http://127.0.0.1:1401/send", username: "loa", password: "pw",
                                              receiptSecret: "receipt-secret-0123456789", method: "POST", options: JasminOptions()), engine: engine)
        #expect(parts.adapter is JasminAdapter && parts.receipts.reading == .body(ack: "ACK/Jasmin"))
        let request = try #require(parts.adapter as? any OneExchangeAdapter).request(for: message(42, receiptURL: url.url(for: 42)))
        #expect(request.method == "POST")
        let sent = Dictionary(FormURLEncoded.parse(request.body), uniquingKeysWith: { _, last in last })
        #expect(sent["dlr-url"] == url.url(for: 42) && sent["dlr-method"] == "POST")
        // Jasmin POSTs its fields to the URL; the endpoint merges them with the URL's query.
        var fields = query(url.url(for: 42))
        for (k, v) in FormURLEncoded.parse(Array("id=7f3a&level=2&message_status=DELIVRD&err=000".utf8)) { fields[k] = v }
        let receipts = try parts.receipts.parse([], fields).get()
        #expect(receipts == [InboundReceipt(key: .loa(42), status: .delivered, gatewayID: "7f3a", detail: "DELIVRD err 000")])
    }

    @Test func aGenericGatewaysReceiptURLIsOneForAllAndItsReceiptNamesTheMessage() throws {
        defer { engine.shutdown() }
        let kind = try #require(CarrierKinds.named("generic"))
        let url = kind.receiptURL(base: Self.base)
        #expect(url.url(for: 42) == Self.base && url.url(for: 43) == Self.base)
        let spec = try genericSpec(#"""
            { url: "http://127.0.0.1:1/send?to={{to}}&ref={{id}}&cb={{receipt_url}}",
              response: { rules: [ { status: "200", class: "accepted" } ] },
              receipts: { format: "form", key: "loa", id: "ref", status: "st", statuses: { DELIVRD: "delivered" }, ack: "thanks" } }
            """#)
        let parts = kind.make(CarrierSettings(name: "c", url: spec.url, receiptSecret: "receipt-secret-0123456789", options: spec), engine: engine)
        #expect(parts.adapter is GenericHTTPAdapter && parts.receipts.reading == .body(ack: "thanks"))
        let request = try #require(parts.adapter as? any OneExchangeAdapter).request(for: message(42, receiptURL: url.url(for: 42)))
        #expect(query(request.url)["cb"] == url.url(for: 42) && query(request.url)["ref"] == "42")
        var fields = query(url.url(for: 42))
        for (k, v) in FormURLEncoded.parse(Array("ref=42&st=DELIVRD".utf8)) { fields[k] = v }
        let receipts = try parts.receipts.parse([], fields).get()
        #expect(receipts.map(\.key) == [.loa(42)] && receipts.map(\.status) == [.delivered])
        #expect(parts.receipts.aggregate?([], fields) == nil, "no aggregate section: every callback is per message")
    }
}
