/// A campaign as the planner writes it (the campaign file) and as the daemon receives it (the submission).
///
/// The file names templates and segments by path; the submission carries the template texts inline and
/// the segments' names, whose rows follow in separate streamed uploads so a 10M-row segment is never held
/// in memory.
public struct CampaignSpec: Sendable, Codable, Equatable {
    public struct SegmentRef: Sendable, Codable, Equatable {
        /// Path of the CSV file, relative to the campaign file (empty for a reminder wave).
        public var file: String
        /// The header of the column holding numbers (CSV only).
        public var phoneColumn: String
        public var format: SegmentFormat
        /// A reminder wave: the recipients of this earlier campaign…
        public var fromCampaign: String?
        /// …whose message ended in one of these states (e.g. `["delivered"]`).
        public var states: [String]?

        public init(file: String, phoneColumn: String = "phone", format: SegmentFormat? = nil, fromCampaign: String? = nil, states: [String]? = nil) {
            self.file = file
            self.phoneColumn = phoneColumn
            self.format = format ?? SegmentFormat.guess(file)
            self.fromCampaign = fromCampaign
            self.states = states
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case file, format, states, phoneColumn = "phone_column", fromCampaign = "from_campaign" }

        public init(from decoder: any Decoder) throws {
            if let single = try? decoder.singleValueContainer(), let path = try? single.decode(String.self) {
                self.init(file: path)
                return
            }
            try UnknownField.check(decoder, known: UnknownField.names(CodingKeys.self))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let from = try c.decodeIfPresent(String.self, forKey: .fromCampaign)
            self.init(file: from == nil ? try c.decode(String.self, forKey: .file) : (try c.decodeIfPresent(String.self, forKey: .file) ?? ""),
                      phoneColumn: try c.decodeIfPresent(String.self, forKey: .phoneColumn) ?? "phone",
                      format: try c.decodeIfPresent(SegmentFormat.self, forKey: .format),
                      fromCampaign: from, states: try c.decodeIfPresent([String].self, forKey: .states))
        }
    }

    /// A slogan template file and its weight among the campaign's templates.
    public struct TemplateRef: Sendable, Codable, Equatable {
        public var file: String
        /// Relative share of recipients (default 1).
        public var weight: Int

        public init(file: String, weight: Int = 1) {
            self.file = file
            self.weight = weight
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case file, weight }

        public init(from decoder: any Decoder) throws {
            if let single = try? decoder.singleValueContainer(), let path = try? single.decode(String.self) {
                self.init(file: path)
                return
            }
            try UnknownField.check(decoder, known: UnknownField.names(CodingKeys.self))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(file: try c.decode(String.self, forKey: .file), weight: try c.decodeIfPresent(Int.self, forKey: .weight) ?? 1)
        }
    }

