import Foundation
import LoaCore

// Reads for the operator and reports.

extension Store {
    /// Every segment row of a campaign that will not be sent (rejected, duplicate, opted out, excluded), in file order,
    /// `batch` rows at a time from after `after` (a cursor: pass the last row's `cursor` back).
    public func rejects(campaign: String, after: Int64 = 0, batch: Int = 10_000) throws -> [(cursor: Int64, row: RejectRow)] {
        try write { ctx in
            var out: [(Int64, RejectRow)] = []
            // Messages (rejected, suppressed) get even cursors, skipped rows odd ones, so one cursor walks both tables.
            try ctx.statement("""
                SELECT id * 2 AS cursor, source, line, raw_phone AS raw, reason, detail FROM messages
                WHERE campaign_id = ? AND state IN (\(MessageState.rejected.rawValue), \(MessageState.suppressed.rawValue)) AND id * 2 > ?
                UNION ALL
                SELECT id * 2 + 1, source, line, raw, reason, detail FROM skipped WHERE campaign_id = ? AND id * 2 + 1 > ?
                ORDER BY 1 LIMIT ?
                """).query([.text(campaign), .int(after), .text(campaign), .int(after), .int(Int64(batch))]) { r in
                out.append((r.int("cursor"), RejectRow(source: r.text("source") ?? "", line: Int(r.int("line")), raw: r.text("raw") ?? "",
                                                       reason: r.text("reason") ?? "", detail: r.text("detail") ?? "")))
            }
            return out.map { (cursor: $0.0, row: $0.1) }
        }
    }

    /// The numbers of a campaign's messages in `states`, in id order after `after`: the source of a reminder wave.
    public func recipients(of campaign: String, states: [MessageState], after: Int64, limit: Int) throws -> [(id: Int64, phone: String)] {
        let codes = states.map { String($0.rawValue) }.joined(separator: ",")
        return try write { ctx in
            var out: [(Int64, String)] = []
            // A message in flight reads `queued` until its answer: it is `sending` (InFlightBook).
            let skipInFlight = !states.contains(.sending)
            try ctx.statement("SELECT id, phone FROM messages WHERE campaign_id = ? AND state IN (\(codes)) AND phone IS NOT NULL AND id > ? ORDER BY id LIMIT ?")
                .query([.text(campaign), .int(after), .int(Int64(limit))]) { r in
                    if !(skipInFlight && ctx.book.contains(r.int("id"))) { out.append((r.int("id"), r.text("phone") ?? "")) }
                }
            return out.map { (id: $0.0, phone: $0.1) }
        }
    }

    /// One page of a campaign's recipients for the report, in id order after `after`.
    public func reportRows(campaign: String, after: Int64, limit: Int) throws -> [ReportRow] {
        try write { ctx in
            var out: [ReportRow] = []
            try ctx.statement("""
                SELECT id, COALESCE(phone, raw_phone, '') AS phone, carrier, state, COALESCE(reason, detail, '') AS reason, attempts,
                updated_at, COALESCE(source, '') AS source, COALESCE(line, 0) AS line, COALESCE(grp, '') AS grp,
                COALESCE(gateway_id, '') AS gateway_id
                FROM messages WHERE campaign_id = ? AND id > ? ORDER BY id LIMIT ?
                """).query([.text(campaign), .int(after), .int(Int64(limit))]) { r in
                // A message in flight reads `queued` with no attempt until its answer (InFlightBook).
                let inFlight = r.int("state") == Int64(MessageState.queued.rawValue) && ctx.book.contains(r.int("id"))
                out.append(ReportRow(id: r.int("id"), phone: r.text("phone") ?? "", carrier: r.text("carrier") ?? "",
                                     state: inFlight ? MessageState.sending.name : (MessageState(rawValue: Int(r.int("state"))) ?? .unknown).name,
                                     reason: r.text("reason") ?? "", attempts: Int(r.int("attempts")) + (inFlight ? 1 : 0),
                                     updatedAt: r.int("updated_at"), source: r.text("source") ?? "",
                                     line: Int(r.int("line")), group: r.text("grp") ?? "", gatewayID: r.text("gateway_id") ?? ""))
            }
            return out
        }
    }

