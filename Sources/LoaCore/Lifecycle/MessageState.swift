/// Where one recipient's message is. The transitions are written down once, in ``MessageLifecycle``.
///
/// ```
///            claim             accepted            receipt 1
///  queued ─────────▶ sending ──────────▶ sent ───────────────▶ delivered
///    ▲ │               │ │ │               │ │ receipt 2/16
///    │ │ deadline      │ │ └─ permanent ─▶ failed ◀───────────┘ │ receipt 34 (EXPIRED)
///    │ ▼               │ └─ crash ───────▶ unknown              └──────────────▶ expired
///    │                 │                     └──receipt──▶ delivered | failed | expired
///  expired   temporary │
///    ▲─────────────────┘ (back to queued with a later not_before, or expired past the deadline)
///  rejected: a bad number at ingest, never queued. suppressed: opted out or excluded (at ingest, or queued → suppressed before sending).
/// ```
/// A receipt may overtake the send's own answer, so `sending` and `queued` accept final receipts too.
/// `expired` is reached two ways: the campaign's deadline passed before Loa sent it, or the network dropped it
/// when the validity period Loa passed ran out (a final `expired` receipt); the reason says which.
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

/// What a gateway said about a message after accepting it. The raw values are stored (`receipt_rank`,
/// `receipts.status`): never renumber them.
///
/// Intermediate statuses (below 10) are events: each distinct one is logged, in whatever order it comes (an
/// SMSC may say ENROUTE after Kannel's own "accepted by the SMSC"). Final statuses (10 and above) end the
/// message (or the part, for a multi-part message: see ``MessageParts``); an exact repeat of any status for the
/// same message or part is a duplicate.
///
/// | status | Kannel `%d` (bits) | SMPP `stat:` | Jasmin | message state |
/// |---|---|---|---|---|
/// | buffered | 4 | ENROUTE, ACCEPTD (Kannel), ACKED, BUFFRED | level 2 ENROUTE | sent (intermediate) |
/// | smscAccepted | 8 (`%A` "ACK/") | – | level 1 ESME_ROK, level 2 ACCEPTD | sent (intermediate) |
/// | delivered | 1 | DELIVRD | DELIVRD | delivered |
/// | undelivered | 2, 66 (2+64) | UNDELIV, DELETED, UNKNOWN, REJECTD and unknown words | UNDELIV, DELETED, UNKNOWN | failed |
/// | smscRejected | 16 (`%A` "NACK/…") | – | level 1 ESME_R…, REJECTD | failed |
/// | expired | 34 (2+32), or 2 with EXPIRED | EXPIRED | EXPIRED | expired |
public enum ReceiptStatus: Int, Sendable, CaseIterable, Codable {
    /// Buffered at the SMSC, on its way (Kannel %d 4: SMPP ENROUTE or ACCEPTD).
    case buffered = 1
    /// The SMSC accepted the submit (Kannel %d 8, Jasmin ESME_ROK at level 1).
    case smscAccepted = 2
    /// Delivered to the handset (Kannel %d 1, DELIVRD).
    case delivered = 10
    /// Not delivered (Kannel %d 2: UNDELIV, DELETED, UNKNOWN, REJECTD).
    case undelivered = 11
    /// The SMSC refused the submit (Kannel %d 16).
    case smscRejected = 12
    /// The network dropped the message when its validity period ended (Kannel %d 34 = `DLR_EXPIRED` 0x20 |
    /// `DLR_FAIL`, SMPP `stat:EXPIRED`). Its own final state, ``MessageState/expired``: the deadline held at the
    /// handset, which is not the same as a failure of the number.
    case expired = 13

    public var isFinal: Bool { rawValue >= 10 }

    public var name: String {
        switch self {
        case .buffered: "buffered"
        case .smscAccepted: "smsc-accepted"
        case .delivered: "delivered"
        case .undelivered: "undelivered"
        case .smscRejected: "smsc-rejected"
        case .expired: "expired"
        }
    }

    /// The message state a final receipt ends in (nil for intermediate ones).
    public var finalState: MessageState? {
        switch self {
        case .buffered, .smscAccepted: nil
        case .delivered: .delivered
        case .undelivered, .smscRejected: .failed
        case .expired: .expired
        }
    }

    /// The reason stored with a message this receipt ends: the gateway's words (e.g. `EXPIRED err 000`), with
    /// what they mean where Loa's own word would mislead (an `expired` message was not dropped by Loa's deadline
    /// but by the network at the end of the validity period). Never ids or dates, so reports group by it.
    public func reason(_ detail: String?) -> String? {
        switch self {
        case .expired: "expired at the network (validity ended)" + (detail.map { ": \($0)" } ?? "")
        default: detail
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
    /// | queued | sending | – | – | – | – | delivered/failed/expired | – | expired | – | cancelled | – |
    /// | sending | – | sent | queued | failed or expired | failed | delivered/failed/expired | sent | – | unknown | – | – |
    /// | sent | – | – | – | – | – | delivered/failed/expired | – | – | – | – | unknown |
    /// | unknown | – | – | – | – | – | delivered/failed/expired | – | – | – | – | – |
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
            if let final = r.finalState { return final }
            return state == .sending ? .sent : nil
        default: return nil
        }
    }
}

