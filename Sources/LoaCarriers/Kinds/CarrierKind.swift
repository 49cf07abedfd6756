import LoaCore

/// One kind of carrier gateway, the `"kind"` of a carrier entry: everything Loa knows of that kind, in one place.
///
/// A kind owns its options in the config file (which keys, how they are read and checked), its construction
/// (the adapter, which owns the request and the reading of the answer), the receipt URL its gateway is given and
/// how that gateway's receipts are read. Nothing outside a kind compares a carrier's `kind` with a name: the
/// config, the daemon, the dispatcher, the receipt endpoint and `loa check` ask the kind (``CarrierKinds``).
/// Adding a kind is adding a type that conforms and listing it in ``CarrierKinds/all``.
///
/// Kannel's HTTP SMSC is the model (`struct smsc_http_fn_callbacks { send_sms, parse_reply, receive_sms }` in
/// `gw/smsc/smsc_http.c`): a table of functions per gateway kind, chosen once from the configuration.
///
/// Contract:
/// - ``decodeOptions(from:own:)`` MUST read every key of ``optionKeys`` from every carrier entry (so that a key
///   written on another kind's entry is refused by name, not ignored), and MAY read its other keys only from its
///   own entries (`own`).
/// - ``check(_:entry:problem:)`` MUST report every problem of its own entry's options as the key below the entry
///   (`smsc`, `batch.min`) and a reason, and MUST return options an adapter can be built from even then (the
///   config is refused, but the remaining checks still run).
/// - ``make(_:engine:)`` MUST NOT fail: a checked entry builds.
public protocol CarrierKind: Sendable {
    /// The `kind` a carrier entry names.
    var name: String { get }
    /// Keys this kind reads that any carrier entry may carry: on another kind's entry such a key is refused as
    /// "only for kind …", not reported as an unknown field.
    var optionKeys: [String] { get }
    /// Keys only this kind's entries may carry (on another kind's entry they are unknown fields).
    var entryKeys: [String] { get }
    /// Objects inside this kind's entries whose keys are checked too: the keys leading there from the entry and
    /// the keys known there.
    var nestedKeys: [(path: [String], known: [String])] { get }
    /// `pace_from_receipts` when the entry does not say (true when the gateway's receipts say when it passed a
    /// message on, false when they may come only at delivery).
    var pacesFromReceiptsByDefault: Bool { get }
    /// This kind's options as a carrier entry writes them (`own`: the entry is of this kind); nil when it reads
    /// nothing from other kinds' entries. Throws the decoder's errors (type mismatches name their key).
    func decodeOptions(from decoder: any Decoder, own: Bool) throws -> (any CarrierOptionValues)?
    /// Checks the options of an entry of this kind (``decodeOptions(from:own:)`` with `own`), reporting each
    /// problem by its key below the entry; returns the options the adapter is built with.
    func check(_ values: (any CarrierOptionValues)?, entry: CarrierEntryFacts, problem: (_ key: String, _ reason: String) -> Void) -> any CarrierOptions
    /// Why another kind's option `key` does not fit this kind's entries, shown instead of "this carrier is …", or nil.
    func foreignKeyHint(_ key: String) -> String?
    /// The carrier's adapter and receipt format, built from its checked settings.
    func make(_ settings: CarrierSettings, engine: CurlEngine) -> CarrierParts
    /// The URL this kind's gateway sends a message's receipts to, from the carrier's base (``ReceiptURL/base(publicURL:carrier:secret:)``).
    func receiptURL(base: String) -> ReceiptURL
    /// The most parts a message may have on this carrier, when the gateway cuts longer ones (Jasmin's `max_parts`).
    func partLimit(_ options: any CarrierOptions) -> PartLimit?
}

extension CarrierKind {
    public var entryKeys: [String] { [] }
    public var nestedKeys: [(path: [String], known: [String])] { [] }
    public func foreignKeyHint(_ key: String) -> String? { nil }
    public func partLimit(_ options: any CarrierOptions) -> PartLimit? { nil }
}

