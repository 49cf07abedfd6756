/// Turns one segment row into a recipient message: number normalized, carrier routed, slogan rendered and encoded.
///
/// Built once per segment from its header; ``build(line:fields:)`` is then pure and called for every row.
public struct RecipientBuilder: Sendable {
    public struct Built: Sendable, Equatable {
        public var phone: PhoneNumber
        public var carrier: String
        public var text: String
        public var encoding: SMSEncoding
        public var segments: Int
        public var templateIndex: Int
    }

    public struct Rejection: Sendable, Equatable, Error {
        public var code: String
        public var message: String
        public var raw: String
    }

    public let campaignID: String
    public let templates: [Template]
    public let header: CSVHeader
    public let phoneIndex: Int
    public let policy: EncodingPolicy
    public let maxSegments: Int?
    public let allowedCountryCodes: Set<String>
    public let router: Router
    /// Cumulative template weights: recipient `h` gets the first template whose bound exceeds `h % total`.
    private let bounds: [UInt64]
    private let columnIndex: [String: Int]

    /// Fails with a list of header-level problems (missing phone column, placeholders no column fills without a default).
    /// Non-nil for an advertising campaign: every text gets the `[QC] ` prefix and this opt-out footer.
    public let advertisingFooter: String?

    public init(campaignID: String, templates: [Template], weights: [Int]? = nil, advertisingFooter: String? = nil,
                header: CSVHeader, phoneColumn: String, policy: EncodingPolicy,
                maxSegments: Int?, allowedCountryCodes: Set<String>, router: Router) throws(HeaderProblems) {
        var problems: [String] = []
        let phoneIndex = header.index(of: phoneColumn)
        if phoneIndex == nil {
            problems.append("no column named '\(phoneColumn)' (columns: \(header.names.joined(separator: ", ")))")
        }
        var index: [String: Int] = [:]
        for (i, n) in header.names.enumerated() {
            let key = n.trimmingSpaces().lowercased()
            if index[key] == nil { index[key] = i }
        }
        for t in templates {
            for p in t.placeholders where index[p.name.lowercased()] == nil && p.defaultValue == nil {
                problems.append("template \(t.name): placeholder {{\(p.name)}} names no column of this segment and has no default")
            }
        }
        guard problems.isEmpty, let phoneIndex else { throw HeaderProblems(messages: problems) }
        self.campaignID = campaignID
        self.templates = templates
        self.header = header
        self.phoneIndex = phoneIndex
        self.policy = policy
        self.maxSegments = maxSegments
        self.allowedCountryCodes = allowedCountryCodes
        self.router = router
        self.advertisingFooter = advertisingFooter
        self.columnIndex = index
        var total: UInt64 = 0
        bounds = templates.indices.map { i in
            total += UInt64(min(max(1, weights.map { $0.indices.contains(i) ? $0[i] : 1 } ?? 1), 1_000_000))  // checked 1-1000 at submit; bounded here all the same
            return total
        }
    }

    /// The template for a number: a stable hash of campaign and number, spread by weight, so a restart or a
    /// resubmission never changes who gets which slogan.
    public func templateIndex(for e164: String) -> Int {
        guard templates.count > 1, let total = bounds.last else { return 0 }
        let h = StableHash.fnv1a(campaignID + "|" + e164) % total
        return bounds.firstIndex { h < $0 } ?? 0
    }

    /// A row's value in a named column (case-insensitive), or nil if the segment has no such column.
    public func value(of column: String, in fields: [String]) -> String? {
        columnIndex[column.lowercased()].flatMap { $0 < fields.count ? fields[$0] : nil }
    }

    public struct HeaderProblems: Error, Sendable, Equatable {
        public var messages: [String]
    }

