/// The totals `loa preview` prints and `GET /api/v1/campaigns/{id}/preview` answers, counted the same way in both
/// places so the two cannot drift: `loa preview` counts a campaign's files as it reads them (`CampaignScan`), the
/// daemon's store counts the same rows as it ingests an upload and keeps the result with the campaign.
///
/// Every segment row is exactly one of: a recipient, a duplicate (its number came earlier in the campaign), opted
/// out (on the global list), excluded (on the campaign's exclusion list) or rejected (by its reason code). A number
/// both opted out and excluded counts as opted out, as the store records it (``Suppression``).
///
/// | row | counted in |
/// |---|---|
/// | first `0912345678` | `recipients`, `per_carrier`, `per_network`, `per_ward`, `parts`, `ucs2`/`gsm7` |
/// | `0912345678` again | `duplicates` |
/// | a number on the opt-out list | `opted_out` (and `suppressed`) |
/// | `12345` | `rejected`, `rejected_by_reason["too-short"]` (the normalizer's code) |
public struct PreviewTotals: Sendable, Codable, Equatable {
    /// Data rows read from the segments.
    public var rows: Int64 = 0
    public var recipients: Int64 = 0
    public var duplicates: Int64 = 0
    /// On the campaign's exclusion files.
    public var excluded: Int64 = 0
    /// On the daemon's global opt-out list.
    public var optedOut: Int64 = 0
    public var rejectedByReason: [String: Int64] = [:]
    public var perCarrier: [String: Int64] = [:]
    /// Recipients per mobile network (``Router/network(of:)``: ported, else by prefix).
    public var perNetwork: [String: Int64] = [:]
    /// Recipients per value of the campaign's breakdown column (`ward` by default); empty when the segments have
    /// no such column. At most ``wardLimit`` values are kept; recipients of the values beyond are counted under
    /// ``otherWards``, so a column with a value per row cannot make the totals as large as the campaign.
    public var perWard: [String: Int64] = [:]
    /// SMS parts the recipients' messages take: the cost.
    public var parts: Int64 = 0
    public var ucs2Messages: Int64 = 0

    public static let wardLimit = 1_000
    public static let otherWards = "(other)"

    public init() {}

    public var suppressed: Int64 { excluded + optedOut }
    public var rejected: Int64 { rejectedByReason.values.reduce(0, +) }
    public var gsm7Messages: Int64 { recipients - ucs2Messages }

    /// Why a row is not sent although its number is valid.
    public enum Suppression: String, Sendable {
        case optOut = "opt-out"
        case excluded
    }

    /// A row that becomes a message.
    public mutating func recipient(carrier: String, network: String?, ward: String?, encoding: SMSEncoding, parts: Int) {
        rows += 1
        recipients += 1
        self.parts += Int64(parts)
        if encoding == .ucs2 { ucs2Messages += 1 }
        perCarrier[carrier, default: 0] += 1
        if let network { perNetwork[network, default: 0] += 1 }
        if let ward {
            let key = perWard[ward] != nil || perWard.count < Self.wardLimit ? ward : Self.otherWards
            perWard[key, default: 0] += 1
        }
    }

    /// A row whose number came earlier in the campaign.
    public mutating func duplicate() {
        rows += 1
        duplicates += 1
    }

    /// A valid number that is not sent: opted out or excluded.
    public mutating func suppressed(_ why: Suppression) {
        rows += 1
        switch why {
        case .optOut: optedOut += 1
        case .excluded: excluded += 1
        }
    }

    /// A row refused, by its reason code (`too-short`, `ragged-row`, …).
    public mutating func rejected(_ code: String) {
        rows += 1
        rejectedByReason[code, default: 0] += 1
    }

    enum CodingKeys: String, CodingKey {
        case rows, recipients, duplicates, excluded, optedOut, rejectedByReason, perCarrier, perNetwork, perWard, parts, ucs2Messages
        case suppressed, rejected, gsm7Messages
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rows = try c.decode(Int64.self, forKey: .rows)
        recipients = try c.decode(Int64.self, forKey: .recipients)
        duplicates = try c.decode(Int64.self, forKey: .duplicates)
        excluded = try c.decode(Int64.self, forKey: .excluded)
        optedOut = try c.decode(Int64.self, forKey: .optedOut)
        rejectedByReason = try c.decode([String: Int64].self, forKey: .rejectedByReason)
        perCarrier = try c.decode([String: Int64].self, forKey: .perCarrier)
        perNetwork = try c.decode([String: Int64].self, forKey: .perNetwork)
        perWard = try c.decode([String: Int64].self, forKey: .perWard)
        parts = try c.decode(Int64.self, forKey: .parts)
        ucs2Messages = try c.decode(Int64.self, forKey: .ucs2Messages)
    }

    /// The stored fields and the derived ones (`suppressed`, `rejected`, `gsm7_messages`), so a client needs no sums.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(rows, forKey: .rows)
        try c.encode(recipients, forKey: .recipients)
        try c.encode(duplicates, forKey: .duplicates)
        try c.encode(excluded, forKey: .excluded)
        try c.encode(optedOut, forKey: .optedOut)
        try c.encode(rejectedByReason, forKey: .rejectedByReason)
        try c.encode(perCarrier, forKey: .perCarrier)
        try c.encode(perNetwork, forKey: .perNetwork)
        try c.encode(perWard, forKey: .perWard)
        try c.encode(parts, forKey: .parts)
        try c.encode(ucs2Messages, forKey: .ucs2Messages)
        try c.encode(suppressed, forKey: .suppressed)
        try c.encode(rejected, forKey: .rejected)
        try c.encode(gsm7Messages, forKey: .gsm7Messages)
    }
}
