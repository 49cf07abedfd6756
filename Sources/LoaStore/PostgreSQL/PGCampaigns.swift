import Foundation
import LoaCore

// Loading a campaign and its lifecycle on PostgreSQL: the same rules as SQLite's Ingest.swift and CampaignLifecycle.swift.

extension PostgresStore {
    @discardableResult
    public func createCampaign(_ submission: CampaignSubmission, startAt: UnixMillis, deadlineAt: UnixMillis) throws -> Int64 {
        try write { ctx in
            var exists = false
            try ctx.query("SELECT 1 AS one FROM campaigns WHERE id = ?", [.text(submission.id)]) { _ in exists = true }
            if exists { throw StoreError.conflict("campaign \(submission.id) already exists") }
            let spec = String(decoding: try JSONEncoder().encode(submission), as: UTF8.self)
            let generation = Int64.random(in: 1...Int64.max)
            try ctx.run("""
                INSERT INTO campaigns(id, state, spec, sender, start_at, deadline_at, created_at, updated_at, generation)
                VALUES(?, 'loading', ?, ?, ?, ?, ?, ?, ?)
                """, [.text(submission.id), .text(spec), .text(submission.sender), .int(startAt), .int(deadlineAt), .int(ctx.now), .int(ctx.now),
                      .int(generation)])
            return generation
        }
    }

    public func ingest(campaign: String, generation: Int64?, rows: [IngestRow]) throws -> IngestCounts {
        try write { ctx in
            try ctx.requireGeneration(campaign, generation)
            return try ctx.ingest(campaign: campaign, rows: rows)
        }
    }

    public func addExclusions(campaign: String, generation: Int64?, phones: [String]) throws -> Int {
        try write { ctx in
            try ctx.requireGeneration(campaign, generation)
            try ctx.requireState(campaign, .loading)
            guard !phones.isEmpty else { return 0 }
            // One statement for the whole batch, as the segments' rows go in (one INSERT per number was a round trip each).
            var list = PGArrayText()
            for p in phones { list.append(p) }
            return try ctx.run("""
                INSERT INTO campaign_exclusions(campaign_id, phone) SELECT ?, p FROM unnest(?::text[]) AS t(p) ON CONFLICT DO NOTHING
                """, [.text(campaign), .text(list.text)])
        }
    }

    /// Commits the load, then has PostgreSQL's statistics of `messages` made again (`ANALYZE`, a sample of some 30,000
    /// rows whatever the table's size), so the claims and acceptances are planned knowing the rows just loaded:
    /// autovacuum analyzes only after a minute or so, and auto_explain showed the claim's plan scanning the whole
    /// un-analyzed table. A failed ANALYZE is logged, not the commit's failure: the campaign is committed already.
    public func commitCampaign(_ id: String, generation: Int64?) throws {
        try write { ctx in
            try ctx.requireGeneration(id, generation)
            try ctx.requireState(id, .loading)
            try ctx.setCampaignState(id, .scheduled)
        }
        _ = try? write { ctx in
            do {
                try ctx.db.exec("ANALYZE messages")
            } catch {
                ctx.logger.warning("ANALYZE messages after loading a campaign failed; the planner keeps its older statistics",
                                   ["campaign": id, "error": "\(error)"])
                throw error
            }
        }
    }

