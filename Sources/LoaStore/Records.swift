import LoaCore

/// A campaign and its counters, as the operator API shows it.
public struct CampaignRecord: Sendable, Codable, Equatable {
    public var id: String
    public var name: String?
    public var state: CampaignState
    public var sender: String
    public var startAt: UnixMillis
    public var deadlineAt: UnixMillis
    public var createdAt: UnixMillis
    /// Data rows read from the segments.
    public var rows: Int64
    public var accepted: Int64
    public var rejected: Int64
    public var duplicates: Int64
    /// SMS parts the accepted messages take: the cost.
    public var segmentsTotal: Int64
    /// Messages per state name.
    public var states: [String: Int64]
    /// Messages per carrier, then per state name.
    public var carriers: [String: [String: Int64]]
    /// Rows not sent, by reason code (rejection codes, `duplicate`, `opt-out`, `excluded`).
    public var reasons: [String: Int64] = [:]
    public var suppressed: Int64 = 0
    /// Messages in flight when the daemon stopped without draining (SIGKILL, a crash, a second signal), made
    /// `unknown` at the next start and never resent; summed over every start.
    public var recoveredUnknown: Int64 = 0
    public var spec: CampaignSubmission?
    /// Drawn at creation: uploads and the commit name it, so none meant for a discarded campaign reaches a new one.
    public var generation: Int64 = 0
    /// Why the campaign `failed`.
    public var failure: String?
    /// When its state last changed (for a finished campaign: when it finished).
    public var updatedAt: UnixMillis = 0
    /// Who submitted it and who approved it (two-person approval; nil before, or for campaigns from before users).
    public var submittedBy: String?
    public var approvedBy: String?
}

/// What the store found and repaired when it opened: the daemon logs it at start and shows it in `/metrics`.
public struct RecoveryReport: Sendable, Equatable {
    /// Messages a stop left in flight (`sending`), now `unknown` and never resent: in all, and per campaign.
    public var unknownMessages: Int64 = 0
    public var unknownByCampaign: [String: Int64] = [:]
    /// A torn last line (a crash in the middle of an append) cut from the delivery log: 0 or 1.
    public var tornLinesCut = 0
    /// Whole lines of a transaction that never committed (a crash between the append and the COMMIT), cut.
    public var uncommittedLinesCut = 0
    /// Lines a store written by an older version left in its outbox, appended to the log.
    public var outboxLinesWritten = 0
    /// How long the recovery took: the log's repair and the in-flight scan, in seconds.
    public var seconds: Double = 0

    public init() {}

    /// Every line the log's repair touched: cut (torn or uncommitted) or written.
    public var logLinesRepaired: Int { tornLinesCut + uncommittedLinesCut + outboxLinesWritten }
}

/// A message claimed for sending: everything an adapter needs.
public struct OutgoingMessage: Sendable, Equatable {
    public var id: Int64
    public var campaign: String
    public var phone: String
    public var carrier: String
    public var text: String
    public var encoding: SMSEncoding
    public var segments: Int
    /// 1 for the first try.
    public var attempt: Int
}

/// What the dispatcher decided after a send attempt.
public enum SendResult: Sendable, Equatable {
    /// `partIDs`: the gateway's ids of the message's parts, when its answer named them one by one.
    case accepted(gatewayID: String?, detail: String?, partIDs: [String] = [])
    case retry(notBefore: UnixMillis, detail: String)
    /// The gateway could not be reached: back to the queue without spending the attempt.
    case requeue(notBefore: UnixMillis, detail: String)
    case failed(detail: String)
    case expired(detail: String)
    case unknown(detail: String)
}

public struct SendOutcome: Sendable, Equatable {
    public var id: Int64
    public var result: SendResult
    /// The message as it was claimed, when the caller has it: recording then skips reading the row back
    /// while the row is still as claimed (`sending`, same attempt).
    public var claimed: OutgoingMessage?
    public init(id: Int64, result: SendResult) {
        self.id = id
        self.result = result
    }

    public init(_ message: OutgoingMessage, result: SendResult) {
        self.id = message.id
        self.result = result
        self.claimed = message
    }
}

