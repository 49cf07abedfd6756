import Foundation
import LoaCore

// Loading a campaign: creation, segment rows, exclusions.

extension Store {
    /// Creates a campaign in `loading` state. Fails with ``StoreError/conflict(_:)`` if the id exists.
    /// Creates a `loading` campaign; returns its generation (see ``CampaignRecord/generation``).
    @discardableResult
    public func createCampaign(_ submission: CampaignSubmission, startAt: UnixMillis, deadlineAt: UnixMillis) throws -> Int64 {
        try write { try $0.createCampaign(submission, startAt: startAt, deadlineAt: deadlineAt) }
    }

    /// Stores a batch of segment rows of a `loading` campaign; duplicates of numbers already in the campaign are counted, not stored.
    /// With a `generation`, the campaign must still be the one created with it (else ``StoreError/conflict(_:)``).
    public func ingest(campaign: String, generation: Int64? = nil, rows: [IngestRow]) throws -> IngestCounts {
        try write { ctx in
            try ctx.requireGeneration(campaign, generation)
            return try ctx.ingest(campaign: campaign, rows: rows)
        }
    }

    /// Adds numbers (E.164) to a `loading` campaign's exclusion list; returns how many were new.
    public func addExclusions(campaign: String, generation: Int64? = nil, phones: [String]) throws -> Int {
        try write { ctx in
            try ctx.requireGeneration(campaign, generation)
            try ctx.requireState(campaign, .loading)
            let st = try ctx.statement("INSERT OR IGNORE INTO campaign_exclusions(campaign_id, phone) VALUES(?, ?)")
            var added = 0
            for p in phones {
                try st.run([.text(campaign), .text(p)])
                added += ctx.db.changes
            }
            return added
        }
    }

    /// Benchmark baseline only: inserts raw (phone, text) pairs in one transaction, into the messages table
    /// (same indexes as ingest) or, with `bare`, into a table without indexes.
    public func rawInsert(_ rows: [(String, String)], bare: Bool = false) throws {
        let copy = rows.map { [$0.0, $0.1] }
        try write { ctx in
            if bare { try ctx.db.exec("CREATE TABLE IF NOT EXISTS bench_bare(id INTEGER PRIMARY KEY, phone TEXT, rest TEXT)") }
            let st = try ctx.statement(bare ? "INSERT INTO bench_bare(phone, rest) VALUES(?, ?)"
                                            : "INSERT OR IGNORE INTO messages(campaign_id, phone, carrier, text, state, updated_at) VALUES('raw', ?, 'k', ?, \(MessageState.queued.rawValue), 0)")
            for r in copy { try st.run([.text(r[0]), .text(r[1])]) }
        }
    }
}

extension WriteContext {
    func createCampaign(_ s: CampaignSubmission, startAt: UnixMillis, deadlineAt: UnixMillis) throws -> Int64 {
        var exists = false
        try statement("SELECT 1 FROM campaigns WHERE id = ?").query([.text(s.id)]) { _ in exists = true }
        if exists { throw StoreError.conflict("campaign \(s.id) already exists") }
        let spec = String(decoding: try JSONEncoder().encode(s), as: UTF8.self)
        // Random, not a counter: a counter (or the rowid) would be drawn again after the newest campaign is discarded.
        let generation = Int64.random(in: 1...Int64.max)
        try statement("""
            INSERT INTO campaigns(id, state, spec, sender, start_at, deadline_at, created_at, updated_at, generation)
            VALUES(?, 'loading', ?, ?, ?, ?, ?, ?, ?)
            """).run([.text(s.id), .text(spec), .text(s.sender), .int(startAt), .int(deadlineAt), .int(now), .int(now), .int(generation)])
        return generation
    }

    /// Throws ``StoreError/conflict(_:)`` when `generation` is given and the campaign `id` is not the one created
    /// with it (it was discarded, and perhaps created again), ``StoreError/notFound(_:)`` when there is none.
    func requireGeneration(_ id: String, _ generation: Int64?) throws {
        guard let generation else { return }
        var current: Int64?
        try statement("SELECT generation FROM campaigns WHERE id = ?").query([.text(id)]) { current = $0.int("generation") }
        guard let current else { throw StoreError.notFound("campaign \(id)") }
        guard current == generation else {
            throw StoreError.conflict("campaign \(id) was discarded (and perhaps created again) since this request began")
        }
    }

    func requireState(_ id: String, _ state: CampaignState) throws {
        var current: String?
        try statement("SELECT state FROM campaigns WHERE id = ?").query([.text(id)]) { current = $0.text("state") }
        guard let current else { throw StoreError.notFound("campaign \(id)") }
        guard current == state.rawValue else { throw StoreError.conflict("campaign \(id) is \(current), not \(state.rawValue)") }
    }

    func setCampaignState(_ id: String, _ state: CampaignState) throws {
        try statement("UPDATE campaigns SET state = ?, updated_at = ? WHERE id = ?").run([.text(state.rawValue), .int(now), .text(id)])
    }

