/// Where one recipient's message is. The transitions are written down once, in ``MessageLifecycle``.
///
/// ```
///            claim             accepted            receipt 1
///  queued ─────────▶ sending ──────────▶ sent ───────────────▶ delivered
///    ▲ │               │ │ │               │  receipt 2/16
///    │ │ deadline      │ │ └─ permanent ─▶ failed ◀───────────┘
///    │ ▼               │ └─ crash ───────▶ unknown ──receipt──▶ delivered | failed
///  expired   temporary │
///    ▲─────────────────┘ (back to queued with a later not_before, or expired past the deadline)
///  rejected: a bad number at ingest, never queued. suppressed: opted out or excluded (at ingest, or queued → suppressed before sending).
/// ```
/// A receipt may overtake the send's own answer, so `sending` and `queued` accept final receipts too.
public enum MessageState: Int, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case queued = 0
    case sending = 1
    case sent = 2
    case delivered = 3
    case failed = 4
    case rejected = 5
    case expired = 6
    case unknown = 7
    case cancelled = 8
    /// On the global opt-out list or the campaign's exclusion list (at submit, or found just before sending).
    case suppressed = 9

    public var name: String {
        switch self {
        case .queued: "queued"
        case .sending: "sending"
        case .sent: "sent"
        case .delivered: "delivered"
        case .failed: "failed"
        case .rejected: "rejected"
        case .expired: "expired"
        case .unknown: "unknown"
        case .cancelled: "cancelled"
        case .suppressed: "suppressed"
        }
    }

    public var description: String { name }

    public init?(name: String) {
        guard let s = MessageState.allCases.first(where: { $0.name == name }) else { return nil }
        self = s
    }

    /// A state no event of Loa's own moves it out of. `unknown` is reported as final but a late receipt may still settle it.
    public var isFinal: Bool {
        switch self {
        case .delivered, .failed, .rejected, .expired, .cancelled, .unknown, .suppressed: true
        case .queued, .sending, .sent: false
        }
    }
}

/// What a gateway said about a message after accepting it, ranked so receipts only move forward.
public enum ReceiptStatus: Int, Sendable, CaseIterable, Codable {
    /// Buffered at the SMSC (Kannel %d 4, Jasmin ESME_ROK at level 1).
    case buffered = 1
    /// The SMSC accepted the submit (Kannel %d 8).
    case smscAccepted = 2
    /// Delivered to the handset (Kannel %d 1, DELIVRD).
    case delivered = 10
    /// Not delivered (Kannel %d 2, UNDELIV/EXPIRED/REJECTD).
    case undelivered = 11
    /// The SMSC refused the submit (Kannel %d 16).
    case smscRejected = 12

    public var isFinal: Bool { rawValue >= 10 }

    public var name: String {
        switch self {
        case .buffered: "buffered"
        case .smscAccepted: "smsc-accepted"
        case .delivered: "delivered"
        case .undelivered: "undelivered"
        case .smscRejected: "smsc-rejected"
        }
    }
}

/// Everything that can happen to a message.
public enum MessageEvent: Sendable, Equatable {
    /// The dispatcher took it for sending (recorded before the request leaves).
    case claim
    /// The gateway accepted it.
    case accepted
    /// A temporary failure or throttling answer; `retry` is false when attempts or time ran out.
    case temporaryFailure(retry: Bool, pastDeadline: Bool)
    /// The gateway refused it for good.
    case permanentFailure
    /// A delivery receipt.
    case receipt(ReceiptStatus)
    /// The deadline passed before it was sent.
    case expire
    /// The daemon restarted and found it in `sending`: the request may or may not have reached the gateway.
    case crashRecovered
    /// The campaign was cancelled.
    case cancel
    /// The number was found on the opt-out or exclusion list just before sending.
    case suppress
    /// `sent` for too long without a final receipt.
    case receiptTimeout
}

/// The one place the message state machine is written.
public enum MessageLifecycle {
    /// The state after `event`, or nil when the event does not change the state (repeated or stale events).
    ///
    /// | from \ event | claim | accepted | temp (retry) | temp (no retry) | permanent | final receipt | intermediate receipt | expire | crash | cancel | receipt timeout |
    /// |---|---|---|---|---|---|---|---|---|---|---|---|
    /// | queued | sending | – | – | – | – | delivered/failed | – | expired | – | cancelled | – |
    /// | sending | – | sent | queued | failed or expired | failed | delivered/failed | sent | – | unknown | – | – |
    /// | sent | – | – | – | – | – | delivered/failed | – | – | – | – | unknown |
    /// | unknown | – | – | – | – | – | delivered/failed | – | – | – | – | – |
    /// | final | – | – | – | – | – | – | – | – | – | – | – |
    public static func next(_ state: MessageState, on event: MessageEvent) -> MessageState? {
        switch (state, event) {
        case (.queued, .claim): return .sending
        case (.queued, .expire): return .expired
        case (.queued, .cancel): return .cancelled
        case (.queued, .suppress): return .suppressed
        case (.sending, .accepted): return .sent
        case (.sending, .temporaryFailure(let retry, let pastDeadline)):
            if retry { return .queued }
            return pastDeadline ? .expired : .failed
        case (.sending, .permanentFailure): return .failed
        case (.sending, .crashRecovered): return .unknown
        case (.sent, .receiptTimeout): return .unknown
        case (.queued, .receipt(let r)), (.sending, .receipt(let r)), (.sent, .receipt(let r)), (.unknown, .receipt(let r)):
            if r.isFinal { return r == .delivered ? .delivered : .failed }
            return state == .sending ? .sent : nil
        default: return nil
        }
    }
}