/// The registry of carrier kinds.
public enum CarrierKinds {
    /// Every kind Loa knows, in the order the config lists them (`known: kannel, jasmin, generic`).
    public static let all: [any CarrierKind] = [KannelKind(), JasminKind(), GenericKind()]

    /// The kind named `name` in a carrier entry, or nil when there is none.
    public static func named(_ name: String) -> (any CarrierKind)? {
        all.first { $0.name == name }
    }

    /// The kinds' names, for "unknown adapter kind" (`kannel, jasmin, generic`).
    public static var names: [String] { all.map(\.name) }

    /// Every kind's option keys, each once: the keys every carrier entry may carry.
    public static var optionKeys: [String] {
        var seen = Set<String>()
        return all.flatMap(\.optionKeys).filter { seen.insert($0).inserted }
    }

    /// Why option `key` may not be on an entry of kind `entryKind` (`only for kind jasmin (this carrier is kannel)`),
    /// or nil when that kind reads it.
    public static func refusal(of key: String, onKind entryKind: String) -> String? {
        let own = named(entryKind)
        if own?.optionKeys.contains(key) == true { return nil }
        let owners = all.filter { $0.optionKeys.contains(key) }.map(\.name)
        guard !owners.isEmpty else { return nil }
        let list = owners.count == 1 ? "kind \(owners[0])"
            : "kinds \(owners.dropLast().joined(separator: ", ")) and \(owners[owners.count - 1])"
        return "only for \(list) (\(own?.foreignKeyHint(key) ?? "this carrier is \(entryKind)"))"
    }
}

/// A kind's options as a carrier entry writes them, before they are checked.
public protocol CarrierOptionValues: Sendable {
    /// The keys of the kind's ``CarrierKind/optionKeys`` the entry has, in the order the kind checks them.
    var presentKeys: [String] { get }
}

/// A kind's checked options, as its adapter is built with them.
public protocol CarrierOptions: Sendable {
    /// The fewest recipients one request may carry (a batching gateway's `batch.min`); 1: no minimum.
    var batchMin: Int { get }
    /// Where a remainder below ``batchMin`` goes (`batch.remainder_carrier`); nil: it fails with the reason.
    var remainderCarrier: String? { get }
}

extension CarrierOptions {
    public var batchMin: Int { 1 }
    public var remainderCarrier: String? { nil }
}

/// What a kind's checks may need of the rest of its entry.
public struct CarrierEntryFacts: Sendable {
    /// The entry's `method`, as written.
    public var method: String?
    /// The names of the entry's `secrets`.
    public var secretNames: Set<String>
    public init(method: String?, secretNames: Set<String>) {
        self.method = method
        self.secretNames = secretNames
    }
}

/// A configured carrier as its kind builds it: the settings every kind shares, resolved, and its own options.
public struct CarrierSettings: Sendable {
    public var name: String
    public var url: String
    public var username: String
    public var password: String
    public var receiptSecret: String
    /// Seconds a request may take.
    public var timeout: Double
    /// The entry's `method` (`GET` unless it says).
    public var method: String
    public var proxy: String?
    /// The gateway deduplicates resends, so a timeout after sending may be retried.
    public var idempotent: Bool
    /// Resolved `secrets`, for a generic gateway's `{{secret.NAME}}`.
    public var secrets: [String: String]
    public var options: any CarrierOptions

    public init(name: String, url: String, username: String = "", password: String = "", receiptSecret: String, timeout: Double = 15,
                method: String = "GET", proxy: String? = nil, idempotent: Bool = false, secrets: [String: String] = [:],
                options: any CarrierOptions) {
        self.name = name
        self.url = url
        self.username = username
        self.password = password
        self.receiptSecret = receiptSecret
        self.timeout = timeout
        self.method = method
        self.proxy = proxy
        self.idempotent = idempotent
        self.secrets = secrets
        self.options = options
    }
}