    /// The aggregates a report draws, by SQL over the campaign's messages.
    public func reportData(campaign: String, buckets: Int = 48) throws -> ReportData {
        try write { ctx in
            var lo: Int64 = 0, hi: Int64 = 0
            try ctx.statement("""
                SELECT COALESCE(MIN(updated_at), 0) AS lo, COALESCE(MAX(updated_at), 0) AS hi FROM messages
                WHERE campaign_id = ? AND state = \(MessageState.delivered.rawValue)
                """).query([.text(campaign)]) { lo = $0.int("lo"); hi = $0.int("hi") }
            let width = max(1000, (hi - lo) / Int64(max(1, buckets)) + 1)
            var timeline: [ReportData.Bucket] = []
            try ctx.statement("""
                SELECT (updated_at - ?) / ? AS bucket, carrier, COUNT(*) AS n FROM messages
                WHERE campaign_id = ? AND state = \(MessageState.delivered.rawValue)
                GROUP BY 1, 2 ORDER BY 1, 2
                """).query([.int(lo), .int(width), .text(campaign)]) { r in
                timeline.append(.init(start: lo + r.int("bucket") * width, carrier: r.text("carrier") ?? "", delivered: r.int("n")))
            }
            var tally = ReasonTally()
            try ctx.statement("SELECT reason, n FROM reason_counts WHERE campaign_id = ? AND n > 0").query([.text(campaign)]) {
                tally.notSent($0.text("reason") ?? "", $0.int("n"))
            }
            try ctx.statement("""
                SELECT state, gateway_id IS NOT NULL AS accepted, COALESCE(substr(detail, 1, 200), '') AS detail, COUNT(*) AS n FROM messages
                WHERE campaign_id = ? AND state IN (\(MessageState.failed.rawValue), \(MessageState.expired.rawValue)) GROUP BY 1, 2, 3
                """).query([.text(campaign)]) { r in
                tally.ended(state: r.int("state"), accepted: r.int("accepted") != 0, detail: r.text("detail") ?? "", r.int("n"))
            }
            var groups: [String: [String: Int64]] = [:]
            try ctx.statement("SELECT grp, state, COUNT(*) AS n FROM messages WHERE campaign_id = ? AND grp IS NOT NULL GROUP BY 1, 2")
                .query([.text(campaign)]) { r in
                    groups[r.text("grp") ?? "", default: [:]][(MessageState(rawValue: Int(r.int("state"))) ?? .unknown).name] = r.int("n")
                }
            // Messages in flight read `queued` until their answer (InFlightBook): they are `sending`.
            let inFlightGroup = try ctx.statement("SELECT grp FROM messages WHERE id = ? AND grp IS NOT NULL AND state = \(MessageState.queued.rawValue)")
            for id in ctx.book.ids(campaign: campaign) {
                try inFlightGroup.query([.int(id)]) { r in
                    let g = r.text("grp") ?? ""
                    groups[g, default: [:]]["queued", default: 0] -= 1
                    if groups[g]?["queued"] == 0 { groups[g]?["queued"] = nil }
                    groups[g, default: [:]]["sending", default: 0] += 1
                }
            }
            return ReportData(bucketMillis: width, timeline: timeline, reasons: tally.counts,
                              groups: groups.keys.sorted().map { .init(name: $0, states: groups[$0]!) }, reasonGroups: tally.groups)
        }
    }

    public func preview(campaign: String) throws -> CampaignPreview? {
        try write { ctx in
            var exists = false
            try ctx.statement("SELECT 1 FROM campaigns WHERE id = ?").query([.text(campaign)]) { _ in exists = true }
            guard exists else { throw StoreError.notFound("campaign \(campaign)") }
            return try ctx.storedPreview(campaign)
        }
    }

