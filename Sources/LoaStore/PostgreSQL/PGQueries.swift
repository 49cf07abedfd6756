import Foundation
import LoaCore

// Reads for the operator and reports, and the opt-out list, on PostgreSQL (SQLite's Queries.swift and OptOuts.swift).
// Counters are summed over nodes.

extension PostgresStore {
    public func rejects(campaign: String, after: Int64, batch: Int) throws -> [(cursor: Int64, row: RejectRow)] {
        try write { ctx in
            var out: [(Int64, RejectRow)] = []
            // Messages (rejected, suppressed) get even cursors, skipped rows odd ones, so one cursor walks both tables.
            try ctx.query("""
                SELECT cursor, source, line, raw, reason, detail FROM (
                SELECT id * 2 AS cursor, source, line, raw_phone AS raw, reason, detail FROM messages
                WHERE campaign_id = ? AND state IN (\(PGSchema.rejected), \(PGSchema.suppressed)) AND id * 2 > ?
                UNION ALL
                SELECT id * 2 + 1, source, line, raw, reason, detail FROM skipped WHERE campaign_id = ? AND id * 2 + 1 > ?) AS r
                ORDER BY cursor LIMIT ?
                """, [.text(campaign), .int(after), .text(campaign), .int(after), .int(Int64(batch))]) { r in
                out.append((r.int("cursor"), RejectRow(source: r.text("source") ?? "", line: Int(r.int("line")), raw: r.text("raw") ?? "",
                                                       reason: r.text("reason") ?? "", detail: r.text("detail") ?? "")))
            }
            return out.map { (cursor: $0.0, row: $0.1) }
        }
    }

    public func recipients(of campaign: String, states: [MessageState], after: Int64, limit: Int) throws -> [(id: Int64, phone: String)] {
        let codes = "{" + states.map { String($0.rawValue) }.joined(separator: ",") + "}"
        return try write { ctx in
            var out: [(id: Int64, phone: String)] = []
            try ctx.query("""
                SELECT id, phone FROM messages WHERE campaign_id = ? AND state = ANY(?::integer[]) AND phone IS NOT NULL AND id > ? ORDER BY id LIMIT ?
                """, [.text(campaign), .text(codes), .int(after), .int(Int64(limit))]) { out.append(($0.int("id"), $0.text("phone") ?? "")) }
            return out
        }
    }

    public func reportRows(campaign: String, after: Int64, limit: Int) throws -> [ReportRow] {
        try write { ctx in
            var out: [ReportRow] = []
            try ctx.query("""
                SELECT id, COALESCE(phone, raw_phone, '') AS phone, carrier, state, COALESCE(reason, detail, '') AS reason, attempts,
                updated_at, COALESCE(source, '') AS source, COALESCE(line, 0) AS line, COALESCE(grp, '') AS grp,
                COALESCE(gateway_id, '') AS gateway_id
                FROM messages WHERE campaign_id = ? AND id > ? ORDER BY id LIMIT ?
                """, [.text(campaign), .int(after), .int(Int64(limit))]) { r in
                out.append(ReportRow(id: r.int("id"), phone: r.text("phone") ?? "", carrier: r.text("carrier") ?? "",
                                     state: (MessageState(rawValue: Int(r.int("state"))) ?? .unknown).name,
                                     reason: r.text("reason") ?? "", attempts: Int(r.int("attempts")), updatedAt: r.int("updated_at"),
                                     source: r.text("source") ?? "", line: Int(r.int("line")), group: r.text("grp") ?? "",
                                     gatewayID: r.text("gateway_id") ?? ""))
            }
            return out
        }
    }

