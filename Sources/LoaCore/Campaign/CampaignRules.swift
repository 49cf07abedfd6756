/// The one validation of a campaign, run where it enters Loa: by the daemon on every `POST /api/v1/campaigns`
/// (the API is the boundary), and by `loa check` and `loa campaign submit` on the submission they build from a
/// campaign file, so both refuse the same campaign with the same words.
///
/// Every limit is written here once. A value outside them could overflow or trap further in (a `max_rate` of
/// `1e300` converted to an integer, a weight near `Int.max` times the urgent factor, a deadline estimate divided
/// by `1e-300`), so nothing downstream has to trust its input; the arithmetic there saturates all the same.
public enum CampaignRules {
    /// SMS parts a message may need when the campaign does not say (Kannel's `max-messages` default is 10 too).
    public static let defaultMaxSegments = 10
    /// The most parts any message may have: the concatenation header counts parts in one byte (3GPP TS 23.040
    /// 9.2.3.24.1), so no handset can reassemble more than 255.
    public static let maxSegmentsCap = 255
    /// A template's text at most, in characters: 255 parts of 160 GSM-7 characters is 40,800.
    public static let maxTemplateCharacters = 40_800
    public static let maxTemplates = 50
    public static let maxSegmentFiles = 100
    public static let weights = 1...1000
    /// Messages per second a campaign may be capped at: from one per 1,000 s to a carrier's largest rate.
    public static let maxRates = 0.001...1_000_000.0
    /// The years a start or deadline may fall in; the window arithmetic stays far from overflow.
    public static let years = 2000...2199

    /// A problem with one field of a submission: the field as it is named in the campaign file and the API body
    /// (`max_rate`, `templates.1.weight`), and why.
    public struct Issue: Sendable, Equatable, CustomStringConvertible {
        public var field: String
        public var reason: String
        public init(_ field: String, _ reason: String) {
            self.field = field
            self.reason = reason
        }
        public var description: String { "\(field): \(reason)" }
    }

