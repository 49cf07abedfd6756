import LoaCore

/// Carrier kind `generic`: an HTTP gateway described in its carrier entry (``GenericGatewaySpec``,
/// ``GenericHTTPAdapter``): its request, answer rules, receipts (per message or about a whole request) and polls.
public struct GenericKind: CarrierKind {
    public init() {}

    public var name: String { "generic" }
    public var optionKeys: [String] { [] }
    public var entryKeys: [String] { GenericGatewaySpec.keyNames }
    public var nestedKeys: [(path: [String], known: [String])] {
        [(["poll"], GenericGatewaySpec.Poll.keyNames), (["poll", "answer"], GenericGatewaySpec.PollAnswer.keyNames),
         (["receipts", "aggregate"], GenericGatewaySpec.Aggregate.keyNames)]
    }
    /// A provider's receipts may come only at delivery, long after it passed the message on.
    public var pacesFromReceiptsByDefault: Bool { false }

    /// The spec is read from the entry's other keys (method, headers, body, batch, …), only on a generic entry.
    public func decodeOptions(from decoder: any Decoder, own: Bool) throws -> (any CarrierOptionValues)? {
        own ? try GenericGatewaySpec(from: decoder) : nil
    }

    public func check(_ values: (any CarrierOptionValues)?, entry: CarrierEntryFacts, problem: (String, String) -> Void) -> any CarrierOptions {
        guard let spec = values as? GenericGatewaySpec else { return GenericGatewaySpec(url: "") }
        if let b = spec.batch, let min = b.min, !(1...Swift.max(1, b.max / 2)).contains(min) {
            problem("batch.min", "must be 1 to half of batch.max (\(Swift.max(1, b.max / 2))), so every count from it up splits into batches of at least it")
        }
        // The spec checks its own method (GET, POST or PUT).
        for p in spec.validate(secretNames: entry.secretNames) { problem(p.field, p.reason) }
        return spec
    }

    public func foreignKeyHint(_ key: String) -> String? {
        key == "validity" ? "a generic gateway uses {{validity.minutes}} in its template" : nil
    }

    public func make(_ s: CarrierSettings, engine: CurlEngine) -> CarrierParts {
        let adapter = GenericHTTPAdapter(name: s.name, spec: s.options as? GenericGatewaySpec ?? GenericGatewaySpec(url: s.url), secrets: s.secrets,
                                         timeout: s.timeout, engine: engine, idempotent: s.idempotent, proxy: s.proxy, receiptSecret: s.receiptSecret)
        return CarrierParts(adapter: adapter, receipts: ReceiptFormat(
            reading: .body(ack: adapter.receiptAck),
            parse: { body, fields in adapter.parseReceipts(body: body, fields: fields) },
            aggregate: { body, fields in adapter.aggregateCallback(body: body, fields: fields) }))
    }

    /// One callback URL for every message: the receipt names its message by `{{id}}` or the gateway's id.
    public func receiptURL(base: String) -> ReceiptURL {
        ReceiptURL(prefix: base, endsWithMessageID: false)
    }
}

extension GenericGatewaySpec: CarrierOptionValues, CarrierOptions {
    /// A generic entry has no option keys other kinds' entries may carry.
    public var presentKeys: [String] { [] }
    public var batchMin: Int { batch?.min ?? 1 }
    public var remainderCarrier: String? { batch?.remainderCarrier }
}
