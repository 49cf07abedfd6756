import LoaCore

/// Carrier kind `kannel`: Kannel's smsbox `sendsms` (``KannelAdapter``), with its receipts in the dlr-url's query
/// (``KannelAdapter/parseReceipt(_:)``).
public struct KannelKind: CarrierKind {
    public init() {}

    public var name: String { "kannel" }
    public var optionKeys: [String] { ["smsc", "priority", "deferred_minutes", "validity"] }
    /// Kannel's receipts say when the SMSC took a message (8, and 4 for buffered).
    public var pacesFromReceiptsByDefault: Bool { true }

    /// The Kannel options as a carrier entry writes them.
    struct Values: CarrierOptionValues {
        var smsc: String?
        var priority: Int?
        var deferredMinutes: Int?
        var validity: Bool?
        var presentKeys: [String] {
            [("smsc", smsc != nil), ("priority", priority != nil), ("deferred_minutes", deferredMinutes != nil), ("validity", validity != nil)]
                .filter(\.1).map(\.0)
        }
    }

    enum Keys: String, CodingKey { case smsc, priority, validity, deferredMinutes = "deferred_minutes" }

    public func decodeOptions(from decoder: any Decoder, own: Bool) throws -> (any CarrierOptionValues)? {
        let c = try decoder.container(keyedBy: Keys.self)
        return Values(smsc: try c.decodeIfPresent(String.self, forKey: .smsc), priority: try c.decodeIfPresent(Int.self, forKey: .priority),
                      deferredMinutes: try c.decodeIfPresent(Int.self, forKey: .deferredMinutes),
                      validity: try c.decodeIfPresent(Bool.self, forKey: .validity))
    }

    public func check(_ values: (any CarrierOptionValues)?, entry: CarrierEntryFacts, problem: (String, String) -> Void) -> any CarrierOptions {
        var o = KannelOptions()
        if let v = values as? Values {
            if let smsc = v.smsc {
                if smsc.isEmpty || smsc.count > 64 || smsc.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F }) {
                    problem("smsc", "must be a Kannel smsc-id: 1-64 characters, no spaces or control characters")
                }
                o.smsc = smsc
            }
            if let p = v.priority {
                if !(0...3).contains(p) { problem("priority", "must be 0-3 (Kannel's priority; smsbox refuses other values)") }
                o.priority = p
            }
            if let d = v.deferredMinutes {
                if !(1...10_080).contains(d) { problem("deferred_minutes", "must be 1-10080 (a week)") }
                o.deferredMinutes = d
            }
            if let validity = v.validity { o.validity = validity }
        }
        if let reason = GatewayLink.methodProblem(entry.method) { problem("method", reason) }
        return o
    }

    public func make(_ s: CarrierSettings, engine: CurlEngine) -> CarrierParts {
        let adapter = KannelAdapter(name: s.name, sendsmsURL: s.url, username: s.username, password: s.password, timeout: s.timeout, engine: engine,
                                    usePOST: s.method == "POST", proxy: s.proxy, receiptSecret: s.receiptSecret,
                                    options: s.options as? KannelOptions ?? KannelOptions())
        return CarrierParts(adapter: adapter, receipts: ReceiptFormat(reading: .query) { _, query in KannelAdapter.parseReceipt(query).map { [$0] } })
    }

    /// Kannel fills %d (report type bits), %T (time), %F (the SMSC's message id; `fc` is an old name) and %A (the
    /// report text: `ACK/`, `NACK/…`, or the SMPP receipt `id:… stat:… err:…`): ``KannelAdapter/parseReceipt(_:)``.
    public func receiptURL(base: String) -> ReceiptURL {
        ReceiptURL.perMessage(base: base, fields: [("st", "%d"), ("ts", "%T"), ("fc", "%F"), ("ans", "%A")], idField: "id")
    }
}

extension KannelOptions: CarrierOptions {}
