import LoaCore

/// Carrier kind `jasmin`: Jasmin's HTTP API `/send` (``JasminAdapter``), with its receipts POSTed as form fields
/// (``JasminAdapter/parseReceipt(_:)``) and answered `ACK/Jasmin`.
public struct JasminKind: CarrierKind {
    public init() {}

    public var name: String { "jasmin" }
    public var optionKeys: [String] { ["validity", "max_parts"] }
    /// Jasmin's level 1 receipts say when the SMSC took a message.
    public var pacesFromReceiptsByDefault: Bool { true }

    /// The Jasmin options as a carrier entry writes them.
    struct Values: CarrierOptionValues {
        var validity: Bool?
        var maxParts: Int?
        var presentKeys: [String] { [("validity", validity != nil), ("max_parts", maxParts != nil)].filter(\.1).map(\.0) }
    }

    enum Keys: String, CodingKey { case validity, maxParts = "max_parts" }

    public func decodeOptions(from decoder: any Decoder, own: Bool) throws -> (any CarrierOptionValues)? {
        let c = try decoder.container(keyedBy: Keys.self)
        return Values(validity: try c.decodeIfPresent(Bool.self, forKey: .validity), maxParts: try c.decodeIfPresent(Int.self, forKey: .maxParts))
    }

    public func check(_ values: (any CarrierOptionValues)?, entry: CarrierEntryFacts, problem: (String, String) -> Void) -> any CarrierOptions {
        var o = JasminOptions()
        if let v = values as? Values {
            if let validity = v.validity { o.validity = validity }
            if let n = v.maxParts {
                if !(1...255).contains(n) { problem("max_parts", "must be 1-255 (Jasmin's long_content_max_parts)") }
                o.maxParts = n
            }
        }
        if let reason = GatewayLink.methodProblem(entry.method) { problem("method", reason) }
        return o
    }

    public func make(_ s: CarrierSettings, engine: CurlEngine) -> CarrierParts {
        let adapter = JasminAdapter(name: s.name, sendURL: s.url, username: s.username, password: s.password, timeout: s.timeout, engine: engine,
                                    usePOST: s.method == "POST", proxy: s.proxy, receiptSecret: s.receiptSecret,
                                    options: s.options as? JasminOptions ?? JasminOptions())
        return CarrierParts(adapter: adapter, receipts: ReceiptFormat(reading: .body(ack: "ACK/Jasmin")) { _, fields in
            JasminAdapter.parseReceipt(fields).map { [$0] }
        })
    }

    /// Jasmin posts id, level and message_status itself (dlr-method=POST keeps this query intact); `m` is Loa's id.
    public func receiptURL(base: String) -> ReceiptURL {
        ReceiptURL.perMessage(base: base, idField: "m")
    }

    /// Jasmin sends only `max_parts` parts of a longer message and drops the rest (``JasminAdapter/refusal(for:)``).
    public func partLimit(_ options: any CarrierOptions) -> PartLimit? {
        guard let o = options as? JasminOptions else { return nil }
        return PartLimit(maxParts: o.maxParts) { JasminAdapter.partsSent($0, encoding: $1) }
    }
}

extension JasminOptions: CarrierOptions {}
