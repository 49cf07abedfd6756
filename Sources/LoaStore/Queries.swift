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
                SELECT id * 2, source, line, raw_phone, reason, detail FROM messages
                WHERE campaign_id = ? AND state IN (5, 9) AND id * 2 > ?
                UNION ALL
                SELECT id * 2 + 1, source, line, raw, reason, detail FROM skipped WHERE campaign_id = ? AND id * 2 + 1 > ?
                ORDER BY 1 LIMIT ?
                """).query([.text(campaign), .int(after), .text(campaign), .int(after), .int(Int64(batch))]) { r in
                out.append((r.int(0), RejectRow(source: r.text(1) ?? "", line: Int(r.int(2)), raw: r.text(3) ?? "",
                                                reason: r.text(4) ?? "", detail: r.text(5) ?? "")))
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
                    if !(skipInFlight && ctx.book.contains(r.int(0))) { out.append((r.int(0), r.text(1) ?? "")) }
                }
            return out.map { (id: $0.0, phone: $0.1) }
        }
    }

    /// One page of a campaign's recipients for the report, in id order after `after`.
    public func reportRows(campaign: String, after: Int64, limit: Int) throws -> [ReportRow] {
        try write { ctx in
            var out: [ReportRow] = []
            try ctx.statement("""
                SELECT id, COALESCE(phone, raw_phone, ''), carrier, state, COALESCE(reason, detail, ''), attempts, updated_at,
                COALESCE(source, ''), COALESCE(line, 0), COALESCE(grp, ''), COALESCE(gateway_id, '')
                FROM messages WHERE campaign_id = ? AND id > ? ORDER BY id LIMIT ?
                """).query([.text(campaign), .int(after), .int(Int64(limit))]) { r in
                // A message in flight reads `queued` with no attempt until its answer (InFlightBook).
                let inFlight = r.int(3) == 0 && ctx.book.contains(r.int(0))
                out.append(ReportRow(id: r.int(0), phone: r.text(1) ?? "", carrier: r.text(2) ?? "",
                                     state: inFlight ? MessageState.sending.name : (MessageState(rawValue: Int(r.int(3))) ?? .unknown).name,
                                     reason: r.text(4) ?? "", attempts: Int(r.int(5)) + (inFlight ? 1 : 0), updatedAt: r.int(6), source: r.text(7) ?? "", line: Int(r.int(8)),
                                     group: r.text(9) ?? "", gatewayID: r.text(10) ?? ""))
            }
            return out
        }
    }

    /// The aggregates a report draws, by SQL over the campaign's messages.
    public func reportData(campaign: String, buckets: Int = 48) throws -> ReportData {
        try write { ctx in
            var lo: Int64 = 0, hi: Int64 = 0
            try ctx.statement("SELECT COALESCE(MIN(updated_at), 0), COALESCE(MAX(updated_at), 0) FROM messages WHERE campaign_id = ? AND state = 3")
                .query([.text(campaign)]) { lo = $0.int(0); hi = $0.int(1) }
            let width = max(1000, (hi - lo) / Int64(max(1, buckets)) + 1)
            var timeline: [ReportData.Bucket] = []
            try ctx.statement("""
                SELECT (updated_at - ?) / ?, carrier, COUNT(*) FROM messages WHERE campaign_id = ? AND state = 3
                GROUP BY 1, 2 ORDER BY 1, 2
                """).query([.int(lo), .int(width), .text(campaign)]) { r in
                timeline.append(.init(start: lo + r.int(0) * width, carrier: r.text(1) ?? "", delivered: r.int(2)))
            }
            var reasons: [String: Int64] = [:]
            try ctx.statement("SELECT reason, n FROM reason_counts WHERE campaign_id = ? AND n > 0").query([.text(campaign)]) {
                reasons[$0.text(0) ?? "", default: 0] += $0.int(1)
            }
            // Failed and expired messages by their reason (a receipt's is its words, `UNDELIV err 001`, never its ids).
            try ctx.statement("""
                SELECT state, COALESCE(substr(detail, 1, 80), ''), COUNT(*) FROM messages WHERE campaign_id = ? AND state IN (4, 6) GROUP BY 1, 2
                """).query([.text(campaign)]) { r in
                let (state, detail) = (r.int(0) == 4 ? "failed" : "expired", r.text(1) ?? "")
                let key = detail.isEmpty ? state : detail.hasPrefix(state) ? detail : state + ": " + detail
                reasons[key == "failed" || key == "expired" ? key + ": " + key : key, default: 0] += r.int(2)
            }
            var groups: [String: [String: Int64]] = [:]
            try ctx.statement("SELECT grp, state, COUNT(*) FROM messages WHERE campaign_id = ? AND grp IS NOT NULL GROUP BY 1, 2")
                .query([.text(campaign)]) { r in
                    groups[r.text(0) ?? "", default: [:]][(MessageState(rawValue: Int(r.int(1))) ?? .unknown).name] = r.int(2)
                }
            // Messages in flight read `queued` until their answer (InFlightBook): they are `sending`.
            let inFlightGroup = try ctx.statement("SELECT grp FROM messages WHERE id = ? AND grp IS NOT NULL AND state = 0")
            for id in ctx.book.ids(campaign: campaign) {
                try inFlightGroup.query([.int(id)]) { r in
                    let g = r.text(0) ?? ""
                    groups[g, default: [:]]["queued", default: 0] -= 1
                    if groups[g]?["queued"] == 0 { groups[g]?["queued"] = nil }
                    groups[g, default: [:]]["sending", default: 0] += 1
                }
            }
            return ReportData(bucketMillis: width, timeline: timeline, reasons: reasons,
                              groups: groups.keys.sorted().map { .init(name: $0, states: groups[$0]!) })
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
                let inFlight = $0.int(1) == 0 && ctx.book.contains($0.int(3))
                out.append(MessageRow(phone: $0.text(0), state: inFlight ? MessageState.sending.rawValue : Int($0.int(1)),
                                      attempts: Int($0.int(2)) + (inFlight ? 1 : 0)))
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
            + "recovered_unknown FROM campaigns"
            + (id == nil ? " ORDER BY created_at, id" : " WHERE id = ?")
        try statement(sql).query(id.map { [.text($0)] } ?? []) { r in
            let spec = (r.text(2)).flatMap { try? JSONDecoder().decode(CampaignSubmission.self, from: Data($0.utf8)) }
            records.append(CampaignRecord(
                id: r.text(0) ?? "", name: spec?.name, state: CampaignState(rawValue: r.text(1) ?? "") ?? .loading,
                sender: r.text(3) ?? "", startAt: r.int(4), deadlineAt: r.int(5), createdAt: r.int(6), rows: r.int(7),
                accepted: r.int(8), rejected: r.int(9), duplicates: r.int(10), segmentsTotal: r.int(11),
                states: [:], carriers: [:], recoveredUnknown: r.int(14), spec: spec, generation: r.int(12), failure: r.text(13)))
        }
        let reasons = try statement("SELECT reason, n FROM reason_counts WHERE campaign_id = ? AND n != 0")
        for i in records.indices {
            try reasons.query([.text(records[i].id)]) { records[i].reasons[$0.text(0) ?? "", default: 0] += $0.int(1) }
        }
        let counts = try statement("SELECT carrier, state, n FROM counts WHERE campaign_id = ? AND n != 0")
        for i in records.indices {
            try counts.query([.text(records[i].id)]) { r in
                let carrier = r.text(0) ?? ""
                let state = (MessageState(rawValue: Int(r.int(1))) ?? .unknown).name
                let n = r.int(2)
                records[i].states[state, default: 0] += n
                if state == "suppressed" { records[i].suppressed += n }
                if !carrier.isEmpty { records[i].carriers[carrier, default: [:]][state, default: 0] += n }
            }
        }
        return records
    }
}
