/// A campaign as the planner writes it (the campaign file) and as the daemon receives it (the submission).
///
/// The file names templates and segments by path; the submission carries the template texts inline and
/// the segments' names, whose rows follow in separate streamed uploads so a 10M-row segment is never held
/// in memory.
public struct CampaignSpec: Sendable, Codable, Equatable {
    public struct SegmentRef: Sendable, Codable, Equatable {
        /// Path of the CSV file, relative to the campaign file.
        public var file: String
        /// The header of the column holding numbers.
        public var phoneColumn: String

        public init(file: String, phoneColumn: String = "phone") {
            self.file = file
            self.phoneColumn = phoneColumn
        }

        enum CodingKeys: String, CodingKey { case file, phoneColumn = "phone_column" }

        public init(from decoder: any Decoder) throws {
            if let single = try? decoder.singleValueContainer(), let path = try? single.decode(String.self) {
                self.init(file: path)
                return
            }
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(file: try c.decode(String.self, forKey: .file),
                      phoneColumn: try c.decodeIfPresent(String.self, forKey: .phoneColumn) ?? "phone")
        }
    }

    public var id: String
    public var name: String?
    /// The brandname shown as the sender (at most 11 characters for an alphanumeric sender).
    public var sender: String
    /// Paths of slogan template files, relative to the campaign file.
    public var templates: [String]
    public var segments: [SegmentRef]
    /// ISO 8601 with an offset.
    public var start: String
    /// ISO 8601 with an offset; nothing is sent at or after it.
    public var deadline: String
    public var encoding: EncodingPolicy?
    public var maxSegments: Int?
    public var allowedCountryCodes: [String]?

    enum CodingKeys: String, CodingKey {
        case id, name, sender, templates, segments, start, deadline, encoding
        case maxSegments = "max_segments"
        case allowedCountryCodes = "allowed_country_codes"
    }

    public init(id: String, name: String? = nil, sender: String, templates: [String], segments: [SegmentRef],
                start: String, deadline: String, encoding: EncodingPolicy? = nil, maxSegments: Int? = nil,
                allowedCountryCodes: [String]? = nil) {
        self.id = id
        self.name = name
        self.sender = sender
        self.templates = templates
        self.segments = segments
        self.start = start
        self.deadline = deadline
        self.encoding = encoding
        self.maxSegments = maxSegments
        self.allowedCountryCodes = allowedCountryCodes
    }

    /// Checks the fields that need no other file; `file` and `locator` place each problem.
    public func validate(file: String, locator: JSONLocator) -> [Problem] {
        var problems: [Problem] = []
        func add(_ field: String, _ reason: String) {
            problems.append(Problem(file: file, line: locator.line(of: field), field: field, reason: reason))
        }
        if !CampaignSpec.isValidID(id) {
            add("id", "must be 1-64 characters of letters, digits, '.', '_' or '-'")
        }
        if sender.isEmpty || sender.count > 11 {
            add("sender", "brandname must be 1-11 characters (got \(sender.count))")
        }
        if templates.isEmpty { add("templates", "at least one template file is required") }
        if segments.isEmpty { add("segments", "at least one segment file is required") }
        let startMs = ISOTime.parse(start)
        let deadlineMs = ISOTime.parse(deadline)
        if startMs == nil { add("start", "not an ISO 8601 time with an offset, e.g. 2026-11-24T08:00:00+07:00") }
        if deadlineMs == nil { add("deadline", "not an ISO 8601 time with an offset, e.g. 2026-11-30T22:00:00+07:00") }
        if let s = startMs, let d = deadlineMs, d <= s { add("deadline", "must be after start") }
        if let m = maxSegments, m < 1 { add("max_segments", "must be at least 1") }
        return problems
    }

    public static func isValidID(_ id: String) -> Bool {
        guard (1...64).contains(id.utf8.count) else { return false }
        return id.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 46 || c == 95 || c == 45
        }
    }
}

/// What the CLI posts to the daemon to create a campaign: the spec with template texts inline.
public struct CampaignSubmission: Sendable, Codable, Equatable {
    public struct TemplateText: Sendable, Codable, Equatable {
        public var name: String
        public var text: String
        public init(name: String, text: String) {
            self.name = name
            self.text = text
        }
    }

    public struct SegmentInfo: Sendable, Codable, Equatable {
        public var name: String
        public var phoneColumn: String
        enum CodingKeys: String, CodingKey { case name, phoneColumn = "phone_column" }
        public init(name: String, phoneColumn: String) {
            self.name = name
            self.phoneColumn = phoneColumn
        }
    }

    public var id: String
    public var name: String?
    public var sender: String
    public var templates: [TemplateText]
    public var segments: [SegmentInfo]
    public var start: String
    public var deadline: String
    public var encoding: EncodingPolicy
    public var maxSegments: Int?
    public var allowedCountryCodes: [String]

    enum CodingKeys: String, CodingKey {
        case id, name, sender, templates, segments, start, deadline, encoding
        case maxSegments = "max_segments"
        case allowedCountryCodes = "allowed_country_codes"
    }

    public init(id: String, name: String?, sender: String, templates: [TemplateText], segments: [SegmentInfo],
                start: String, deadline: String, encoding: EncodingPolicy, maxSegments: Int?, allowedCountryCodes: [String]) {
        self.id = id
        self.name = name
        self.sender = sender
        self.templates = templates
        self.segments = segments
        self.start = start
        self.deadline = deadline
        self.encoding = encoding
        self.maxSegments = maxSegments
        self.allowedCountryCodes = allowedCountryCodes
    }
}