    public func apply(_ event: CampaignEvent, to id: String, now t: UnixMillis) throws -> CampaignState {
        try write { ctx in
            var current: CampaignState?
            var startAt: UnixMillis = 0
            try ctx.query("SELECT state, start_at FROM campaigns WHERE id = ? FOR UPDATE", [.text(id)]) {
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

    public func discardLoadingCampaign(_ id: String, generation: Int64?) throws {
        try write { ctx in
            try ctx.requireGeneration(id, generation)
            try ctx.requireState(id, .loading)
            try ctx.deleteCampaignRows(id)
        }
    }

    public func advanceCampaigns(now: UnixMillis, limit: Int) throws -> Bool {
        try write { try $0.advanceCampaigns(now: now, limit: limit) }
    }

    public func activeWork() throws -> [ActiveCampaign] { try activeWorkAndFailures().active }

    public func activeWorkAndFailures() throws -> (active: [ActiveCampaign], failed: [(id: String, reason: String)]) {
        try write { ctx in
            var failed: [(id: String, reason: String)] = []
            let active = try ctx.activeWork(failing: &failed)
            return (active, failed)
        }
    }
}

extension PGContext {
    func requireGeneration(_ id: String, _ generation: Int64?) throws {
        guard let generation else { return }
        var current: Int64?
        try query("SELECT generation FROM campaigns WHERE id = ?", [.text(id)]) { current = $0.int("generation") }
        guard let current else { throw StoreError.notFound("campaign \(id)") }
        guard current == generation else {
            throw StoreError.conflict("campaign \(id) was discarded (and perhaps created again) since this request began")
        }
    }

    func requireState(_ id: String, _ state: CampaignState) throws {
        var current: String?
        try query("SELECT state FROM campaigns WHERE id = ?", [.text(id)]) { current = $0.text("state") }
        guard let current else { throw StoreError.notFound("campaign \(id)") }
        guard current == state.rawValue else { throw StoreError.conflict("campaign \(id) is \(current), not \(state.rawValue)") }
    }

    func setCampaignState(_ id: String, _ state: CampaignState) throws {
        try run("UPDATE campaigns SET state = ?, updated_at = ? WHERE id = ?", [.text(state.rawValue), .int(now), .text(id)])
    }

    func deleteCampaignRows(_ id: String) throws {
        for sql in ["DELETE FROM messages WHERE campaign_id = ?", "DELETE FROM counts WHERE campaign_id = ?", "DELETE FROM skipped WHERE campaign_id = ?",
                    "DELETE FROM reason_counts WHERE campaign_id = ?", "DELETE FROM campaign_exclusions WHERE campaign_id = ?",
                    "DELETE FROM campaigns WHERE id = ?"] {
            try run(sql, [.text(id)])
        }
    }

    /// Whether any number is on the opt-out list or the campaign's exclusion list (two lookups per row only then).
    func anySuppression(_ campaign: String) throws -> Bool {
        var any = false
        try query("SELECT EXISTS(SELECT 1 FROM suppressions) OR EXISTS(SELECT 1 FROM campaign_exclusions WHERE campaign_id = ?) AS any",
                  [.text(campaign)]) { any = $0.int("any") != 0 }
        return any
    }

    /// `opt-out` if the number is on the global list, `excluded` if on the campaign's exclusion list, else nil.
    func suppressionReason(campaign: String, phone: String) throws -> String? {
        var found = false
        try query("SELECT 1 AS one FROM suppressions WHERE phone = ?", [.text(phone)]) { _ in found = true }
        if found { return "opt-out" }
        try query("SELECT 1 AS one FROM campaign_exclusions WHERE campaign_id = ? AND phone = ?", [.text(campaign), .text(phone)]) { _ in found = true }
        return found ? "excluded" : nil
    }

    func bumpReason(_ campaign: String, _ reason: String, by n: Int64 = 1) throws {
        try run("""
            INSERT INTO reason_counts(campaign_id, reason, n) VALUES(?, ?, ?)
            ON CONFLICT(campaign_id, reason) DO UPDATE SET n = reason_counts.n + excluded.n
            """, [.text(campaign), .text(reason), .int(n)])
    }

    /// The preview counted so far for a campaign (nil before its first row).
    func storedPreview(_ campaign: String) throws -> CampaignPreview? {
        var text: String?
        try query("SELECT preview FROM campaigns WHERE id = ?", [.text(campaign)]) { text = $0.text("preview") }
        guard let text else { return nil }
        do {
            return try JSONDecoder().decode(CampaignPreview.self, from: Data(text.utf8))
        } catch {
            throw StoreError.io("campaign \(campaign): its stored preview cannot be read: \(error)")
        }
    }

    func activeWork(failing bad: inout [(id: String, reason: String)]) throws -> [ActiveCampaign] {
        var out: [ActiveCampaign] = []
        try query("SELECT id, state, sender, start_at, deadline_at, spec FROM campaigns WHERE state IN ('scheduled', 'running', 'paused') ORDER BY created_at, id") { r in
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
            try run("UPDATE campaigns SET state = ?, failure = ?, updated_at = ? WHERE id = ?",
                    [.text(CampaignState.failed.rawValue), .text(reason), .int(now), .text(id)])
        }
        for i in out.indices {
            try query("SELECT carrier FROM counts WHERE campaign_id = ? AND state = \(PGSchema.queued) GROUP BY carrier HAVING SUM(n) > 0 ORDER BY carrier",
                      [.text(out[i].id)]) { out[i].carriers.append($0.text("carrier") ?? "") }
        }
        return out
    }

    /// Up to `limit` queued messages of a campaign (of one carrier, or any), in id order, locked for this transaction
    /// (`SKIP LOCKED`: those another node is claiming stay theirs).
    func queuedRows(campaign: String, carrier: String? = nil, limit: Int) throws -> [(id: Int64, phone: String?, carrier: String, attempts: Int)] {
        var rows: [(id: Int64, phone: String?, carrier: String, attempts: Int)] = []
        let sql = "SELECT id, phone, carrier, attempts FROM messages WHERE campaign_id = ?"
            + (carrier == nil ? "" : " AND carrier = ?")
            + " AND state = \(PGSchema.queued) ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED"
        let key: [SQLValue] = carrier.map { [.text(campaign), .text($0)] } ?? [.text(campaign)]
        try query(sql, key + [.int(Int64(limit))]) { r in
            rows.append((r.int("id"), r.text("phone"), r.text("carrier") ?? "", Int(r.int("attempts"))))
        }
        return rows
    }

    private func endQueued(campaign id: String, to state: MessageState, event: String, detail: String, budget: Int) throws -> Int {
        let rows = try queuedRows(campaign: id, limit: budget)
        guard !rows.isEmpty else { return 0 }
        try run("UPDATE messages SET state = ?, detail = ?, updated_at = ? WHERE id = ANY(?::bigint[])",
                [.int(Int64(state.rawValue)), .text(detail), .int(now), .text(Self.idArray(rows.map(\.id)))])
        for m in rows {
            count(campaign: id, carrier: m.carrier, from: .queued, to: state)
            emit(campaign: id, message: m.id, recipient: m.phone, carrier: m.carrier, event: event, status: state.name, attempt: m.attempts, detail: detail)
        }
        return rows.count
    }

    /// A `bigint[]` parameter's text: `{1,2,3}`.
    static func idArray(_ ids: [Int64]) -> String { "{" + ids.map(String.init).joined(separator: ",") + "}" }

    /// The sum over nodes of a campaign's counter for `state` (of one carrier, or all).
    func counted(_ campaign: String, _ state: MessageState, carrier: String? = nil) throws -> Int64 {
        var n: Int64 = 0
        try query("SELECT COALESCE(SUM(n), 0) AS n FROM counts WHERE campaign_id = ? AND state = ?" + (carrier == nil ? "" : " AND carrier = ?"),
                  [.text(campaign), .int(Int64(state.rawValue))] + (carrier.map { [SQLValue.text($0)] } ?? [])) { n = $0.int("n") }
        return n
    }

    func advanceCampaigns(now t: UnixMillis, limit: Int) throws -> Bool {
        try run("UPDATE campaigns SET state = 'running', updated_at = ? WHERE state = 'scheduled' AND start_at <= ? AND deadline_at > ?",
                [.int(t), .int(t), .int(t)])
        var budget = limit
        var cancelled: [(String, String)] = []
        try query("""
            SELECT c.id, c.state FROM campaigns c JOIN counts n ON n.campaign_id = c.id
            WHERE c.state IN ('cancelled', 'rejected') AND n.state = \(PGSchema.queued) GROUP BY c.id, c.state HAVING SUM(n.n) > 0 ORDER BY c.id
            """) { cancelled.append(($0.text("id") ?? "", $0.text("state") ?? "")) }
        for (id, state) in cancelled {
            let detail = state == "rejected" ? "campaign rejected by an approver" : "campaign cancelled before sending"
            budget -= try endQueued(campaign: id, to: .cancelled, event: "cancelled", detail: detail, budget: budget)
            if budget <= 0 { return true }
        }
        var failed: [(String, String)] = []
        try query("""
            SELECT c.id, c.failure FROM campaigns c JOIN counts n ON n.campaign_id = c.id
            WHERE c.state = 'failed' AND n.state = \(PGSchema.queued) GROUP BY c.id, c.failure HAVING SUM(n.n) > 0 ORDER BY c.id
            """) { failed.append(($0.text("id") ?? "", $0.text("failure") ?? "")) }
        for (id, reason) in failed {
            budget -= try endQueued(campaign: id, to: .cancelled, event: "cancelled", detail: "campaign failed: \(reason)", budget: budget)
            if budget <= 0 { return true }
        }
        var due: [String] = []
        try query("SELECT id FROM campaigns WHERE state IN ('pending-approval', 'scheduled', 'running', 'paused') AND deadline_at <= ? ORDER BY id",
                  [.int(t)]) { due.append($0.text("id") ?? "") }
        for id in due {
            budget -= try endQueued(campaign: id, to: .expired, event: "expired", detail: "deadline passed before sending", budget: budget)
            if budget <= 0 { return true }
            if try counted(id, .sending) == 0 { try setCampaignState(id, .expired) }
        }
        try run("DELETE FROM contacts WHERE sent_at < ?", [.int(t - 7 * 86_400_000)])
        try run("""
            UPDATE campaigns SET state = 'completed', updated_at = ? WHERE state = 'running' AND NOT EXISTS
            (SELECT 1 FROM counts WHERE counts.campaign_id = campaigns.id
             AND counts.state IN (\(PGSchema.queued), \(PGSchema.sending)) GROUP BY counts.carrier HAVING SUM(counts.n) > 0)
            """, [.int(t)])
        return false
    }
}