/// A delivery receipt as the receipt endpoint parsed it.
public struct ReceiptUpdate: Sendable, Equatable {
    public var carrier: String
    /// Loa's message id; 0 when the receipt names the message by ``gatewayKey`` only.
    public var messageID: Int64
    /// The gateway's id for the message (as its send answer gave it), when the receipt carries no Loa id.
    public var gatewayKey: String?
    public var status: ReceiptStatus
    public var gatewayID: String?
    public var detail: String?
    public init(carrier: String, messageID: Int64, status: ReceiptStatus, gatewayID: String? = nil, detail: String? = nil) {
        self.carrier = carrier
        self.messageID = messageID
        self.status = status
        self.gatewayID = gatewayID
        self.detail = detail
    }

    /// A receipt that names its message by the gateway's id.
    public init(carrier: String, gatewayKey: String, status: ReceiptStatus, detail: String? = nil) {
        self.carrier = carrier
        self.messageID = 0
        self.gatewayKey = gatewayKey
        self.status = status
        self.gatewayID = gatewayKey
        self.detail = detail
    }
}

public enum ReceiptResult: String, Sendable, Equatable {
    /// The state or the receipt history moved forward.
    case applied
    /// Nothing new: a repeat or a stale receipt.
    case duplicate
    case notFound
    /// The message was sent through another carrier.
    case wrongCarrier
    /// Keyed by a gateway id no message has yet: kept, and applied when the send answer naming that id is recorded.
    case pending
}

/// One segment row after normalization and rendering. `group`: the value of the campaign's breakdown column (the
/// ward); `network`: the number's mobile network (``Router/network(of:)``), for the preview totals.
public enum IngestRow: Sendable, Equatable {
    case accepted(phone: String, carrier: String, text: String, encoding: SMSEncoding, segments: Int, source: String, line: Int, raw: String,
                  group: String? = nil, network: String? = nil)
    case rejected(raw: String, code: String, message: String, source: String, line: Int)
}

public struct IngestCounts: Sendable, Codable, Equatable {
    public var rows: Int64 = 0
    public var accepted: Int64 = 0
    public var rejected: Int64 = 0
    public var duplicates: Int64 = 0
    /// On the global opt-out list or the campaign's exclusion list.
    public var suppressed: Int64 = 0
    public var segments: Int64 = 0
    public init() {}

    public mutating func add(_ o: IngestCounts) {
        rows += o.rows
        accepted += o.accepted
        rejected += o.rejected
        duplicates += o.duplicates
        suppressed += o.suppressed
        segments += o.segments
    }
}

/// What `loa preview` shows of a campaign, as the store counted it while the segments were ingested: the totals
/// (``PreviewTotals``, the same rules as `loa preview`) and the first rendered messages. Kept with the campaign
/// (`GET /api/v1/campaigns/{id}/preview`); it does not move as the campaign sends.
public struct CampaignPreview: Sendable, Codable, Equatable {
    /// One rendered message, as the segment row made it (the number masked).
    public struct Sample: Sendable, Codable, Equatable {
        public var phone: String
        public var carrier: String
        public var encoding: SMSEncoding
        public var parts: Int
        public var text: String
        public var source: String
        public var line: Int
    }

    public var totals = PreviewTotals()
    public var samples: [Sample] = []
    /// Samples kept: as many as `loa preview` shows by default.
    public static let sampleLimit = 5

    public init() {}

    /// Counts one ingested row (`suppression`: why a new number is not sent, nil when it is; `duplicate`: its
    /// number was in the campaign already) and keeps it as a sample while there are fewer than ``sampleLimit``.
    /// A sample is taken before the duplicate and suppression checks, as `loa preview` takes its samples.
    public mutating func count(_ row: IngestRow, duplicate: Bool, suppression: PreviewTotals.Suppression?) {
        switch row {
        case .accepted(let phone, let carrier, let text, let encoding, let segments, let source, let line, _, let group, let network):
            if samples.count < Self.sampleLimit {
                samples.append(Sample(phone: PhoneNumber.mask(phone), carrier: carrier, encoding: encoding, parts: segments, text: text,
                                      source: source, line: line))
            }
            if duplicate {
                totals.duplicate()
            } else if let suppression {
                totals.suppressed(suppression)
            } else {
                totals.recipient(carrier: carrier, network: network, ward: group, encoding: encoding, parts: segments)
            }
        case .rejected(_, let code, _, _, _):
            totals.rejected(code)
        }
    }
}