    /// The first control character in a cell that a row may not hold, as `U+0000`, or nil.
    ///
    /// NUL and the other C0 controls are refused: C strings, SQLite's text binding and the gateways' own
    /// C code cut the text and the number at a NUL, and the rest reach terminals and spreadsheets. TAB, and
    /// CR and LF (a quoted cell may span lines, RFC 4180), are ordinary text and kept.
    public static func forbiddenControl(in cell: String) -> String? {
        for b in cell.utf8 where b < 0x20 && b != 0x09 && b != 0x0A && b != 0x0D {
            let hex = String(b, radix: 16, uppercase: true)
            return "U+00" + (hex.count < 2 ? "0" + hex : hex)
        }
        return nil
    }

    /// The rejection of a row the CSV reader found invalid UTF-8 in (``CSVRow/malformed(line:reason:fields:badField:)``):
    /// it names the bad column and keeps the row's phone value (invalid bytes shown as U+FFFD) for the rejects export.
    public func invalidText(fields: [String], badField: Int) -> Rejection {
        Rejection(code: "malformed-row", message: "invalid UTF-8 in \(columnName(badField))",
                  raw: phoneIndex < fields.count ? fields[phoneIndex] : "")
    }

    /// `column 'name'` for a field of this segment's header, `field N` (1-based) past its end.
    func columnName(_ i: Int) -> String {
        i < header.names.count ? "column '\(header.names[i])'" : "field \(i + 1)"
    }

    public func build(fields: [String]) -> Result<Built, Rejection> {
        let raw = phoneIndex < fields.count ? fields[phoneIndex] : ""
        if fields.count != header.names.count {
            return .failure(Rejection(code: "ragged-row", message: "has \(fields.count) fields, the header has \(header.names.count)", raw: raw))
        }
        for (i, f) in fields.enumerated() {
            if let bad = RecipientBuilder.forbiddenControl(in: f) {
                return .failure(Rejection(code: "control-character",
                                          message: "\(columnName(i)) holds the control character \(bad); the row is refused rather than cut", raw: raw))
            }
        }
        let phone: PhoneNumber
        switch PhoneNormalizer.normalize(raw, allowedCountryCodes: allowedCountryCodes) {
        case .success(let p): phone = p
        case .failure(let r): return .failure(Rejection(code: r.code, message: r.message, raw: raw))
        }
        let choice = templateIndex(for: phone.e164)
        let rendered: String
        do {
            rendered = try templates[choice].render { name in
                columnIndex[name].map { fields[$0] }  // placeholder names are lowercased already
            }
        } catch {
            return .failure(Rejection(code: "template", message: "\(error.message)", raw: raw))
        }
        let text = advertisingFooter.map { "[QC] " + rendered + " " + $0 } ?? rendered
        let prepared = SMSText.prepare(text, policy: policy)
        if let maxSegments, prepared.info.segments > maxSegments {
            return .failure(Rejection(code: "too-long", message: "\(phone.masked): the text needs \(prepared.info.segments) SMS parts, max_segments is \(maxSegments): \"\(prepared.text.prefix(60))…\"", raw: raw))
        }
        return .success(Built(phone: phone, carrier: router.route(phone), text: prepared.text, encoding: prepared.info.encoding,
                              segments: prepared.info.segments, templateIndex: choice))
    }
}

extension StringProtocol {
    /// Without leading and trailing whitespace and newlines (cheaper than Foundation's
    /// `trimmingCharacters(in:)`, which walks a `CharacterSet`).
    public func trimmingSpaces() -> String {
        // Most strings start and end with a visible ASCII character: nothing to trim, no Character walk.
        // (A Character whose last byte is such a character is that character, or a base letter plus marks.)
        let s = String(self)
        if let f = s.utf8.first, let l = s.utf8.last, (0x21...0x7E).contains(f), (0x21...0x7E).contains(l) { return s }
        guard let first = s.firstIndex(where: { !$0.isWhitespace }), let last = s.lastIndex(where: { !$0.isWhitespace }) else { return "" }
        return String(s[first...last])
    }
}