    /// Every problem of `s`, in field order. `knownCarriers` are the configured carrier names, or nil where the
    /// configuration is not at hand (then `carriers` is only checked for form). `templates: false` skips parsing
    /// the templates (the dispatcher's check of stored campaigns, which were parsed at submit).
    public static func check(_ s: CampaignSubmission, knownCarriers: [String]?, templates: Bool = true) -> [Issue] {
        var out: [Issue] = []
        func add(_ field: String, _ reason: String) { out.append(Issue(field, reason)) }

        if let why = idProblem(s.id) { add("id", why) }
        if let n = s.name, let why = textProblem(n, max: 200) { add("name", why) }
        if let why = senderProblem(s.sender) { add("sender", why) }

        if s.templates.isEmpty { add("templates", "at least one template is required") }
        if s.templates.count > maxTemplates { add("templates", "at most \(maxTemplates) templates") }
        var templateNames = Set<String>()
        for (i, t) in s.templates.enumerated() {
            let f = "templates.\(i)"
            if let why = textProblem(t.name, max: 255, empty: false) { add("\(f).name", why) }
            if !templateNames.insert(t.name).inserted { add(f, "template \(t.name) is listed twice") }
            if !weights.contains(t.weight) { add("\(f).weight", "must be \(weights.lowerBound)-\(weights.upperBound)") }
            if t.text.count > maxTemplateCharacters {
                add(f, "\(t.name): \(t.text.count) characters; at most \(maxTemplateCharacters) (255 SMS parts)")
            } else if t.text.unicodeScalars.contains(where: { $0.value == 0 }) {
                add(f, "\(t.name): contains a NUL character")
            } else if templates {
                do { _ = try Template(name: t.name, source: t.text) } catch {
                    add(f, "\(t.name) line \(error.line), column \(error.column): \(error.message)")
                }
            }
        }

        if s.segments.isEmpty { add("segments", "at least one segment is required") }
        checkFiles(s.segments, field: "segments", into: &out)
        checkFiles(s.exclusions, field: "exclude", into: &out)
        for (i, seg) in s.segments.enumerated() where seg.fromCampaign != nil {
            let f = "segments.\(i)"
            if let from = seg.fromCampaign, let why = idProblem(from) { add("\(f).from_campaign", why) }
            let states = seg.states ?? []
            if states.isEmpty { add(f, "a reminder wave needs states, e.g. [\"delivered\"]") }
            if let bad = states.first(where: { MessageState(name: $0) == nil }) {
                add(f, "unknown state '\(bad)' (states: \(MessageState.allCases.map(\.name).joined(separator: ", ")))")
            }
        }

        let start = ISOTime.parse(s.start)
        let deadline = ISOTime.parse(s.deadline)
        if let why = timeProblem(s.start, start, example: "2026-11-24T08:00:00+07:00") { add("start", why) }
        if let why = timeProblem(s.deadline, deadline, example: "2026-11-30T22:00:00+07:00") { add("deadline", why) }
        if let a = start, let b = deadline, b <= a { add("deadline", "must be after start") }

        if let m = s.maxSegments, !(1...maxSegmentsCap).contains(m) {
            add("max_segments", "must be 1-\(maxSegmentsCap) SMS parts (default \(defaultMaxSegments))")
        }
        for (i, code) in s.allowedCountryCodes.enumerated()
        where !(1...3).contains(code.utf8.count) || !code.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            add("allowed_country_codes.\(i)", "must be a country calling code of 1-3 digits, e.g. 84")
        }
        if s.windows.count > 24 { add("windows", "at most 24 windows a day") }
        do { _ = try SendWindows(s.windows, timeZone: s.timeZone) } catch { add("windows", error.description) }
        if !weights.contains(s.weight) { add("weight", "must be \(weights.lowerBound)-\(weights.upperBound)") }
        if let r = s.maxRate, !maxRates.contains(r) {
            add("max_rate", "must be a number from \(maxRates.lowerBound) to \(Int(maxRates.upperBound)) messages/s")
        }
        if let footer = s.optOutFooter, let why = textProblem(footer, max: 160) { add("opt_out_footer", why) }
        if s.advertising {
            if (s.optOutFooter ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
                add("opt_out_footer", "advertising messages must end with opt-out instructions")
            }
            if let w = try? SendWindows(s.windows, timeZone: s.timeZone),
               !w.windows.allSatisfy({ $0.start >= 7 * 3600 && $0.end <= 22 * 3600 && $0.start < $0.end }) {
                add("windows", "advertising may only be sent between 07:00 and 22:00")
            }
        }
        if let why = textProblem(s.breakdownColumn, max: 255) { add("breakdown_column", why) }
        var seen = Set<String>()
        for (i, c) in s.carriers.enumerated() {
            if !seen.insert(c).inserted { add("carriers", "lists carrier '\(c)' twice") }
            if let known = knownCarriers, !known.contains(c) {
                add("carriers.\(i)", "no configured carrier named '\(c)' (configured: \(known.sorted().joined(separator: ", ")))")
            } else if knownCarriers == nil, idProblem(c) != nil {
                add("carriers.\(i)", "not a carrier name")
            }
        }
        if s.failover {
            let allowed = s.carriers.isEmpty ? (knownCarriers?.count ?? 2) : Set(s.carriers).count
            if allowed < 2 { add("failover", "needs at least two allowed carriers") }
        }
        return out
    }

    /// Ids name campaigns in URLs, file names and the delivery log: 1-64 letters, digits, `.`, `_` or `-`,
    /// starting with a letter or digit (so never `.`, `..` or an option-like `-x`).
    public static func idProblem(_ id: String) -> String? {
        let u = Array(id.utf8)
        func alnum(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) }
        guard (1...64).contains(u.count), u.allSatisfy({ alnum($0) || $0 == 46 || $0 == 95 || $0 == 45 }) else {
            return "must be 1-64 characters of letters, digits, '.', '_' or '-'"
        }
        guard alnum(u[0]) else { return "must start with a letter or a digit" }
        return nil
    }

    /// A brandname (alphanumeric sender): 1-11 printable ASCII characters; or a number of up to 15 digits.
    public static func senderProblem(_ s: String) -> String? {
        let u = Array(s.utf8)
        let digits = u.drop(while: { $0 == 43 })  // a leading '+'
        if !digits.isEmpty && digits.count <= 15 && digits.allSatisfy({ $0 >= 48 && $0 <= 57 }) && u.count - digits.count <= 1 { return nil }
        guard (1...11).contains(u.count), u.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }), u.first != 32, u.last != 32 else {
            return "brandname must be 1-11 printable ASCII characters, without spaces at either end (or a number of up to 15 digits); got \(s.count) characters"
        }
        return nil
    }

    /// Free text shown to people: at most `max` characters, no control characters (they would rewrite a terminal).
    static func textProblem(_ s: String, max: Int, empty: Bool = true) -> String? {
        if !empty && s.isEmpty { return "must not be empty" }
        if s.count > max { return "at most \(max) characters (got \(s.count))" }
        if s.unicodeScalars.contains(where: { $0.value < 0x20 || ($0.value >= 0x7F && $0.value < 0xA0) }) {
            return "must not contain control characters"
        }
        return nil
    }

    static func timeProblem(_ text: String, _ parsed: UnixMillis?, example: String) -> String? {
        guard let t = parsed else { return "not an ISO 8601 time with an offset, e.g. \(example)" }
        // 2000-01-01 and 2200-01-01 UTC.
        if t < 946_684_800_000 || t >= 7_258_118_400_000 {
            return "must fall in the years \(years.lowerBound)-\(years.upperBound)"
        }
        return nil
    }

    private static func checkFiles(_ files: [CampaignSubmission.SegmentInfo], field: String, into out: inout [Issue]) {
        if files.count > maxSegmentFiles { out.append(Issue(field, "at most \(maxSegmentFiles) files")) }
        var names = Set<String>()
        for (i, f) in files.enumerated() {
            let at = "\(field).\(i)"
            // The name is a path component of the upload URL.
            if let why = textProblem(f.name, max: 255, empty: false) { out.append(Issue("\(at).name", why)) }
            else if f.name == "." || f.name == ".." || f.name.contains("/") { out.append(Issue("\(at).name", "must be a file name, not '\(f.name)'")) }
            if !names.insert(f.name).inserted { out.append(Issue(at, "\(f.name) is listed twice")) }
            if let why = textProblem(f.phoneColumn, max: 255, empty: false) { out.append(Issue("\(at).phone_column", why)) }
        }
    }
}

