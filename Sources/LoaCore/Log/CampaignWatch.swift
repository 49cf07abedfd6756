/// The campaign transitions the clock makes, found by comparing what the dispatcher reads of the active campaigns
/// round after round, so the daemon's log can say each once: a campaign started sending, or left the active set
/// (completed, expired, cancelled or failed: the caller reads which, with its final counts, from the store).
///
/// Why a comparison and not a report from the store: the store moves campaigns in one SQL statement per kind of
/// move (``MessageStore/advanceCampaigns(now:limit:)``), and the dispatcher already reads the active set after it
/// on every refresh. Transitions the operator makes (pause, resume, cancel) are logged where the operator's request
/// is served; a campaign that goes from `paused` back to `running` is therefore not reported here.
///
/// The first look is the baseline: campaigns already running when the daemon starts are not reported as started.
public struct CampaignWatch: Sendable {
    public enum Event: Sendable, Equatable {
        /// The campaign is `running` and was `scheduled` (or not yet seen: committed with its start in the past).
        case started(String)
        /// The campaign is no longer `scheduled`, `running` or `paused`.
        case ended(String)
    }

    private var known: [String: CampaignState]?

    public init() {}

    /// What changed since the last look, given every active campaign's id and state now; ended campaigns first, in id order.
    public mutating func look(_ active: [(id: String, state: CampaignState)]) -> [Event] {
        let now = Dictionary(active.map { ($0.id, $0.state) }, uniquingKeysWith: { a, _ in a })
        defer { known = now }
        guard let known else { return [] }
        var events = known.keys.filter { now[$0] == nil }.sorted().map(Event.ended)
        for (id, state) in active where state == .running {
            let before = known[id]
            if before == nil || before == .scheduled { events.append(.started(id)) }
        }
        return events
    }

    /// How a campaign that left the active set is logged: its message and level by final state, and its counts as
    /// `messages.<state>` pairs (those above zero) with `messages.total`. Nil for `cancelled` (the operator's request
    /// logged it), `rejected` (the approver's request logged it), `failed` (logged with its reason when the dispatcher
    /// failed it) and states that are not final.
    public static func ending(_ state: CampaignState, counts: [String: Int64]) -> (level: Logger.Level, message: String, metadata: [String: String])? {
        var meta = ["campaign.state": state.rawValue, "messages.total": "\(counts.values.reduce(0, +))"]
        for (name, n) in counts where n > 0 { meta["messages." + name] = "\(n)" }
        switch state {
        case .completed: return (.notice, "campaign completed: nothing left to send", meta)
        case .expired: return (.warning, "campaign expired: its deadline passed with messages unsent", meta)
        case .failed, .cancelled, .rejected, .loading, .pendingApproval, .scheduled, .running, .paused: return nil
        }
    }
}
