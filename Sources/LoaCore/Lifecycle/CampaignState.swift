/// Where a campaign is. The transitions are written down once, in ``CampaignLifecycle``.
///
/// ```
///  loading ─submit─▶ pending-approval ─approve─▶ scheduled      (two-person approval, on by default)
///                      │ reject                  ▲
///                      ▼                         │ (approval off: loading ─commit─▶ scheduled)
///                    rejected                    │
///  loading ─commit─▶ scheduled ─start time─▶ running ─nothing left─▶ completed
///                      │  ▲                   │  ▲
///                pause │  │ resume      pause │  │ resume
///                      ▼  │                   ▼  │
///                      paused ◀───────────────┘──┘
///  scheduled | running | paused ─cancel─▶ cancelled     (queued messages become `cancelled`)
///  pending-approval | scheduled | running | paused ─deadline─▶ expired  (queued messages become `expired`)
///  scheduled | running | paused ─fail─▶ failed           (its stored spec cannot be sent from; queued messages
///                                                        become `cancelled` with the reason; other campaigns go on)
/// ```
public enum CampaignState: String, Sendable, Codable, CaseIterable {
    /// Created; segments are being uploaded. Never sent from.
    case loading
    /// Submitted; waits for an approver other than its submitter and sends nothing until then.
    case pendingApproval = "pending-approval"
    /// Committed (and approved, when approval is required), waiting for its start time.
    case scheduled
    /// Sending (inside its windows).
    case running
    /// Held by an operator; resumes where it stopped.
    case paused
    /// Nothing left to send (receipts may still arrive).
    case completed
    /// Stopped by an operator; its queued messages became `cancelled`.
    case cancelled
    /// An approver refused it (with a comment in the audit trail); its queued messages became `cancelled`.
    /// A planner may submit it again, changed, with `loa campaign submit --replace`.
    case rejected
    /// The deadline passed; unsent messages expired.
    case expired
    /// Loa could not go on with it (a stored campaign that breaks the rules of ``CampaignRules``, say one
    /// accepted by an older version); its queued messages were cancelled and the reason is kept.
    case failed

    /// States in which the campaign still owns queued messages.
    public var isActive: Bool { self == .scheduled || self == .running || self == .paused }
    public var isFinal: Bool { self == .completed || self == .cancelled || self == .expired || self == .failed || self == .rejected }
}

/// Events an operator or the clock applies to a campaign.
public enum CampaignEvent: Sendable, Equatable {
    case commit
    /// The end of loading when approval is required: the campaign waits for an approver.
    case submit
    case approve
    case reject
    case start
    case pause
    /// `started` tells whether the start time has passed.
    case resume(started: Bool)
    case cancel
    case deadline
    case drained
    case fail
}

/// The one place the campaign state machine is written.
public enum CampaignLifecycle {
    /// The state after `event`, or nil when the event is not allowed in `state`.
    public static func next(_ state: CampaignState, on event: CampaignEvent) -> CampaignState? {
        switch (state, event) {
        case (.loading, .commit): .scheduled
        case (.loading, .submit): .pendingApproval
        case (.pendingApproval, .approve): .scheduled
        case (.pendingApproval, .reject): .rejected
        case (.pendingApproval, .deadline): .expired
        case (.scheduled, .start): .running
        case (.scheduled, .pause), (.running, .pause): .paused
        case (.paused, .resume(let started)): started ? .running : .scheduled
        case (.scheduled, .cancel), (.running, .cancel), (.paused, .cancel): .cancelled
        case (.scheduled, .deadline), (.running, .deadline), (.paused, .deadline): .expired
        case (.running, .drained): .completed
        case (.scheduled, .fail), (.running, .fail), (.paused, .fail): .failed
        default: nil
        }
    }
}