    public var id: String
    public var name: String?
    /// The brandname shown as the sender (at most 11 characters for an alphanumeric sender).
    public var sender: String
    /// Slogan template files (relative to the campaign file), each with an optional weight.
    public var templates: [TemplateRef]
    public var segments: [SegmentRef]
    /// Files of numbers not to message in this campaign (e.g. "already took part"): one number per line, or CSV with a phone column.
    public var exclude: [SegmentRef]?
    /// ISO 8601 with an offset.
    public var start: String
    /// ISO 8601 with an offset; nothing is sent at or after it.
    public var deadline: String
    public var encoding: EncodingPolicy?
    public var maxSegments: Int?
    public var allowedCountryCodes: [String]?
    /// Daily send windows, `HH:MM-HH:MM` local time (default `07:00-22:00`).
    public var windows: [String]?
    /// The windows' time zone (default `Asia/Ho_Chi_Minh`).
    public var timeZone: String?
    /// `bulk` (default) or `urgent`: urgent campaigns take most of a carrier's rate first.
    public var priority: CampaignPriority?
    /// Relative share of each carrier's rate among running campaigns of the same priority (default 1).
    public var weight: Int?
    /// A cap on this campaign's own sending rate, messages per second.
    public var maxRate: Double?
    /// Advertising rules (Decree 91/2020): a `[QC]` prefix, an opt-out footer, windows within 07:00-22:00.
    /// Off for public announcements.
    public var advertising: Bool?
    /// The opt-out instructions appended to every advertising message.
    public var optOutFooter: String?
    /// The segment column reports break results down by (default `ward`, when the segment has it).
    public var breakdownColumn: String?
    /// The carrier connections this campaign may use (default: all). Numbers routed elsewhere go to the first.
    public var carriers: [String]?
    /// While a carrier is down (breaker open), send its queued messages through another allowed carrier.
    public var failover: Bool?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, name, sender, templates, segments, exclude, start, deadline, encoding, windows, priority, weight, advertising, carriers, failover
        case timeZone = "time_zone", maxRate = "max_rate", optOutFooter = "opt_out_footer", breakdownColumn = "breakdown_column"
        case maxSegments = "max_segments"
        case allowedCountryCodes = "allowed_country_codes"
    }

    public init(from decoder: any Decoder) throws {
        try UnknownField.check(decoder, known: UnknownField.names(CodingKeys.self))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        sender = try c.decode(String.self, forKey: .sender)
        templates = try c.decode([TemplateRef].self, forKey: .templates)
        segments = try c.decode([SegmentRef].self, forKey: .segments)
        exclude = try c.decodeIfPresent([SegmentRef].self, forKey: .exclude)
        start = try c.decode(String.self, forKey: .start)
        deadline = try c.decode(String.self, forKey: .deadline)
        encoding = try c.decodeIfPresent(EncodingPolicy.self, forKey: .encoding)
        maxSegments = try c.decodeIfPresent(Int.self, forKey: .maxSegments)
        allowedCountryCodes = try c.decodeIfPresent([String].self, forKey: .allowedCountryCodes)
        windows = try c.decodeIfPresent([String].self, forKey: .windows)
        timeZone = try c.decodeIfPresent(String.self, forKey: .timeZone)
        priority = try c.decodeIfPresent(CampaignPriority.self, forKey: .priority)
        weight = try c.decodeIfPresent(Int.self, forKey: .weight)
        maxRate = try c.decodeIfPresent(Double.self, forKey: .maxRate)
        advertising = try c.decodeIfPresent(Bool.self, forKey: .advertising)
        optOutFooter = try c.decodeIfPresent(String.self, forKey: .optOutFooter)
        breakdownColumn = try c.decodeIfPresent(String.self, forKey: .breakdownColumn)
        carriers = try c.decodeIfPresent([String].self, forKey: .carriers)
        failover = try c.decodeIfPresent(Bool.self, forKey: .failover)
    }

    public init(id: String, name: String? = nil, sender: String, templates: [TemplateRef], segments: [SegmentRef],
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

    /// Whether `id` is a valid campaign or carrier id (``CampaignRules/idProblem(_:)``).
    public static func isValidID(_ id: String) -> Bool { CampaignRules.idProblem(id) == nil }
}

/// What the CLI posts to the daemon to create a campaign: the spec with template texts inline.
public struct CampaignSubmission: Sendable, Codable, Equatable {
    public struct TemplateText: Sendable, Codable, Equatable {
        public var name: String
        public var text: String
        public var weight: Int
        public init(name: String, text: String, weight: Int = 1) {
            self.name = name
            self.text = text
            self.weight = weight
        }
        enum CodingKeys: String, CodingKey, CaseIterable { case name, text, weight }
        public init(from decoder: any Decoder) throws {
            try UnknownField.check(decoder, known: UnknownField.names(CodingKeys.self))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(name: try c.decode(String.self, forKey: .name), text: try c.decode(String.self, forKey: .text),
                      weight: try c.decodeIfPresent(Int.self, forKey: .weight) ?? 1)
        }
    }

    public struct SegmentInfo: Sendable, Codable, Equatable {
        public var name: String
        public var phoneColumn: String
        public var format: SegmentFormat
        public var fromCampaign: String?
        public var states: [String]?
        enum CodingKeys: String, CodingKey, CaseIterable { case name, format, states, phoneColumn = "phone_column", fromCampaign = "from_campaign" }
        public init(name: String, phoneColumn: String, format: SegmentFormat = .csv, fromCampaign: String? = nil, states: [String]? = nil) {
            self.name = name
            self.phoneColumn = phoneColumn
            self.format = format
            self.fromCampaign = fromCampaign
            self.states = states
        }
        public init(from decoder: any Decoder) throws {
            try UnknownField.check(decoder, known: UnknownField.names(CodingKeys.self))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(name: try c.decode(String.self, forKey: .name), phoneColumn: try c.decodeIfPresent(String.self, forKey: .phoneColumn) ?? "phone",
                      format: try c.decodeIfPresent(SegmentFormat.self, forKey: .format) ?? .csv,
                      fromCampaign: try c.decodeIfPresent(String.self, forKey: .fromCampaign), states: try c.decodeIfPresent([String].self, forKey: .states))
        }
    }

    public var id: String
    public var name: String?
    public var sender: String
    public var templates: [TemplateText]
    public var segments: [SegmentInfo]
    /// Exclusion files, uploaded (and applied) before the segments.
    public var exclusions: [SegmentInfo]
    public var start: String
    public var deadline: String
    public var encoding: EncodingPolicy
    public var maxSegments: Int?
    public var allowedCountryCodes: [String]
    public var windows: [String]
    public var timeZone: String
    public var priority: CampaignPriority
    public var weight: Int
    public var maxRate: Double?
    public var advertising: Bool
    public var optOutFooter: String?
    public var breakdownColumn: String
    /// Allowed carrier connections (empty: all).
    public var carriers: [String] = []
    /// Failover to another allowed carrier while one is down.
    public var failover: Bool = false