    func ingest(campaign: String, rows: [IngestRow]) throws -> IngestCounts {
        try requireState(campaign, .loading)
        var c = IngestCounts()
        var reasons: [String: Int64] = [:]
        var preview = try storedPreview(campaign) ?? CampaignPreview()
        let insert = try statement("""
            INSERT OR IGNORE INTO messages(campaign_id, phone, raw_phone, carrier, source, line, text, encoding, segments, state, detail, reason, updated_at, grp)
            VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let skip = try statement("INSERT INTO skipped(campaign_id, source, line, raw, reason, detail) VALUES(?, ?, ?, ?, ?, ?)")
        // Two lookups per row only when there is anything to look up.
        var anySuppression = false
        try statement("SELECT EXISTS(SELECT 1 FROM suppressions) OR EXISTS(SELECT 1 FROM campaign_exclusions WHERE campaign_id = ?) AS any")
            .query([.text(campaign)]) { anySuppression = $0.int("any") != 0 }
        for row in rows {
            c.rows += 1
            switch row {
            case .accepted(let phone, let carrier, let text, let encoding, let segments, let source, let line, let raw, let group, _):
                let suppression = anySuppression ? try suppressionReason(campaign: campaign, phone: phone) : nil
                let state: MessageState = suppression == nil ? .queued : .suppressed
                try insert.run([.text(campaign), .text(phone), .text(raw), .text(carrier), .text(source), .int(Int64(line)), .text(text),
                                .int(encoding == .ucs2 ? 1 : 0), .int(Int64(segments)), .int(Int64(state.rawValue)),
                                .opt(suppression.map { "\($0): not sent" }), .opt(suppression), .int(now), .opt(group)])
                let duplicate = db.changes == 0
                preview.count(row, duplicate: duplicate, suppression: suppression.flatMap(PreviewTotals.Suppression.init(rawValue:)))
                if duplicate {
                    c.duplicates += 1
                    reasons["duplicate", default: 0] += 1
                    try skip.run([.text(campaign), .text(source), .int(Int64(line)), .text(raw), .text("duplicate"),
                                  .text("the number \(phone) is already in this campaign")])
                } else if let suppression {
                    c.suppressed += 1
                    reasons[suppression, default: 0] += 1
                    count(campaign: campaign, carrier: carrier, from: nil, to: .suppressed)
                    try emit(DeliveryEvent(time: now, campaign: campaign, message: db.lastInsertRowID, recipient: phone, carrier: carrier,
                                           event: "suppressed", status: "suppressed", attempt: 0, detail: "\(source):\(line): \(suppression)"))
                } else {
                    c.accepted += 1
                    c.segments += Int64(segments)
                    count(campaign: campaign, carrier: carrier, from: nil, to: .queued)
                }
            case .rejected(let raw, let code, let message, let source, let line):
                try insert.run([.text(campaign), .null, .text(raw), .text(""), .text(source), .int(Int64(line)), .null,
                                .int(0), .int(0), .int(Int64(MessageState.rejected.rawValue)), .text(message), .text(code), .int(now), .null])
                c.rejected += 1
                reasons[code, default: 0] += 1
                preview.count(row, duplicate: false, suppression: nil)
                count(campaign: campaign, carrier: "", from: nil, to: .rejected)
                try emit(DeliveryEvent(time: now, campaign: campaign, message: db.lastInsertRowID, recipient: nil, carrier: nil,
                                       event: "rejected", status: "rejected", attempt: 0, detail: "\(source):\(line): \(code): \(message)"))
            }
        }
        try statement("""
            UPDATE campaigns SET rows = rows + ?, accepted = accepted + ?, rejected = rejected + ?, duplicates = duplicates + ?,
            segments_total = segments_total + ?, updated_at = ? WHERE id = ?
            """).run([.int(c.rows), .int(c.accepted), .int(c.rejected), .int(c.duplicates), .int(c.segments), .int(now), .text(campaign)])
        let bump = try statement("""
            INSERT INTO reason_counts(campaign_id, reason, n) VALUES(?, ?, ?)
            ON CONFLICT(campaign_id, reason) DO UPDATE SET n = n + excluded.n
            """)
        for (reason, n) in reasons { try bump.run([.text(campaign), .text(reason), .int(n)]) }
        try statement("UPDATE campaigns SET preview = ? WHERE id = ?")
            .run([.text(String(decoding: try JSONEncoder().encode(preview), as: UTF8.self)), .text(campaign)])
        return c
    }

    /// The preview counted so far for a campaign (nil before its first row, and for campaigns loaded before the
    /// store kept it).
    func storedPreview(_ campaign: String) throws -> CampaignPreview? {
        var text: String?
        try statement("SELECT preview FROM campaigns WHERE id = ?").query([.text(campaign)]) { text = $0.text("preview") }
        guard let text else { return nil }
        do {
            return try JSONDecoder().decode(CampaignPreview.self, from: Data(text.utf8))
        } catch {
            throw StoreError.io("campaign \(campaign): its stored preview cannot be read: \(error)")
        }
    }

    /// `opt-out` if the number is on the global list, `excluded` if on the campaign's exclusion list, else nil.
    func suppressionReason(campaign: String, phone: String) throws -> String? {
        var found = false
        try statement("SELECT 1 FROM suppressions WHERE phone = ?").query([.text(phone)]) { _ in found = true }
        if found { return "opt-out" }
        try statement("SELECT 1 FROM campaign_exclusions WHERE campaign_id = ? AND phone = ?").query([.text(campaign), .text(phone)]) { _ in found = true }
        return found ? "excluded" : nil
    }
}