/// Thrown while decoding a campaign or a config when an object has a key Loa does not know: a misspelt key
/// (`max_rates`) would otherwise be ignored in silence and its default used.
public struct UnknownField: Error, Sendable, Equatable, CustomStringConvertible {
    /// The dotted path of the unknown key, e.g. `carriers.0.rat`.
    public var path: String
    public var known: [String]
    public init(path: String, known: [String]) {
        self.path = path
        self.known = known
    }
    public var description: String { "\(path): \(reason)" }

    /// `unknown field`, with the known key it most likely meant (one or two letters off), if any.
    public var reason: String {
        let key = String(path.split(separator: ".").last ?? "")
        let near = known.map { ($0, UnknownField.distance(key, $0)) }.filter { $0.1 <= 2 }.min { $0.1 < $1.1 }
        return near.map { "unknown field (did you mean \($0.0)?)" } ?? "unknown field"
    }

    /// Levenshtein distance over characters (keys are short).
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var prev = row[0]
            row[0] = i
            for j in 1...b.count {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return row[b.count]
    }

    /// Throws for the first key of the object being decoded that is not in `known`.
    public static func check(_ decoder: any Decoder, known: [String]) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let allowed = Set(known)
        if let bad = c.allKeys.map(\.stringValue).sorted().first(where: { !allowed.contains($0) }) {
            let path = (decoder.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue } + [bad]).joined(separator: ".")
            throw UnknownField(path: path, known: known.sorted())
        }
    }

    /// Every key name of a `CaseIterable` coding-key enum.
    public static func names<K: CodingKey & CaseIterable>(_: K.Type) -> [String] { K.allCases.map(\.stringValue) }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

extension Double {
    /// The nearest `Int` within `range` (NaN gives the lower bound): a conversion that cannot trap.
    public func clampedInt(_ range: ClosedRange<Int> = Int.min...Int.max) -> Int {
        guard !isNaN else { return range.lowerBound }
        if self <= Double(range.lowerBound) { return range.lowerBound }
        if self >= Double(range.upperBound) { return range.upperBound }
        return Int(self)
    }
}

/// The shape of a JSON(5) document: its objects' keys, its arrays' items and its strings, nothing else. Decoded
/// with the same decoder as the document itself, so a key check sees exactly what the decoder saw.
public struct JSONShape: Decodable, Sendable {
    public var object: [String: JSONShape]?
    public var array: [JSONShape]?
    public var string: String?

    public init(from decoder: any Decoder) throws {
        if let c = try? decoder.container(keyedBy: UnknownField.AnyKey.self) {
            var o: [String: JSONShape] = [:]
            for k in c.allKeys { o[k.stringValue] = try c.decode(JSONShape.self, forKey: k) }
            object = o
        } else if var c = try? decoder.unkeyedContainer() {
            var a: [JSONShape] = []
            while !c.isAtEnd { a.append(try c.decode(JSONShape.self)) }
            array = a
        } else {
            string = try? decoder.singleValueContainer().decode(String.self)
        }
    }

    public subscript(_ key: String) -> JSONShape? { object?[key] }
}
