import Foundation
import LoaCore

// A campaign's life: commit, pause, resume, cancel, the deadline, completion.

extension Store {
    /// Ends loading: the campaign becomes `scheduled` and the dispatcher may pick it up at its start.
    public func commitCampaign(_ id: String, generation: Int64? = nil) throws {
        try write { ctx in
            try ctx.requireGeneration(id, generation)
            try ctx.requireState(id, .loading)
            try ctx.setCampaignState(id, .scheduled)
        }
    }

    /// Applies an operator's pause, resume or cancel. Returns the new state; throws ``StoreError/conflict(_:)``
    /// when the campaign's state does not allow it. Cancelling turns queued messages into `cancelled` in the
    /// following ``advanceCampaigns(now:limit:)`` calls (in chunks, so a 10M campaign never blocks the writer).
    public func apply(_ event: CampaignEvent, to id: String, now t: UnixMillis) throws -> CampaignState {
        try write { ctx in
            var current: CampaignState?
            var startAt: UnixMillis = 0
            try ctx.statement("SELECT state, start_at FROM campaigns WHERE id = ?").query([.text(id)]) {
                current = CampaignState(rawValue: $0.text("state") ?? "")
                startAt = $0.int("start_at")
            }
            guard let current else { throw StoreError.notFound("campaign \(id)") }
            var e = event
            if case .resume = event { e = .resume(started: startAt <= t) }
            guard let next = CampaignLifecycle.next(current, on: e) else {
                throw StoreError.conflict("campaign \(id) is \(current.rawValue); that is not allowed now")
            }
            try ctx.setCampaignState(id, next)
            return next
        }
    }

    /// Removes a campaign that is still `loading` (an aborted submit), with all its rows.
    public func discardLoadingCampaign(_ id: String, generation: Int64? = nil) throws {
        try write { ctx in
            try ctx.requireGeneration(id, generation)
            try ctx.requireState(id, .loading)
            try ctx.deleteCampaignRows(id)
        }
    }

    /// Moves due `scheduled` campaigns to `running`, and active campaigns past their deadline: their queued
    /// messages to `expired` (at most `limit` per call; call again while it returns true), the campaign to `expired`.
    /// Running campaigns with nothing queued or in flight become `completed`. Returns true if more expiry work remains.
    public func advanceCampaigns(now: UnixMillis, limit: Int = 20_000) throws -> Bool {
        try write { try $0.advanceCampaigns(now: now, limit: limit) }
    }

    /// Active campaigns (scheduled or running) with the carriers that still have queued messages.
    public func activeWork() throws -> [ActiveCampaign] {
        try activeWorkAndFailures().active
    }

    /// The same, read with one decode of each stored spec, and the campaigns that read moved to `failed`: a stored
    /// spec that cannot be read or breaks ``CampaignRules`` (one stored by an older version, say) never reaches the
    /// dispatch arithmetic, and a restart does not meet it again. Each failed campaign comes with its reason.
    public func activeWorkAndFailures() throws -> (active: [ActiveCampaign], failed: [(id: String, reason: String)]) {
        try write { ctx in
            var failed: [(id: String, reason: String)] = []
            let active = try ctx.activeWork(failing: &failed)
            return (active, failed)
        }
    }
}

extension WriteContext {
    /// See ``Store/activeWorkAndFailures()``: campaigns whose spec cannot be sent from go to `failed` and `bad`.
    func activeWork(failing bad: inout [(id: String, reason: String)]) throws -> [ActiveCampaign] {
        var out: [ActiveCampaign] = []
        try statement("SELECT id, state, sender, start_at, deadline_at, spec FROM campaigns WHERE state IN ('scheduled', 'running', 'paused') ORDER BY created_at, id").query { r in
            let id = r.text("id") ?? ""
            guard let text = r.text("spec"), let spec = try? JSONDecoder().decode(CampaignSubmission.self, from: Data(text.utf8)) else {
                bad.append((id, "the stored campaign cannot be read"))
                return
            }
            let issues = CampaignRules.check(spec, knownCarriers: nil, templates: false)
            guard issues.isEmpty else {
                bad.append((id, "the stored campaign breaks the rules: " + issues.map(\.description).joined(separator: "; ")))
                return
            }
            out.append(ActiveCampaign(id: id, state: CampaignState(rawValue: r.text("state") ?? "") ?? .scheduled,
                                      sender: r.text("sender") ?? "", startAt: r.int("start_at"), deadlineAt: r.int("deadline_at"), carriers: [],
                                      windows: spec.sendWindows, priority: spec.priority, weight: spec.weight, maxRate: spec.maxRate,
                                      allowedCarriers: spec.carriers, failover: spec.failover))
        }
        for (id, reason) in bad {
            try statement("UPDATE campaigns SET state = ?, failure = ?, updated_at = ? WHERE id = ?")
                .run([.text(CampaignState.failed.rawValue), .text(reason), .int(now), .text(id)])
        }
        let carriers = try statement("SELECT carrier FROM counts WHERE campaign_id = ? AND state = \(MessageState.queued.rawValue) AND n > 0 ORDER BY carrier")
        for i in out.indices {
            try carriers.query([.text(out[i].id)]) { out[i].carriers.append($0.text("carrier") ?? "") }
        }
        return out
    }