    /// The most SMS parts a message of this campaign may need (``CampaignRules/defaultMaxSegments`` unless set).
    public var maxParts: Int { min(maxSegments ?? CampaignRules.defaultMaxSegments, CampaignRules.maxSegmentsCap) }

    /// The parsed windows (validated at submit; the standard ones if somehow invalid).
    public var sendWindows: SendWindows { (try? SendWindows(windows, timeZone: timeZone)) ?? .standard }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, name, sender, templates, segments, exclusions, start, deadline, encoding, windows, priority, weight, advertising, carriers, failover
        case timeZone = "time_zone", maxRate = "max_rate", optOutFooter = "opt_out_footer", breakdownColumn = "breakdown_column"
        case maxSegments = "max_segments"
        case allowedCountryCodes = "allowed_country_codes"
    }

    public init(from decoder: any Decoder) throws {
        try UnknownField.check(decoder, known: UnknownField.names(CodingKeys.self))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        sender = try c.decode(String.self, forKey: .sender)
        templates = try c.decode([TemplateText].self, forKey: .templates)
        segments = try c.decode([SegmentInfo].self, forKey: .segments)
        exclusions = try c.decodeIfPresent([SegmentInfo].self, forKey: .exclusions) ?? []
        start = try c.decode(String.self, forKey: .start)
        deadline = try c.decode(String.self, forKey: .deadline)
        encoding = try c.decodeIfPresent(EncodingPolicy.self, forKey: .encoding) ?? .auto
        maxSegments = try c.decodeIfPresent(Int.self, forKey: .maxSegments)
        allowedCountryCodes = try c.decodeIfPresent([String].self, forKey: .allowedCountryCodes) ?? []
        windows = try c.decodeIfPresent([String].self, forKey: .windows) ?? ["07:00-22:00"]
        timeZone = try c.decodeIfPresent(String.self, forKey: .timeZone) ?? SendWindows.defaultZone
        priority = try c.decodeIfPresent(CampaignPriority.self, forKey: .priority) ?? .bulk
        weight = try c.decodeIfPresent(Int.self, forKey: .weight) ?? 1
        maxRate = try c.decodeIfPresent(Double.self, forKey: .maxRate)
        advertising = try c.decodeIfPresent(Bool.self, forKey: .advertising) ?? false
        optOutFooter = try c.decodeIfPresent(String.self, forKey: .optOutFooter)
        breakdownColumn = try c.decodeIfPresent(String.self, forKey: .breakdownColumn) ?? "ward"
        carriers = try c.decodeIfPresent([String].self, forKey: .carriers) ?? []
        failover = try c.decodeIfPresent(Bool.self, forKey: .failover) ?? false
    }

    public init(id: String, name: String?, sender: String, templates: [TemplateText], segments: [SegmentInfo], exclusions: [SegmentInfo] = [],
                start: String, deadline: String, encoding: EncodingPolicy, maxSegments: Int?, allowedCountryCodes: [String],
                windows: [String] = ["07:00-22:00"], timeZone: String = SendWindows.defaultZone,
                priority: CampaignPriority = .bulk, weight: Int = 1, maxRate: Double? = nil, advertising: Bool = false, optOutFooter: String? = nil,
                breakdownColumn: String = "ward") {
        self.breakdownColumn = breakdownColumn
        self.advertising = advertising
        self.optOutFooter = optOutFooter
        self.windows = windows
        self.timeZone = timeZone
        self.priority = priority
        self.weight = weight
        self.maxRate = maxRate
        self.id = id
        self.name = name
        self.sender = sender
        self.templates = templates
        self.segments = segments
        self.exclusions = exclusions
        self.start = start
        self.deadline = deadline
        self.encoding = encoding
        self.maxSegments = maxSegments
        self.allowedCountryCodes = allowedCountryCodes
    }
}

/// How a segment file is laid out.
public enum SegmentFormat: String, Sendable, Codable, Equatable {
    /// RFC 4180 CSV with a header row; other columns are template variables.
    case csv
    /// One number per line, no header (`.txt` files by default).
    case lines

    static func guess(_ file: String) -> SegmentFormat {
        file.lowercased().hasSuffix(".txt") ? .lines : .csv
    }
}

/// How a campaign competes for carrier capacity.
public enum CampaignPriority: String, Sendable, Codable, Equatable {
    case bulk
    case urgent
}