    public func campaigns() throws -> [CampaignRecord] {
        try write { ctx in try ctx.campaignRecords(id: nil) }
    }

    public func campaign(_ id: String) throws -> CampaignRecord? {
        try write { ctx in try ctx.campaignRecords(id: id).first }
    }

    /// The states of every message of a campaign, by phone (for tests and reports).
    public func messageStates(campaign: String) throws -> [(phone: String?, state: MessageState, attempts: Int)] {
        let rows = try write { ctx -> [MessageRow] in
            var out: [MessageRow] = []
            try ctx.statement("SELECT phone, state, attempts, id FROM messages WHERE campaign_id = ? ORDER BY id").query([.text(campaign)]) {
                // A message in flight reads `queued` with no attempt until its answer (InFlightBook).
                let inFlight = $0.int("state") == Int64(MessageState.queued.rawValue) && ctx.book.contains($0.int("id"))
                out.append(MessageRow(phone: $0.text("phone"), state: inFlight ? MessageState.sending.rawValue : Int($0.int("state")),
                                      attempts: Int($0.int("attempts")) + (inFlight ? 1 : 0)))
            }
            return out
        }
        return rows.map { ($0.phone, MessageState(rawValue: $0.state) ?? .unknown, $0.attempts) }
    }

    struct MessageRow: Sendable {
        var phone: String?
        var state: Int
        var attempts: Int
    }
}

extension WriteContext {
    func campaignRecords(id: String?) throws -> [CampaignRecord] {
        var records: [CampaignRecord] = []
        let sql = "SELECT id, state, spec, sender, start_at, deadline_at, created_at, rows, accepted, rejected, duplicates, segments_total, generation, failure, "
            + "recovered_unknown, updated_at, submitted_by, approved_by FROM campaigns"
            + (id == nil ? " ORDER BY created_at, id" : " WHERE id = ?")
        try statement(sql).query(id.map { [.text($0)] } ?? []) { r in
            let spec = r.text("spec").flatMap { try? JSONDecoder().decode(CampaignSubmission.self, from: Data($0.utf8)) }
            records.append(CampaignRecord(
                id: r.text("id") ?? "", name: spec?.name, state: CampaignState(rawValue: r.text("state") ?? "") ?? .loading,
                sender: r.text("sender") ?? "", startAt: r.int("start_at"), deadlineAt: r.int("deadline_at"), createdAt: r.int("created_at"),
                rows: r.int("rows"), accepted: r.int("accepted"), rejected: r.int("rejected"), duplicates: r.int("duplicates"),
                segmentsTotal: r.int("segments_total"), states: [:], carriers: [:], recoveredUnknown: r.int("recovered_unknown"), spec: spec,
                generation: r.int("generation"), failure: r.text("failure"), updatedAt: r.int("updated_at"), submittedBy: r.text("submitted_by"), approvedBy: r.text("approved_by")))
        }
        let reasons = try statement("SELECT reason, n FROM reason_counts WHERE campaign_id = ? AND n != 0")
        for i in records.indices {
            try reasons.query([.text(records[i].id)]) { records[i].reasons[$0.text("reason") ?? "", default: 0] += $0.int("n") }
        }
        let counts = try statement("SELECT carrier, state, n FROM counts WHERE campaign_id = ? AND n != 0")
        for i in records.indices {
            try counts.query([.text(records[i].id)]) { r in
                let carrier = r.text("carrier") ?? ""
                let state = (MessageState(rawValue: Int(r.int("state"))) ?? .unknown).name
                let n = r.int("n")
                records[i].states[state, default: 0] += n
                if state == MessageState.suppressed.name { records[i].suppressed += n }
                if !carrier.isEmpty { records[i].carriers[carrier, default: [:]][state, default: 0] += n }
            }
        }
        return records
    }
}