    public func reportData(campaign: String, buckets: Int) throws -> ReportData {
        try write { ctx in
            let delivered = MessageState.delivered.rawValue
            var lo: Int64 = 0, hi: Int64 = 0
            try ctx.query("""
                SELECT COALESCE(MIN(updated_at), 0) AS lo, COALESCE(MAX(updated_at), 0) AS hi FROM messages WHERE campaign_id = ? AND state = \(delivered)
                """, [.text(campaign)]) { lo = $0.int("lo"); hi = $0.int("hi") }
            let width = max(1000, (hi - lo) / Int64(max(1, buckets)) + 1)
            var timeline: [ReportData.Bucket] = []
            try ctx.query("""
                SELECT (updated_at - ?::bigint) / ?::bigint AS bucket, carrier, COUNT(*) AS n FROM messages
                WHERE campaign_id = ? AND state = \(delivered) GROUP BY 1, 2 ORDER BY 1, 2
                """, [.int(lo), .int(width), .text(campaign)]) { r in
                timeline.append(.init(start: lo + r.int("bucket") * width, carrier: r.text("carrier") ?? "", delivered: r.int("n")))
            }
            var tally = ReasonTally()
            try ctx.query("SELECT reason, n FROM reason_counts WHERE campaign_id = ? AND n > 0", [.text(campaign)]) {
                tally.notSent($0.text("reason") ?? "", $0.int("n"))
            }
            try ctx.query("""
                SELECT state, gateway_id IS NOT NULL AS accepted, COALESCE(substr(detail, 1, 200), '') AS detail, COUNT(*) AS n FROM messages
                WHERE campaign_id = ? AND state IN (\(MessageState.failed.rawValue), \(MessageState.expired.rawValue)) GROUP BY 1, 2, 3
                """, [.text(campaign)]) { r in
                tally.ended(state: r.int("state"), accepted: r.int("accepted") != 0, detail: r.text("detail") ?? "", r.int("n"))
            }
            var groups: [String: [String: Int64]] = [:]
            try ctx.query("SELECT grp, state, COUNT(*) AS n FROM messages WHERE campaign_id = ? AND grp IS NOT NULL GROUP BY 1, 2", [.text(campaign)]) { r in
                groups[r.text("grp") ?? "", default: [:]][(MessageState(rawValue: Int(r.int("state"))) ?? .unknown).name] = r.int("n")
            }
            return ReportData(bucketMillis: width, timeline: timeline, reasons: tally.counts,
                              groups: groups.keys.sorted().map { .init(name: $0, states: groups[$0]!) }, reasonGroups: tally.groups)
        }
    }

    public func campaigns() throws -> [CampaignRecord] { try write { try $0.campaignRecords(id: nil) } }

    public func preview(campaign: String) throws -> CampaignPreview? {
        try write { ctx in
            var exists = false
            try ctx.query("SELECT 1 AS one FROM campaigns WHERE id = ?", [.text(campaign)]) { _ in exists = true }
            guard exists else { throw StoreError.notFound("campaign \(campaign)") }
            return try ctx.storedPreview(campaign)
        }
    }

    public func campaign(_ id: String) throws -> CampaignRecord? { try write { try $0.campaignRecords(id: id).first } }

    public func messageStates(campaign: String) throws -> [(phone: String?, state: MessageState, attempts: Int)] {
        let rows = try write { ctx -> [Store.MessageRow] in
            var out: [Store.MessageRow] = []
            try ctx.query("SELECT phone, state, attempts FROM messages WHERE campaign_id = ? ORDER BY id", [.text(campaign)]) {
                out.append(Store.MessageRow(phone: $0.text("phone"), state: Int($0.int("state")), attempts: Int($0.int("attempts"))))
            }
            return out
        }
        return rows.map { ($0.phone, MessageState(rawValue: $0.state) ?? .unknown, $0.attempts) }
    }

    // MARK: Opt-outs

    public func addOptOuts(_ phones: [String], source: String) throws -> Int {
        try write { ctx in
            var added = 0
            for p in phones {
                added += try ctx.run("INSERT INTO suppressions(phone, source, added_at) VALUES(?, ?, ?) ON CONFLICT DO NOTHING", [.text(p), .text(source), .int(ctx.now)])
            }
            return added
        }
    }