/// What a kind builds for one carrier: the adapter that sends and how the carrier's receipts are read.
public struct CarrierParts: Sendable {
    public var adapter: any CarrierAdapter
    public var receipts: ReceiptFormat
    public init(adapter: any CarrierAdapter, receipts: ReceiptFormat) {
        self.adapter = adapter
        self.receipts = receipts
    }
}

/// The receipt URL a carrier's gateway is given with each message.
public struct ReceiptURL: Sendable, Equatable {
    /// The URL, up to the message's id when ``endsWithMessageID``.
    public var prefix: String
    /// The message's id ends the URL (the receipt names its message by it); else the URL is the same for every
    /// message and the receipt names its message itself.
    public var endsWithMessageID: Bool

    public init(prefix: String, endsWithMessageID: Bool) {
        self.prefix = prefix
        self.endsWithMessageID = endsWithMessageID
    }

    /// The URL for message `id`.
    public func url(for id: Int64) -> String { endsWithMessageID ? prefix + String(id) : prefix }

    /// The first segment of the receipt endpoint's path: `/dlr/<carrier>`.
    public static let pathSegment = "dlr"

    /// `<public_url>/dlr/<carrier>?k=<receipt secret>`: where every carrier's receipts reach Loa, authenticated by
    /// the carrier's secret; a kind adds its fields.
    public static func base(publicURL: String, carrier: String, secret: String) -> String {
        "\(publicURL)/\(pathSegment)/\(URLQuery.escape(carrier))?k=\(URLQuery.escape(secret))"
    }

    /// `base` with `fields` (fixed query fields, placeholders the gateway fills) and then `idField` naming Loa's
    /// message id: `…&st=%d&id=` + the id.
    public static func perMessage(base: String, fields: [(String, String)] = [], idField: String) -> ReceiptURL {
        let extra = fields.map { "&\($0.0)=\($0.1)" }.joined()
        return ReceiptURL(prefix: base + extra + "&\(idField)=", endsWithMessageID: true)
    }
}

/// How a carrier's receipt requests are read, and what the gateway is answered.
public struct ReceiptFormat: Sendable {
    /// Where the receipt is and what a stored one is answered with.
    public enum Reading: Sendable, Equatable {
        /// In the receipt URL's query alone (Kannel's dlr-url, its placeholders filled): no body is read, and a
        /// stored receipt is answered `OK <result>`.
        case query
        /// In the request's body and query (merged with a form body): read whole, up to the endpoint's limit, and
        /// answered with `ack` (Jasmin retries unless it reads `ACK/Jasmin`).
        case body(ack: String)
    }
    public var reading: Reading
    /// The answer to a stored receipt when the format reads the body; nil when it reads the query alone.
    public var ack: String? {
        if case .body(let ack) = reading { return ack }
        return nil
    }
    /// The receipts of one request: the body and the query fields (merged with a form body when there is one).
    public var parse: @Sendable ([UInt8], [String: String]) -> Result<[InboundReceipt], ReceiptParseError>
    /// A callback about a whole send request (a generic carrier's `receipts.aggregate`), or nil for a per-message one.
    public var aggregate: (@Sendable ([UInt8], [String: String]) -> AggregateCallback?)?

    public init(reading: Reading, parse: @escaping @Sendable ([UInt8], [String: String]) -> Result<[InboundReceipt], ReceiptParseError>,
                aggregate: (@Sendable ([UInt8], [String: String]) -> AggregateCallback?)? = nil) {
        self.reading = reading
        self.parse = parse
        self.aggregate = aggregate
    }
}

/// A gateway that cuts messages longer than a number of parts, and how it counts a message's parts.
public struct PartLimit: Sendable {
    public var maxParts: Int
    /// The parts the gateway sends a text in, in the encoding Loa chose.
    public var parts: @Sendable (String, SMSEncoding) -> Int
    public init(maxParts: Int, parts: @escaping @Sendable (String, SMSEncoding) -> Int) {
        self.maxParts = maxParts
        self.parts = parts
    }
}
