import Foundation
import LoaCore

// MARK: - Public operations (each one job on the writer thread)

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

    /// Adds numbers (E.164) to the global opt-out list: queued messages to them in every campaign are not sent.
    public func addOptOuts(_ phones: [String], source: String) throws -> Int {
        try write { ctx in
            let st = try ctx.statement("INSERT OR IGNORE INTO suppressions(phone, source, added_at) VALUES(?, ?, ?)")
            var added = 0
            for p in phones {
                try st.run([.text(p), .text(source), .int(ctx.now)])
                added += ctx.db.changes
            }
            return added
        }
    }

    /// A number's queued messages in every campaign, through messages_dedup (campaign_id, phone): one index
    /// lookup per campaign.
    static let queuedForPhoneSQL = """
        SELECT id, campaign_id, carrier, attempts FROM messages
        WHERE campaign_id IN (SELECT id FROM campaigns) AND phone = ? AND state = 0
        """

    /// An opt-out reply: the number joins the global list and its queued messages in every campaign are
    /// suppressed at once (logged). Returns how many queued messages were suppressed.
    public func optOutNow(_ phone: String, source: String) throws -> Int {
        try write { ctx in
            try ctx.statement("INSERT OR IGNORE INTO suppressions(phone, source, added_at) VALUES(?, ?, ?)").run([.text(phone), .text(source), .int(ctx.now)])
            var rows: [(Int64, String, String, Int)] = []
            try ctx.statement(Store.queuedForPhoneSQL)
                .query([.text(phone)]) { rows.append(($0.int(0), $0.text(1) ?? "", $0.text(2) ?? "", Int($0.int(3)))) }
            for (id, campaign, carrier, attempts) in rows {
                try ctx.statement("UPDATE messages SET state = 9, reason = 'opt-out', detail = ?, updated_at = ? WHERE id = ?")
                    .run([.text("opt-out: replied \(source)"), .int(ctx.now), .int(id)])
                ctx.count(campaign: campaign, carrier: carrier, from: .queued, to: .suppressed)
                try ctx.statement("""
                    INSERT INTO reason_counts(campaign_id, reason, n) VALUES(?, 'opt-out', 1)
                    ON CONFLICT(campaign_id, reason) DO UPDATE SET n = n + 1
                    """).run([.text(campaign)])
                try ctx.emit(DeliveryEvent(time: ctx.now, campaign: campaign, message: id, recipient: phone, carrier: carrier,
                                           event: "suppressed", status: "suppressed", attempt: attempts, detail: "opt-out reply (\(source))"))
            }
            return rows.count
        }
    }

    /// Turns `sent` messages whose final receipt is overdue into `unknown` (at most `limit` per call).
    public func expireReceipts(olderThan cutoff: UnixMillis, limit: Int = 20_000) throws -> Int {
        try write { ctx in
            var rows: [(Int64, String, String?, String, Int)] = []
            try ctx.statement("SELECT id, campaign_id, phone, carrier, attempts FROM messages WHERE state = 2 AND updated_at < ? LIMIT ?")
                .query([.int(cutoff), .int(Int64(limit))]) { rows.append(($0.int(0), $0.text(1) ?? "", $0.text(2), $0.text(3) ?? "", Int($0.int(4)))) }
            for (id, campaign, phone, carrier, attempts) in rows {
                try ctx.statement("UPDATE messages SET state = 7, detail = ?, updated_at = ? WHERE id = ?")
                    .run([.text("no final receipt in time"), .int(ctx.now), .int(id)])
                ctx.count(campaign: campaign, carrier: carrier, from: .sent, to: .unknown)
                try ctx.emit(DeliveryEvent(time: ctx.now, campaign: campaign, message: id, recipient: phone, carrier: carrier,
                                           event: "unknown", status: "unknown", attempt: attempts, detail: "no final receipt in time"))
            }
            // Receipts for gateway ids no message ever got (a gateway's mistake, or another system's traffic).
            if ctx.hasPendingReceipts { try ctx.statement("DELETE FROM pending_receipts WHERE received_at < ?").run([.int(cutoff)]) }
            return rows.count
        }
    }

    /// Removes numbers from the global opt-out list (a citizen opting back in); returns how many were there.
    public func removeOptOuts(_ phones: [String]) throws -> Int {
        try write { ctx in
            let st = try ctx.statement("DELETE FROM suppressions WHERE phone = ?")
            var removed = 0
            for p in phones {
                try st.run([.text(p)])
                removed += ctx.db.changes
            }
            return removed
        }
    }

    /// The whole opt-out list, in number order.
    public func optOuts() throws -> [String] {
        try write { ctx in
            var out: [String] = []
            try ctx.statement("SELECT phone FROM suppressions ORDER BY phone").query { out.append($0.text(0) ?? "") }
            return out
        }
    }

    public func optOutCount() throws -> Int64 {
        try write { ctx in
            var n: Int64 = 0
            try ctx.statement("SELECT COUNT(*) FROM suppressions").query { n = $0.int(0) }
            return n
        }
    }

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

    /// Benchmark baseline only: inserts raw (phone, text) pairs in one transaction, into the messages table
    /// (same indexes as ingest) or, with `bare`, into a table without indexes.
    public func rawInsert(_ rows: [(String, String)], bare: Bool = false) throws {
        let copy = rows.map { [$0.0, $0.1] }
        try write { ctx in
            if bare { try ctx.db.exec("CREATE TABLE IF NOT EXISTS bench_bare(id INTEGER PRIMARY KEY, phone TEXT, rest TEXT)") }
            let st = try ctx.statement(bare ? "INSERT INTO bench_bare(phone, rest) VALUES(?, ?)"
                                            : "INSERT OR IGNORE INTO messages(campaign_id, phone, carrier, text, state, updated_at) VALUES('raw', ?, 'k', ?, 0, 0)")
            for r in copy { try st.run([.text(r[0]), .text(r[1])]) }
        }
    }

    /// The numbers of a campaign's messages in `states`, in id order after `after`: the source of a reminder wave.
    public func recipients(of campaign: String, states: [MessageState], after: Int64, limit: Int) throws -> [(id: Int64, phone: String)] {
        let codes = states.map { String($0.rawValue) }.joined(separator: ",")
        return try write { ctx in
            var out: [(Int64, String)] = []
            try ctx.statement("SELECT id, phone FROM messages WHERE campaign_id = ? AND state IN (\(codes)) AND phone IS NOT NULL AND id > ? ORDER BY id LIMIT ?")
                .query([.text(campaign), .int(after), .int(Int64(limit))]) { out.append(($0.int(0), $0.text(1) ?? "")) }
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
                out.append(ReportRow(id: r.int(0), phone: r.text(1) ?? "", carrier: r.text(2) ?? "",
                                     state: (MessageState(rawValue: Int(r.int(3))) ?? .unknown).name, reason: r.text(4) ?? "",
                                     attempts: Int(r.int(5)), updatedAt: r.int(6), source: r.text(7) ?? "", line: Int(r.int(8)),
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
            return ReportData(bucketMillis: width, timeline: timeline, reasons: reasons,
                              groups: groups.keys.sorted().map { .init(name: $0, states: groups[$0]!) })
        }
    }

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
                current = CampaignState(rawValue: $0.text(0) ?? "")
                startAt = $0.int(1)
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
            for sql in ["DELETE FROM messages WHERE campaign_id = ?", "DELETE FROM counts WHERE campaign_id = ?", "DELETE FROM skipped WHERE campaign_id = ?",
                        "DELETE FROM reason_counts WHERE campaign_id = ?", "DELETE FROM campaign_exclusions WHERE campaign_id = ?",
                        "DELETE FROM campaigns WHERE id = ?"] {
                try ctx.statement(sql).run([.text(id)])
            }
        }
    }

    public func campaigns() throws -> [CampaignRecord] {
        try write { ctx in try ctx.campaignRecords(id: nil) }
    }

    public func campaign(_ id: String) throws -> CampaignRecord? {
        try write { ctx in try ctx.campaignRecords(id: id).first }
    }

    /// Moves due `scheduled` campaigns to `running`, and active campaigns past their deadline: their queued
    /// messages to `expired` (at most `limit` per call; call again while it returns true), the campaign to `expired`.
    /// Running campaigns with nothing queued or in flight become `completed`. Returns true if more expiry work remains.
    public func advanceCampaigns(now: UnixMillis, limit: Int = 20_000) throws -> Bool {
        try write { try $0.advanceCampaigns(now: now, limit: limit) }
    }

    /// Takes up to `limit` queued messages of one campaign and carrier whose retry time has come, marks them
    /// `sending` (committed before this returns, so before any request leaves) and returns them in id order.
    /// With a contact `policy`, a number that already had its share of messages in the rolling window is held
    /// (`not_before` moves to when it may be contacted again), or expires with reason `frequency-cap` when that
    /// time is at or past `deadline`.
    public func claim(campaign: String, carrier: String, limit: Int, now: UnixMillis,
                      policy: ContactPolicy? = nil, deadline: UnixMillis = .max, until: UnixMillis = .max) throws -> [OutgoingMessage] {
        try write { ctx in
            // The transaction's own time decides: a claim that waited in the writer's queue past the window's
            // close (or the deadline) sends nothing.
            guard ctx.now < until && ctx.now < deadline else { return [] }
            return try ctx.claim(campaign: campaign, carrier: carrier, limit: limit, now: now, policy: policy, deadline: deadline)
        }
    }

    /// Failover: moves up to `limit` queued messages of a campaign from carrier `from` (down) to `to`, logging each
    /// move as a `rerouted` event. Returns how many moved.
    public func reroute(campaign: String, from: String, to: String, limit: Int, reason: String) throws -> Int {
        try write { ctx in
            var rows: [(Int64, String?, Int)] = []
            try ctx.statement("SELECT id, phone, attempts FROM messages WHERE campaign_id = ? AND carrier = ? AND state = 0 ORDER BY id LIMIT ?")
                .query([.text(campaign), .text(from), .int(Int64(limit))]) { rows.append(($0.int(0), $0.text(1), Int($0.int(2)))) }
            let upd = try ctx.statement("UPDATE messages SET carrier = ?, updated_at = ? WHERE id = ?")
            for (id, phone, attempts) in rows {
                try upd.run([.text(to), .int(ctx.now), .int(id)])
                try ctx.emit(DeliveryEvent(time: ctx.now, campaign: campaign, message: id, recipient: phone, carrier: to, event: "rerouted",
                                           status: "queued", attempt: attempts, detail: "from \(from): \(reason)"))
            }
            ctx.moveCount(campaign: campaign, state: .queued, from: from, to: to, by: Int64(rows.count))
            return rows.count
        }
    }

    /// Records send outcomes in one transaction.
    public func record(_ outcomes: [SendOutcome]) throws {
        guard !outcomes.isEmpty else { return }
        try write { ctx in try ctx.record(all: outcomes) }
    }

    /// Records send outcomes without waiting: they join the writer's next transaction (with the dispatcher's
    /// next claim, typically), in the order queued. `failed` is called on the writer thread if the
    /// transaction fails; the messages then stay `sending` and become `unknown` at the next start, never resent.
    /// ``close()`` records whatever is still queued.
    public func recordSoon(_ outcomes: [SendOutcome], failed: @escaping @Sendable (Error) -> Void) {
        guard !outcomes.isEmpty else { return }
        let job = Job({ ctx in try ctx.record(all: outcomes) }) { result in
            if case .failure(let error) = result { failed(error) }
        }
        do { try queueJob(job) } catch { failed(error) }
    }

    /// Applies receipts in one transaction and returns what each did.
    public func apply(_ receipts: [ReceiptUpdate]) throws -> [ReceiptResult] {
        let (results, latencies) = try write { ctx -> ([ReceiptResult], [Int64]) in
            ctx.receiptLatencies.removeAll(keepingCapacity: true)
            let r = try receipts.map { try ctx.apply($0) }
            return (r, ctx.receiptLatencies)
        }
        if !latencies.isEmpty { receiptLatency.withLock { h in for l in latencies { h.observe(millis: l) } } }
        return results
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

    /// The states of every message of a campaign, by phone (for tests and reports).
    public func messageStates(campaign: String) throws -> [(phone: String?, state: MessageState, attempts: Int)] {
        let rows = try write { ctx -> [MessageRow] in
            var out: [MessageRow] = []
            try ctx.statement("SELECT phone, state, attempts FROM messages WHERE campaign_id = ? ORDER BY id").query([.text(campaign)]) {
                out.append(MessageRow(phone: $0.text(0), state: Int($0.int(1)), attempts: Int($0.int(2))))
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

/// A campaign the dispatcher should look at.
public struct ActiveCampaign: Sendable, Equatable {
    public var id: String
    public var state: CampaignState
    public var sender: String
    public var startAt: UnixMillis
    public var deadlineAt: UnixMillis
    /// Carriers with queued messages (whether or not their retry time has come).
    public var carriers: [String]
    public var windows: SendWindows
    public var priority: CampaignPriority
    public var weight: Int
    public var maxRate: Double?
    /// The carriers the campaign may use (empty: any).
    public var allowedCarriers: [String] = []
    /// Whether its messages may move to another allowed carrier while theirs is down.
    public var failover: Bool = false
}

// MARK: - Writer-thread implementations

extension WriteContext {
    func recoverInFlight() throws {
        // The counts move with the rows in the same transactions: none in flight, nothing to scan (there is no
        // index on `sending`, so the scan reads the whole table).
        var inFlight: Int64 = 0
        try statement("SELECT COALESCE(SUM(n), 0) FROM counts WHERE state = ?").query([.int(Int64(MessageState.sending.rawValue))]) { inFlight = $0.int(0) }
        guard inFlight > 0 else { return }
        var rows: [(Int64, String, String?, String, Int)] = []
        try statement("SELECT id, campaign_id, phone, carrier, attempts FROM messages WHERE state = 1").query {
            rows.append(($0.int(0), $0.text(1) ?? "", $0.text(2), $0.text(3) ?? "", Int($0.int(4))))
        }
        let upd = try statement("UPDATE messages SET state = ?, detail = ?, updated_at = ? WHERE id = ?")
        let detail = "daemon stopped while the request was in flight; not resent"
        var perCampaign: [String: Int64] = [:]
        for (id, campaign, phone, carrier, attempts) in rows {
            try upd.run([.int(Int64(MessageState.unknown.rawValue)), .text(detail), .int(now), .int(id)])
            count(campaign: campaign, carrier: carrier, from: .sending, to: .unknown)
            try emit(DeliveryEvent(time: now, campaign: campaign, message: id, recipient: phone, carrier: carrier,
                                   event: "unknown", status: "unknown", attempt: attempts, detail: detail))
            perCampaign[campaign, default: 0] += 1
        }
        // Kept per campaign across starts: `unknown` also counts receipts that never came, and the operator
        // needs to tell the two apart.
        let bump = try statement("UPDATE campaigns SET recovered_unknown = recovered_unknown + ? WHERE id = ?")
        for (campaign, n) in perCampaign { try bump.run([.int(n), .text(campaign)]) }
        recovery.unknownMessages = Int64(rows.count)
        recovery.unknownByCampaign = perCampaign
    }

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
        try statement("SELECT generation FROM campaigns WHERE id = ?").query([.text(id)]) { current = $0.int(0) }
        guard let current else { throw StoreError.notFound("campaign \(id)") }
        guard current == generation else {
            throw StoreError.conflict("campaign \(id) was discarded (and perhaps created again) since this request began")
        }
    }

    func requireState(_ id: String, _ state: CampaignState) throws {
        var current: String?
        try statement("SELECT state FROM campaigns WHERE id = ?").query([.text(id)]) { current = $0.text(0) }
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
        let insert = try statement("""
            INSERT OR IGNORE INTO messages(campaign_id, phone, raw_phone, carrier, source, line, text, encoding, segments, state, detail, reason, updated_at, grp)
            VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let skip = try statement("INSERT INTO skipped(campaign_id, source, line, raw, reason, detail) VALUES(?, ?, ?, ?, ?, ?)")
        // Two lookups per row only when there is anything to look up.
        var anySuppression = false
        try statement("SELECT EXISTS(SELECT 1 FROM suppressions) OR EXISTS(SELECT 1 FROM campaign_exclusions WHERE campaign_id = ?)")
            .query([.text(campaign)]) { anySuppression = $0.int(0) != 0 }
        for row in rows {
            c.rows += 1
            switch row {
            case .accepted(let phone, let carrier, let text, let encoding, let segments, let source, let line, let raw, let group):
                let suppression = anySuppression ? try suppressionReason(campaign: campaign, phone: phone) : nil
                let state: MessageState = suppression == nil ? .queued : .suppressed
                try insert.run([.text(campaign), .text(phone), .text(raw), .text(carrier), .text(source), .int(Int64(line)), .text(text),
                                .int(encoding == .ucs2 ? 1 : 0), .int(Int64(segments)), .int(Int64(state.rawValue)),
                                .opt(suppression.map { "\($0): not sent" }), .opt(suppression), .int(now), .opt(group)])
                if db.changes == 0 {
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
        return c
    }

    /// `opt-out` if the number is on the global list, `excluded` if on the campaign's exclusion list, else nil.
    func suppressionReason(campaign: String, phone: String) throws -> String? {
        var found = false
        try statement("SELECT 1 FROM suppressions WHERE phone = ?").query([.text(phone)]) { _ in found = true }
        if found { return "opt-out" }
        try statement("SELECT 1 FROM campaign_exclusions WHERE campaign_id = ? AND phone = ?").query([.text(campaign), .text(phone)]) { _ in found = true }
        return found ? "excluded" : nil
    }

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

    /// See ``Store/activeWorkAndFailures()``: campaigns whose spec cannot be sent from go to `failed` and `bad`.
    func activeWork(failing bad: inout [(id: String, reason: String)]) throws -> [ActiveCampaign] {
        var out: [ActiveCampaign] = []
        try statement("SELECT id, state, sender, start_at, deadline_at, spec FROM campaigns WHERE state IN ('scheduled', 'running', 'paused') ORDER BY created_at, id").query { r in
            let id = r.text(0) ?? ""
            guard let text = r.text(5), let spec = try? JSONDecoder().decode(CampaignSubmission.self, from: Data(text.utf8)) else {
                bad.append((id, "the stored campaign cannot be read"))
                return
            }
            let issues = CampaignRules.check(spec, knownCarriers: nil, templates: false)
            guard issues.isEmpty else {
                bad.append((id, "the stored campaign breaks the rules: " + issues.map(\.description).joined(separator: "; ")))
                return
            }
            out.append(ActiveCampaign(id: id, state: CampaignState(rawValue: r.text(1) ?? "") ?? .scheduled,
                                      sender: r.text(2) ?? "", startAt: r.int(3), deadlineAt: r.int(4), carriers: [],
                                      windows: spec.sendWindows, priority: spec.priority, weight: spec.weight, maxRate: spec.maxRate,
                                      allowedCarriers: spec.carriers, failover: spec.failover))
        }
        for (id, reason) in bad {
            try statement("UPDATE campaigns SET state = ?, failure = ?, updated_at = ? WHERE id = ?")
                .run([.text(CampaignState.failed.rawValue), .text(reason), .int(now), .text(id)])
        }
        let carriers = try statement("SELECT carrier FROM counts WHERE campaign_id = ? AND state = 0 AND n > 0 ORDER BY carrier")
        for i in out.indices {
            try carriers.query([.text(out[i].id)]) { out[i].carriers.append($0.text(0) ?? "") }
        }
        return out
    }

    /// Ends up to `budget` queued messages of a campaign in `state` (expired or cancelled); returns how many.
    private func endQueued(campaign id: String, to state: MessageState, event: String, detail: String, budget: Int) throws -> Int {
        var rows: [(Int64, String?, String, Int)] = []
        try statement("SELECT id, phone, carrier, attempts FROM messages WHERE campaign_id = ? AND state = 0 ORDER BY id LIMIT ?")
            .query([.text(id), .int(Int64(budget))]) { rows.append(($0.int(0), $0.text(1), $0.text(2) ?? "", Int($0.int(3)))) }
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
        // Cancelled: what was still queued is cancelled, never sent.
        var cancelled: [String] = []
        try statement("SELECT DISTINCT c.id FROM campaigns c JOIN counts n ON n.campaign_id = c.id WHERE c.state = 'cancelled' AND n.state = 0 AND n.n > 0")
            .query { cancelled.append($0.text(0) ?? "") }
        for id in cancelled {
            budget -= try endQueued(campaign: id, to: .cancelled, event: "cancelled", detail: "campaign cancelled before sending", budget: budget)
            if budget <= 0 { return true }
        }
        // Failed: what was still queued is cancelled, never sent, with the campaign's reason.
        var failed: [(String, String)] = []
        try statement("SELECT DISTINCT c.id, c.failure FROM campaigns c JOIN counts n ON n.campaign_id = c.id WHERE c.state = 'failed' AND n.state = 0 AND n.n > 0")
            .query { failed.append(($0.text(0) ?? "", $0.text(1) ?? "")) }
        for (id, reason) in failed {
            budget -= try endQueued(campaign: id, to: .cancelled, event: "cancelled", detail: "campaign failed: \(reason)", budget: budget)
            if budget <= 0 { return true }
        }
        // Past the deadline: expire what was never sent (paused campaigns too).
        var due: [String] = []
        try statement("SELECT id FROM campaigns WHERE state IN ('scheduled', 'running', 'paused') AND deadline_at <= ?").query([.int(t)]) { due.append($0.text(0) ?? "") }
        for id in due {
            budget -= try endQueued(campaign: id, to: .expired, event: "expired", detail: "deadline passed before sending", budget: budget)
            if budget <= 0 { return true }
            var inFlight: Int64 = 0
            try statement("SELECT COALESCE(SUM(n), 0) FROM counts WHERE campaign_id = ? AND state = 1").query([.text(id)]) { inFlight = $0.int(0) }
            if inFlight == 0 { try setCampaignState(id, .expired) }
        }
        // Contacts older than the longest policy window (7 days) no longer count.
        try statement("DELETE FROM contacts WHERE sent_at < ?").run([.int(t - 7 * 86_400_000)])
        // Running campaigns with nothing left to send are complete (receipts may still arrive).
        try statement("""
            UPDATE campaigns SET state = 'completed', updated_at = ? WHERE state = 'running' AND NOT EXISTS
            (SELECT 1 FROM counts WHERE counts.campaign_id = campaigns.id AND counts.state IN (0, 1) AND counts.n > 0)
            """).run([.int(t)])
        return false
    }

    func claim(campaign: String, carrier: String, limit: Int, now t: UnixMillis,
               policy: ContactPolicy? = nil, deadline: UnixMillis = .max) throws -> [OutgoingMessage] {
        var out: [OutgoingMessage] = []
        try statement("""
            SELECT id, phone, text, encoding, segments, attempts FROM messages
            WHERE campaign_id = ? AND carrier = ? AND state = 0 AND not_before <= ? ORDER BY id LIMIT ?
            """).query([.text(campaign), .text(carrier), .int(t), .int(Int64(limit))]) { r in
            out.append(OutgoingMessage(id: r.int(0), campaign: campaign, phone: r.text(1) ?? "", carrier: carrier, text: r.text(2) ?? "",
                                       encoding: r.int(3) == 1 ? .ucs2 : .gsm7, segments: Int(r.int(4)), attempt: Int(r.int(5)) + 1))
        }
        let suppress = try statement("UPDATE messages SET state = 9, reason = ?, detail = ?, updated_at = ? WHERE id = ?")
        // Two lookups per message only when there is anything to find (most campaigns have no opt-outs yet).
        var anySuppression = false
        try statement("SELECT EXISTS(SELECT 1 FROM suppressions) OR EXISTS(SELECT 1 FROM campaign_exclusions WHERE campaign_id = ?)")
            .query([.text(campaign)]) { anySuppression = $0.int(0) != 0 }
        var sending: [OutgoingMessage] = []
        sending.reserveCapacity(out.count)
        for m in out {
            // Opted out or excluded after the campaign was submitted: never sent.
            if anySuppression, let reason = try suppressionReason(campaign: campaign, phone: m.phone) {
                try suppress.run([.text(reason), .text("\(reason): found before sending"), .int(now), .int(m.id)])
                count(campaign: campaign, carrier: carrier, from: .queued, to: .suppressed)
                try statement("""
                    INSERT INTO reason_counts(campaign_id, reason, n) VALUES(?, ?, 1)
                    ON CONFLICT(campaign_id, reason) DO UPDATE SET n = n + 1
                    """).run([.text(campaign), .text(reason)])
                try emit(DeliveryEvent(time: now, campaign: campaign, message: m.id, recipient: m.phone, carrier: carrier,
                                       event: "suppressed", status: "suppressed", attempt: m.attempt - 1, detail: "\(reason): found before sending"))
                continue
            }
            if let policy {
                var recent: [UnixMillis] = []
                try statement("SELECT sent_at FROM contacts WHERE phone = ? AND sent_at > ? AND message_id != ?")
                    .query([.text(m.phone), .int(t - policy.windowMillis), .int(m.id)]) { recent.append($0.int(0)) }
                if case .holdUntil(let until) = policy.decide(recent: recent, now: t) {
                    if until >= deadline {
                        try statement("UPDATE messages SET state = 6, reason = 'frequency-cap', detail = ?, updated_at = ? WHERE id = ?")
                            .run([.text("frequency-cap: the number may not be messaged again before the deadline"), .int(now), .int(m.id)])
                        count(campaign: campaign, carrier: carrier, from: .queued, to: .expired)
                        try emit(DeliveryEvent(time: now, campaign: campaign, message: m.id, recipient: m.phone, carrier: carrier, event: "expired",
                                               status: "expired", attempt: m.attempt - 1, detail: "frequency-cap: no allowed time before the deadline"))
                    } else {
                        try statement("UPDATE messages SET not_before = ?, updated_at = ? WHERE id = ?").run([.int(until), .int(now), .int(m.id)])
                        try emit(DeliveryEvent(time: now, campaign: campaign, message: m.id, recipient: m.phone, carrier: carrier, event: "held",
                                               status: "queued", attempt: m.attempt - 1, detail: "frequency-cap: held until \(ISOTime.format(until))"))
                    }
                    continue
                }
                try statement("INSERT INTO contacts(phone, sent_at, message_id) VALUES(?, ?, ?)").run([.text(m.phone), .int(t), .int(m.id)])
            }
            try emit(DeliveryEvent(time: now, campaign: campaign, message: m.id, recipient: m.phone, carrier: carrier,
                                   event: "sending", status: "sending", attempt: m.attempt))
            sending.append(m)
        }
        // One statement per 100 messages: SQLite's cost of an UPDATE is mostly per statement (a cursor on
        // the table and on each of its indexes), not per row.
        var start = 0
        while start < sending.count {
            let chunk = sending[start..<min(sending.count, start + 100)]
            try statement("UPDATE messages SET state = 1, attempts = attempts + 1, updated_at = ? WHERE id IN (?"
                          + String(repeating: ", ?", count: chunk.count - 1) + ")").run([.int(now)] + chunk.map { .int($0.id) })
            start += 100
        }
        out = sending
        count(campaign: campaign, carrier: carrier, from: .queued, to: .sending, by: Int64(out.count))
        return out
    }

    private struct Current {
        var campaign: String
        var phone: String?
        var carrier: String
        var state: MessageState
        var attempts: Int
        var gatewayID: String?
        var receiptRank: Int
        var sentAt: UnixMillis?
        var segments: Int
        /// A bit (1 << status) per receipt status the message got as a whole.
        var receiptsSeen: Int64
    }

    private func current(_ id: Int64) throws -> Current? {
        var c: Current?
        try statement("""
            SELECT campaign_id, phone, carrier, state, attempts, gateway_id, receipt_rank, sent_at, segments, receipts_seen FROM messages WHERE id = ?
            """).query([.int(id)]) { r in
            c = Current(campaign: r.text(0) ?? "", phone: r.text(1), carrier: r.text(2) ?? "", state: MessageState(rawValue: Int(r.int(3))) ?? .unknown,
                        attempts: Int(r.int(4)), gatewayID: r.text(5), receiptRank: Int(r.int(6)), sentAt: r.isNull(7) ? nil : r.int(7),
                        segments: Int(r.int(8)), receiptsSeen: r.int(9))
        }
        return c
    }

    /// Records outcomes in order; runs of acceptances of claimed messages go 100 to a statement.
    func record(all outcomes: [SendOutcome]) throws {
        var i = 0
        while i < outcomes.count {
            var j = i
            while j < outcomes.count, j - i < 100, outcomes[j].claimed != nil, case .accepted = outcomes[j].result { j += 1 }
            if j - i >= 2 {
                if try !recordAccepted(outcomes[i..<j]) {
                    for k in i..<j { try record(outcomes[k]) }
                }
                i = j
            } else {
                try record(outcomes[i])
                i += 1
            }
        }
    }

    /// Acceptances of claimed messages in one UPDATE, when every one of them is still as claimed (`sending`,
    /// same attempt, no gateway id); otherwise changes nothing and returns false (a receipt overtook one of
    /// the send answers: the general path decides each).
    private func recordAccepted(_ run: ArraySlice<SendOutcome>) throws -> Bool {
        guard let next = MessageLifecycle.next(.sending, on: .accepted) else { return false }
        var items: [(message: OutgoingMessage, gatewayID: String?, detail: String?, parts: [String])] = []
        for o in run {
            guard case .accepted(let gid, let detail, let parts) = o.result, let m = o.claimed else { return false }
            items.append((m, gid, detail, parts))
        }
        var args: [SQLValue] = [.int(now), .int(now)]
        args.reserveCapacity(2 + items.count * 4)
        for (m, gid, detail, _) in items { args += [.int(m.id), .opt(gid), .opt(detail), .int(Int64(m.attempt))] }
        try statement("SAVEPOINT bulk").run()
        try statement("""
            UPDATE messages SET state = \(next.rawValue), gateway_id = v.column2, detail = COALESCE(v.column3, messages.detail),
            updated_at = ?, sent_at = ? FROM (VALUES (?, ?, ?, ?)\(String(repeating: ", (?, ?, ?, ?)", count: run.count - 1))) AS v
            WHERE messages.id = v.column1 AND messages.state = 1 AND messages.attempts = v.column4 AND messages.gateway_id IS NULL
            """).run(args)
        guard db.changes == run.count else {
            try statement("ROLLBACK TO bulk").run()
            try statement("RELEASE bulk").run()
            return false
        }
        try statement("RELEASE bulk").run()
        // The counters move once per campaign and carrier of the run (nearly always one), not once per message.
        var group = (campaign: items[0].message.campaign, carrier: items[0].message.carrier, n: Int64(0))
        for (m, gid, detail, parts) in items {
            if m.campaign != group.campaign || m.carrier != group.carrier {
                count(campaign: group.campaign, carrier: group.carrier, from: .sending, to: next, by: group.n)
                group = (m.campaign, m.carrier, 0)
            }
            group.n += 1
            try movedFromSending(m, to: next, event: "accepted", attempt: m.attempt, gatewayID: gid, detail: detail, parts: parts, counted: true)
        }
        count(campaign: group.campaign, carrier: group.carrier, from: .sending, to: next, by: group.n)
        return true
    }

    func record(_ o: SendOutcome) throws {
        let event: MessageEvent
        var name: String
        var detail: String?
        var gatewayID: String?
        var notBefore: UnixMillis?
        var parts: [String] = []
        switch o.result {
        case .accepted(let gid, let d, let p): event = .accepted; name = "accepted"; gatewayID = gid; detail = d; parts = p
        case .retry(let nb, let d): event = .temporaryFailure(retry: true, pastDeadline: false); name = "retry"; detail = d; notBefore = nb
        case .requeue(let nb, let d): event = .temporaryFailure(retry: true, pastDeadline: false); name = "requeued"; detail = d; notBefore = nb
        case .failed(let d): event = .permanentFailure; name = "failed"; detail = d
        case .expired(let d): event = .temporaryFailure(retry: false, pastDeadline: true); name = "expired"; detail = d
        case .unknown(let d): event = .crashRecovered; name = "unknown"; detail = d
        }
        if let m = o.claimed, try recordClaimed(m, o.result, event: event, name: name, gatewayID: gatewayID, detail: detail, parts: parts,
                                                notBefore: notBefore) {
            return
        }
        guard let cur = try current(o.id) else { return }
        let next = MessageLifecycle.next(cur.state, on: event)
        var isAccepted = false
        if case .accepted = o.result { isAccepted = true }
        // Stale: e.g. a retry answer after a final receipt. A late "accepted" is still logged: the story stays whole.
        if next == nil && gatewayID == nil && !isAccepted { return }
        let newState = next ?? cur.state
        if next == nil { name = "accepted" }
        let accepted = next == .sent
        var refund = false
        if case .requeue = o.result, next == .queued { refund = true }
        // A late answer (a receipt overtook it) keeps the reason a final receipt gave ("0: Accepted for delivery"
        // must not replace "UNDELIV err 001"), and sets `sent_at` only if the receipt did not.
        let keepDetail = next == nil && cur.state.isFinal
        try statement("""
            UPDATE messages SET state = ?, gateway_id = COALESCE(?, gateway_id), detail = CASE WHEN ? THEN detail ELSE COALESCE(?, detail) END,
            not_before = COALESCE(?, not_before), updated_at = ?,
            sent_at = CASE WHEN ? THEN ? WHEN ? THEN COALESCE(sent_at, ?) ELSE sent_at END,
            attempts = attempts - ? WHERE id = ?
            """).run([.int(Int64(newState.rawValue)), .opt(gatewayID), .int(keepDetail ? 1 : 0), .opt(detail), .opt(notBefore), .int(now),
                      .int(accepted ? 1 : 0), .int(now), .int(isAccepted ? 1 : 0), .int(now), .int(refund ? 1 : 0), .int(o.id)])
        if let next { count(campaign: cur.campaign, carrier: cur.carrier, from: cur.state, to: next) }
        try emit(DeliveryEvent(time: now, campaign: cur.campaign, message: o.id, recipient: cur.phone, carrier: cur.carrier, event: name,
                               status: newState.name, attempt: cur.attempts - (refund ? 1 : 0), gatewayID: gatewayID ?? cur.gatewayID, detail: detail))
        if isAccepted { try recordParts(parts, message: o.id, carrier: cur.carrier) }
        if let gatewayID, hasPendingReceipts { try applyPendingReceipts(carrier: cur.carrier, gatewayID: gatewayID, message: o.id) }
    }

    /// The part ids a send answer named: kept, so that receipts keyed by any of them find the message, and
    /// receipts that came for them before the answer are applied.
    private func recordParts(_ parts: [String], message: Int64, carrier: String) throws {
        guard !parts.isEmpty else { return }
        for p in parts where !p.isEmpty {
            try statement("""
                INSERT INTO message_parts(message_id, part_id, carrier, named) VALUES(?, ?, ?, 1)
                ON CONFLICT(message_id, part_id) DO UPDATE SET named = 1
                """).run([.int(message), .text(p), .text(carrier)])
        }
        if hasPendingReceipts { for p in parts where !p.isEmpty { try applyPendingReceipts(carrier: carrier, gatewayID: p, message: message) } }
    }

    /// ``record`` of a message the caller claimed, nearly always still `sending` with the claimed attempt: one
    /// UPDATE, the log line from what the caller holds (a `sending` row has no gateway id yet: receipts that
    /// bring one also move the state). False when the row has moved on (a receipt overtook the send answer):
    /// the general path decides then.
    private func recordClaimed(_ m: OutgoingMessage, _ result: SendResult, event: MessageEvent, name: String, gatewayID: String?,
                               detail: String?, parts: [String], notBefore: UnixMillis?) throws -> Bool {
        guard let next = MessageLifecycle.next(.sending, on: event) else { return false }
        var refund = false
        if case .requeue = result, next == .queued { refund = true }
        try statement("""
            UPDATE messages SET state = ?, gateway_id = ?, detail = COALESCE(?, detail), not_before = COALESCE(?, not_before),
            updated_at = ?, sent_at = CASE WHEN ? THEN ? ELSE sent_at END, attempts = attempts - ?
            WHERE id = ? AND state = 1 AND attempts = ? AND gateway_id IS NULL
            """).run([.int(Int64(next.rawValue)), .opt(gatewayID), .opt(detail), .opt(notBefore), .int(now),
                      .int(next == .sent ? 1 : 0), .int(now), .int(refund ? 1 : 0), .int(m.id), .int(Int64(m.attempt))])
        guard db.changes == 1 else { return false }
        try movedFromSending(m, to: next, event: name, attempt: m.attempt - (refund ? 1 : 0), gatewayID: gatewayID, detail: detail, parts: parts)
        return true
    }

    /// What follows a claimed message's move out of `sending`: the counters, its log line (from what the caller
    /// holds, no read-back), and receipts that named its gateway id before the send answer.
    private func movedFromSending(_ m: OutgoingMessage, to next: MessageState, event: String, attempt: Int, gatewayID: String?,
                                  detail: String?, parts: [String] = [], counted: Bool = false) throws {
        if !counted { count(campaign: m.campaign, carrier: m.carrier, from: .sending, to: next) }
        try emit(DeliveryEvent(time: now, campaign: m.campaign, message: m.id, recipient: m.phone, carrier: m.carrier, event: event,
                               status: next.name, attempt: attempt, gatewayID: gatewayID, detail: detail))
        try recordParts(parts, message: m.id, carrier: m.carrier)
        if let gatewayID, hasPendingReceipts { try applyPendingReceipts(carrier: m.carrier, gatewayID: gatewayID, message: m.id) }
    }

    /// Receipts that named `gatewayID` before its send answer was recorded.
    private func applyPendingReceipts(carrier: String, gatewayID: String, message: Int64) throws {
        var pending: [(Int64, Int, String?)] = []
        try statement("SELECT rowid, status, detail FROM pending_receipts WHERE carrier = ? AND gateway_id = ? ORDER BY status")
            .query([.text(carrier), .text(gatewayID)]) { pending.append(($0.int(0), Int($0.int(1)), $0.text(2))) }
        for (rowid, status, d) in pending {
            if let st = ReceiptStatus(rawValue: status) {
                _ = try apply(ReceiptUpdate(carrier: carrier, messageID: message, status: st, gatewayID: gatewayID, detail: d))
            }
            try statement("DELETE FROM pending_receipts WHERE rowid = ?").run([.int(rowid)])
        }
    }

    /// One receipt. Each distinct status of a message (or of one of its parts) is recorded and logged once, in
    /// whatever order it comes; only an exact repeat (the same status for the same message or part) is a
    /// duplicate. A final status moves the message through ``MessageLifecycle``, which never leaves a final
    /// state, so a later receipt that contradicts it is logged and changes nothing. A multi-part message's
    /// part receipts decide its state as ``MessageParts`` says. Any receipt sets `sent_at` if the send answer
    /// has not (a receipt can overtake it), so the receipt latency counts every message.
    func apply(_ r: ReceiptUpdate) throws -> ReceiptResult {
        var r = r
        var namedPart = false
        if r.messageID == 0, let key = r.gatewayKey {
            var id: Int64?
            try statement("SELECT id FROM messages WHERE carrier = ? AND gateway_id = ? LIMIT 1").query([.text(r.carrier), .text(key)]) { id = $0.int(0) }
            if id == nil {
                try statement("SELECT message_id FROM message_parts WHERE carrier = ? AND part_id = ? AND named = 1 LIMIT 1")
                    .query([.text(r.carrier), .text(key)]) { id = $0.int(0) }
                namedPart = id != nil
            }
            guard let id else {
                // The send answer naming this id is not recorded yet (receipts can overtake it): keep the receipt.
                try statement("INSERT INTO pending_receipts(carrier, gateway_id, status, detail, received_at) VALUES(?, ?, ?, ?, ?)")
                    .run([.text(r.carrier), .text(key), .int(Int64(r.status.rawValue)), .opt(r.detail), .int(now)])
                hasPendingReceipts = true
                return .pending
            }
            r.messageID = id
        }
        guard let cur = try current(r.messageID) else { return .notFound }
        guard cur.carrier == r.carrier else { return .wrongCarrier }
        if !namedPart, cur.segments > 1, let g = r.gatewayID, g == cur.gatewayID {
            // An id both the message's and one of its named parts' (a gateway whose first part carries the message's id).
            try statement("SELECT 1 FROM message_parts WHERE message_id = ? AND part_id = ? AND named = 1").query([.int(r.messageID), .text(g)]) { _ in namedPart = true }
        }
        let bit = Int64(1) << Int64(r.status.rawValue)
        let part = MessageParts.part(of: r.gatewayID, segments: cur.segments, messageGatewayID: cur.gatewayID, namedPart: namedPart)
        // What the message as a whole takes from this receipt: its status, or nil while a multi-part message
        // waits for more parts.
        var status: ReceiptStatus? = r.status
        var reason = r.detail
        var expected = 1
        if let part {
            var (seen, partStatus): (Int64, Int64) = (0, 0)
            try statement("SELECT seen, status FROM message_parts WHERE message_id = ? AND part_id = ?").query([.int(r.messageID), .text(part)]) {
                seen = $0.int(0)
                partStatus = $0.int(1)
            }
            guard seen & bit == 0 else { return .duplicate }
            try statement("""
                INSERT INTO message_parts(message_id, part_id, carrier, seen, status, detail) VALUES(?, ?, ?, ?, ?, ?)
                ON CONFLICT(message_id, part_id) DO UPDATE SET seen = seen | excluded.seen,
                status = CASE WHEN status >= 10 THEN status ELSE excluded.status END,
                detail = CASE WHEN status >= 10 THEN detail ELSE COALESCE(excluded.detail, detail) END
                """).run([.int(r.messageID), .text(part), .text(r.carrier), .int(bit), .int(r.status.isFinal ? Int64(r.status.rawValue) : 0), .opt(r.detail)])
            // A part's first final receipt is its last word: a contradicting one is logged as an event.
            if r.status.isFinal && partStatus < 10 {
                var (known, delivered, named): (Int64, Int64, Int64) = (0, 0, 0)
                try statement("SELECT COUNT(*), COALESCE(SUM(status = 10), 0), COALESCE(SUM(named), 0) FROM message_parts WHERE message_id = ?")
                    .query([.int(r.messageID)]) { known = $0.int(0); delivered = $0.int(1); named = $0.int(2) }
                expected = MessageParts.expectedParts(segments: cur.segments, knownParts: Int(known), namedParts: Int(named))
                status = MessageParts.messageStatus(after: r.status, deliveredParts: Int(delivered), expectedParts: expected)
                if status != nil && status != .delivered { reason = MessageParts.reason(r.detail, status: r.status, parts: expected) }
            } else {
                status = nil
            }
        } else {
            guard cur.receiptsSeen & bit == 0 else { return .duplicate }
        }
        // A part's receipt that does not end the message moves it as an intermediate receipt would.
        let next = MessageLifecycle.next(cur.state, on: .receipt(status ?? .buffered))
        let newState = next ?? cur.state
        if let next, next.isFinal, let final = status {
            // A failure without words of the gateway's own still replaces the send answer's ("0: Accepted for delivery").
            reason = final.reason(reason) ?? (final == .delivered ? nil : final.name)
        }
        if next != nil || !cur.state.isFinal || part == nil {
            // The row's history bit, its newest state and reason; a final state's reason and state stay.
            let changes = next != nil || !cur.state.isFinal
            try statement("""
                UPDATE messages SET state = ?, receipt_rank = MAX(receipt_rank, ?), receipts_seen = receipts_seen | ?,
                gateway_id = COALESCE(gateway_id, ?), detail = CASE WHEN ? THEN COALESCE(?, detail) ELSE detail END,
                sent_at = COALESCE(sent_at, ?), updated_at = CASE WHEN ? THEN ? ELSE updated_at END WHERE id = ?
                """).run([.int(Int64(newState.rawValue)), .int(part == nil ? Int64(r.status.rawValue) : 0), .int(part == nil ? bit : 0),
                          .opt(part == nil ? r.gatewayID : nil), .int(changes ? 1 : 0), .opt(reason), .int(now), .int(changes ? 1 : 0), .int(now),
                          .int(r.messageID)])
        }
        if let next {
            count(campaign: cur.campaign, carrier: cur.carrier, from: cur.state, to: next)
            if next.isFinal { receiptLatencies.append(max(0, now - (cur.sentAt ?? now))) }
        }
        // The log line: the receipt's words (the stored reason when it ended the message), which part it was.
        var words = next?.isFinal == true ? reason : r.detail
        if part != nil, expected > 1, !(words ?? "").hasSuffix(" (a part of \(expected))") { words = (words ?? "part") + " (a part of \(expected))" }
        let logged = words.map { "\(r.status.name): \($0)" } ?? r.status.name
        try emit(DeliveryEvent(time: now, campaign: cur.campaign, message: r.messageID, recipient: cur.phone, carrier: cur.carrier,
                               event: "receipt", status: newState.name, attempt: cur.attempts, gatewayID: part ?? cur.gatewayID ?? r.gatewayID,
                               detail: logged))
        return .applied
    }
}