    public func optOutNow(_ phone: String, source: String) throws -> Int {
        try write { ctx in
            try ctx.run("INSERT INTO suppressions(phone, source, added_at) VALUES(?, ?, ?) ON CONFLICT DO NOTHING", [.text(phone), .text(source), .int(ctx.now)])
            var rows: [(Int64, String, String, Int)] = []
            // Through messages_dedup (campaign_id, phone); a message another node is claiming right now is past stopping.
            try ctx.query("""
                SELECT id, campaign_id, carrier, attempts FROM messages
                WHERE campaign_id IN (SELECT id FROM campaigns) AND phone = ? AND state = \(PGSchema.queued) ORDER BY id FOR UPDATE SKIP LOCKED
                """, [.text(phone)]) { rows.append(($0.int("id"), $0.text("campaign_id") ?? "", $0.text("carrier") ?? "", Int($0.int("attempts")))) }
            for (id, campaign, carrier, attempts) in rows {
                try ctx.run("UPDATE messages SET state = \(PGSchema.suppressed), reason = 'opt-out', detail = ?, updated_at = ? WHERE id = ?",
                            [.text("opt-out: replied \(source)"), .int(ctx.now), .int(id)])
                ctx.count(campaign: campaign, carrier: carrier, from: .queued, to: .suppressed)
                try ctx.bumpReason(campaign, "opt-out")
                ctx.emit(campaign: campaign, message: id, recipient: phone, carrier: carrier, event: "suppressed", status: "suppressed",
                         attempt: attempts, detail: "opt-out reply (\(source))")
            }
            return rows.count
        }
    }

    public func removeOptOuts(_ phones: [String]) throws -> Int {
        try write { ctx in
            var removed = 0
            for p in phones { removed += try ctx.run("DELETE FROM suppressions WHERE phone = ?", [.text(p)]) }
            return removed
        }
    }

    public func optOuts() throws -> [String] {
        try write { ctx in
            var out: [String] = []
            try ctx.query("SELECT phone FROM suppressions ORDER BY phone COLLATE \"C\"") { out.append($0.text("phone") ?? "") }
            return out
        }
    }

    public func optOutCount() throws -> Int64 {
        try write { ctx in
            var n: Int64 = 0
            try ctx.query("SELECT COUNT(*) AS n FROM suppressions") { n = $0.int("n") }
            return n
        }
    }
}

extension PGContext {
    func campaignRecords(id: String?) throws -> [CampaignRecord] {
        var records: [CampaignRecord] = []
        let sql = "SELECT id, state, spec, sender, start_at, deadline_at, created_at, rows, accepted, rejected, duplicates, segments_total, generation, failure, "
            + "recovered_unknown, updated_at, submitted_by, approved_by FROM campaigns"
            + (id == nil ? " ORDER BY created_at, id" : " WHERE id = ?")
        try query(sql, id.map { [.text($0)] } ?? []) { r in
            let spec = r.text("spec").flatMap { try? JSONDecoder().decode(CampaignSubmission.self, from: Data($0.utf8)) }
            records.append(CampaignRecord(
                id: r.text("id") ?? "", name: spec?.name, state: CampaignState(rawValue: r.text("state") ?? "") ?? .loading,
                sender: r.text("sender") ?? "", startAt: r.int("start_at"), deadlineAt: r.int("deadline_at"), createdAt: r.int("created_at"),
                rows: r.int("rows"), accepted: r.int("accepted"), rejected: r.int("rejected"), duplicates: r.int("duplicates"),
                segmentsTotal: r.int("segments_total"), states: [:], carriers: [:], recoveredUnknown: r.int("recovered_unknown"), spec: spec,
                generation: r.int("generation"), failure: r.text("failure"), updatedAt: r.int("updated_at"), submittedBy: r.text("submitted_by"),
                approvedBy: r.text("approved_by")))
        }
        for i in records.indices {
            try query("SELECT reason, n FROM reason_counts WHERE campaign_id = ? AND n <> 0", [.text(records[i].id)]) {
                records[i].reasons[$0.text("reason") ?? "", default: 0] += $0.int("n")
            }
            try query("SELECT carrier, state, SUM(n) AS n FROM counts WHERE campaign_id = ? GROUP BY carrier, state HAVING SUM(n) <> 0",
                      [.text(records[i].id)]) { r in
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