    /// Ends up to `budget` queued messages of a campaign in `state` (expired or cancelled); returns how many.
    private func endQueued(campaign id: String, to state: MessageState, event: String, detail: String, budget: Int) throws -> Int {
        var rows: [(Int64, String?, String, Int)] = []
        // Not those in flight: their answer decides them.
        try queuedRows(campaign: id, limit: budget) { rows.append(($0.int("id"), $0.text("phone"), $0.text("carrier") ?? "", Int($0.int("attempts")))) }
        let upd = try statement("UPDATE messages SET state = ?, detail = ?, updated_at = ? WHERE id = ?")
        for (mid, phone, carrier, attempts) in rows {
            try upd.run([.int(Int64(state.rawValue)), .text(detail), .int(now), .int(mid)])
            count(campaign: id, carrier: carrier, from: .queued, to: state)
            try emit(DeliveryEvent(time: now, campaign: id, message: mid, recipient: phone, carrier: carrier, event: event,
                                   status: state.name, attempt: attempts, detail: detail))
        }
        return rows.count
    }

    func advanceCampaigns(now t: UnixMillis, limit: Int) throws -> Bool {
        try statement("UPDATE campaigns SET state = 'running', updated_at = ? WHERE state = 'scheduled' AND start_at <= ? AND deadline_at > ?")
            .run([.int(t), .int(t), .int(t)])
        var budget = limit
        // Cancelled (or rejected by an approver): what was still queued is cancelled, never sent.
        var cancelled: [(String, String)] = []
        try statement("""
            SELECT DISTINCT c.id, c.state FROM campaigns c JOIN counts n ON n.campaign_id = c.id
            WHERE c.state IN ('cancelled', 'rejected') AND n.state = \(MessageState.queued.rawValue) AND n.n > 0
            """).query { cancelled.append(($0.text("id") ?? "", $0.text("state") ?? "")) }
        for (id, state) in cancelled {
            let detail = state == "rejected" ? "campaign rejected by an approver" : "campaign cancelled before sending"
            budget -= try endQueued(campaign: id, to: .cancelled, event: "cancelled", detail: detail, budget: budget)
            if budget <= 0 { return true }
        }
        // Failed: what was still queued is cancelled, never sent, with the campaign's reason.
        var failed: [(String, String)] = []
        try statement("""
            SELECT DISTINCT c.id, c.failure FROM campaigns c JOIN counts n ON n.campaign_id = c.id
            WHERE c.state = 'failed' AND n.state = \(MessageState.queued.rawValue) AND n.n > 0
            """).query { failed.append(($0.text("id") ?? "", $0.text("failure") ?? "")) }
        for (id, reason) in failed {
            budget -= try endQueued(campaign: id, to: .cancelled, event: "cancelled", detail: "campaign failed: \(reason)", budget: budget)
            if budget <= 0 { return true }
        }
        // Past the deadline: expire what was never sent (paused campaigns too).
        var due: [String] = []
        try statement("SELECT id FROM campaigns WHERE state IN ('pending-approval', 'scheduled', 'running', 'paused') AND deadline_at <= ?").query([.int(t)]) { due.append($0.text("id") ?? "") }
        for id in due {
            budget -= try endQueued(campaign: id, to: .expired, event: "expired", detail: "deadline passed before sending", budget: budget)
            if budget <= 0 { return true }
            var inFlight: Int64 = 0
            try statement("SELECT COALESCE(SUM(n), 0) AS n FROM counts WHERE campaign_id = ? AND state = \(MessageState.sending.rawValue)")
                .query([.text(id)]) { inFlight = $0.int("n") }
            if inFlight == 0 { try setCampaignState(id, .expired) }
        }
        // Contacts older than the longest policy window (7 days) no longer count.
        try statement("DELETE FROM contacts WHERE sent_at < ?").run([.int(t - 7 * 86_400_000)])
        // Running campaigns with nothing left to send are complete (receipts may still arrive).
        try statement("""
            UPDATE campaigns SET state = 'completed', updated_at = ? WHERE state = 'running' AND NOT EXISTS
            (SELECT 1 FROM counts WHERE counts.campaign_id = campaigns.id
             AND counts.state IN (\(MessageState.queued.rawValue), \(MessageState.sending.rawValue)) AND counts.n > 0)
            """).run([.int(t)])
        return false
    }
}