/// How the receipts of a multi-part message's parts decide the message's state: the rule, written once (the
/// store applies it, ``MessageLifecycle`` then moves the message).
///
/// Gateways report multi-part messages two ways. Kannel in front of an SMPP SMSC sends each part as its own
/// submit and each part's receipts with that part's SMSC id in `%F` (its "accepted by the SMSC", 8, comes once,
/// with the last part's id); a generic gateway may name each part's id in its send answer (`partIDs`). Jasmin,
/// Kannel's fake SMSC (one report per message: its parts share one id), Kannel over an HTTP SMSC that gives no
/// id, and most HTTP providers report once for the whole message. Loa cannot be told which kind a receipt
/// comes from, so it reads it from the ids:
///
/// - A receipt speaks for **the whole message** when the message has one segment, when it carries no gateway
///   id, or when its id is the message's own gateway id (the send answer's) and not a part id the answer named.
///   Otherwise it speaks for **the part** with that id.
/// - The message **has parts that report separately** once the send answer named part ids, or its receipts
///   have shown two distinct part ids (Kannel's 8 carries the last part's id, a part's ENROUTE or final report
///   its own). Until then a part's receipt counts for the whole message: a gateway that reports once is never
///   kept waiting for parts it will not report.
/// - A part's **failed or expired** receipt ends the message at once (failed or expired); with parts that report
///   separately the reason says how many parts there are (`UNDELIV err 001 (a part of 3)`; the part's id goes to
///   the delivery log, not the reason, so reports group).
/// - With parts that report separately, a part's **delivered** receipt ends the message delivered only when as
///   many distinct parts reported delivered as the message has parts (its `segments`, or the number of part ids
///   the answer named, whichever is larger). Until then the message stays `sent`, the receipt logged as an event.
///
/// What this gets wrong: a per-part gateway whose first part is delivered before any other part's id was seen
/// (no 8, no ENROUTE, no part ids in the answer) ends the message delivered on that part; a later failed part is
/// then logged and the message stays delivered.
public enum MessageParts {
    /// The part a receipt speaks for, or nil for the whole message (see the rules above).
    /// - Parameters:
    ///   - receiptID: the gateway id the receipt carries.
    ///   - segments: the message's part count as Loa counted it.
    ///   - messageGatewayID: the id the send answer (or an earlier whole-message receipt) gave the message.
    ///   - namedPart: the receipt's id is one the send answer named as a part id.
    public static func part(of receiptID: String?, segments: Int, messageGatewayID: String?, namedPart: Bool) -> String? {
        guard let id = receiptID, !id.isEmpty else { return nil }
        if namedPart { return id }
        guard segments > 1, id != messageGatewayID else { return nil }
        return id
    }

    /// How many parts must report delivered: 1 (the receipt counts for the whole message) until the parts are
    /// known to report separately, then the message's segments or the part ids the answer named, if more.
    /// - Parameters:
    ///   - segments: the message's part count as Loa counted it.
    ///   - knownParts: distinct part ids seen in receipts or named by the send answer, this receipt's included.
    ///   - namedParts: part ids the send answer named.
    public static func expectedParts(segments: Int, knownParts: Int, namedParts: Int) -> Int {
        namedParts > 0 || knownParts >= 2 ? max(segments, namedParts, 1) : 1
    }

    /// The receipt status the whole message takes after a part's receipt, or nil when the message is not final
    /// yet (the part's receipt is an event of the message, like an intermediate one).
    /// - Parameters:
    ///   - status: the part's receipt.
    ///   - deliveredParts: distinct parts that reported delivered, this one included.
    ///   - expectedParts: ``expectedParts(segments:knownParts:namedParts:)``.
    public static func messageStatus(after status: ReceiptStatus, deliveredParts: Int, expectedParts: Int) -> ReceiptStatus? {
        switch status {
        case .buffered, .smscAccepted: nil
        case .delivered: deliveredParts >= max(1, expectedParts) ? .delivered : nil
        case .undelivered, .smscRejected, .expired: status
        }
    }

    /// The reason stored when a part's receipt ends the message: the part's words, and how many parts there are
    /// when they report separately.
    public static func reason(_ detail: String?, status: ReceiptStatus, parts: Int) -> String? {
        parts > 1 ? (detail ?? status.name) + " (a part of \(parts))" : detail
    }
}