/// One row of a campaign's rejects report: a segment row that will not be sent, and why.
public struct RejectRow: Sendable, Equatable {
    public var source: String
    public var line: Int
    public var raw: String
    public var reason: String
    public var detail: String
}

/// One recipient's line in a campaign report.
public struct ReportRow: Sendable, Equatable {
    public var id: Int64
    public var phone: String
    public var carrier: String
    public var state: String
    public var reason: String
    public var attempts: Int
    public var updatedAt: UnixMillis
    public var source: String
    public var line: Int
    public var group: String
    public var gatewayID: String
}

/// What a campaign report draws: final states, reasons, deliveries over time per carrier, and a breakdown.
public struct ReportData: Sendable, Codable, Equatable {
    public struct Bucket: Sendable, Codable, Equatable {
        public var start: UnixMillis
        public var carrier: String
        public var delivered: Int64
    }
    public struct Group: Sendable, Codable, Equatable {
        public var name: String
        public var states: [String: Int64]
    }
    /// Failed and expired messages by reason code and class (``FailureReason``), and rows not sent by reason.
    public struct Reason: Sendable, Codable, Equatable {
        public var code: String
        public var `class`: String
        public var count: Int64
    }
    public var bucketMillis: Int64
    public var timeline: [Bucket]
    /// Counts by reason code (the keys of ``reasonGroups`` without their class), for older clients.
    public var reasons: [String: Int64]
    public var groups: [Group]
    /// The same counts with their class, largest first: what the report's reasons chart draws.
    public var reasonGroups: [Reason] = []
}

/// A campaign the dispatcher should look at.
public struct ActiveCampaign: Sendable, Equatable {
    public var id: String
    public var state: CampaignState
    public var sender: String
    public var startAt: UnixMillis
    public var deadlineAt: UnixMillis
    /// Carriers with queued messages (whether or not their retry time has come).
    public var carriers: [String]
    public var windows: SendWindows
    public var priority: CampaignPriority
    public var weight: Int
    public var maxRate: Double?
    /// The carriers the campaign may use (empty: any).
    public var allowedCarriers: [String] = []
    /// Whether its messages may move to another allowed carrier while theirs is down.
    public var failover: Bool = false
}

/// The report's reasons as every store counts them: rows not sent by their reason code; failed and expired messages
/// by a code made from the gateway's words (``FailureReason/code(_:)``: ids and numbers out) and a class, never by the
/// raw text, which carries ids.
struct ReasonTally {
    private var coded: [String: (cls: String, n: Int64)] = [:]

    /// `n` rows not sent for `reason` (the store's `reason_counts`).
    mutating func notSent(_ reason: String, _ n: Int64) {
        coded[reason, default: (FailureReason.Class.notSent.rawValue, 0)].n += n
    }

    /// `n` messages that ended `failed` or `expired` with the gateway's words `detail`.
    mutating func ended(state raw: Int64, accepted: Bool, detail: String, _ n: Int64) {
        let state = (MessageState(rawValue: Int(raw)) ?? .expired).name
        let cls = FailureReason.classify(state: state, accepted: accepted)
        let words = FailureReason.code(detail)
        let key = words.isEmpty ? state : words.hasPrefix(state) ? words : state + ": " + words
        coded[key == "failed" || key == "expired" ? key + ": " + key : key, default: (cls.rawValue, 0)].n += n
    }

    /// Counts by code, for older clients.
    var counts: [String: Int64] { coded.mapValues(\.n) }

    /// The same with their class, largest first.
    var groups: [ReportData.Reason] {
        coded.map { ReportData.Reason(code: $0.key, class: $0.value.cls, count: $0.value.n) }
            .sorted { $0.count != $1.count ? $0.count > $1.count : $0.code < $1.code }
    }
}
