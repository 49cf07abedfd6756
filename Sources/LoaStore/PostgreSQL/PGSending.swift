import Foundation
import LoaCore

// Claims and send outcomes on PostgreSQL. A claim locks the due queued rows it takes (`FOR UPDATE SKIP LOCKED`) and
// marks them `sending` with this node's name in the same transaction, committed before the call returns: one UPDATE
// per claim, whatever its size. SQLite's claim records (InFlightBook) are not needed here: PostgreSQL's cost per row is
// not SQLite's page per row, and a row that says `sending` and its node is what a survivor's recovery will need.

extension PostgresStore {
    public func claim(campaign: String, carrier: String, limit: Int, now: UnixMillis, policy: ContactPolicy?,
                      deadline: UnixMillis, until: UnixMillis) throws -> [OutgoingMessage] {
        let taken = ClaimAttempt()
        do {
            return try ackOfClaim(try write { ctx in
                // The transaction's own time decides: a claim that waited past the window's close (or the deadline) sends nothing.
                guard ctx.now < until && ctx.now < deadline else { return [] }
                // Fenced in the database too: a node whose lease ended (stopped, cut off) claims nothing.
                if let cluster = ctx.cluster, try !ctx.holdsLease(epoch: cluster.epoch) { return [] }
                let claimed = try ctx.claim(campaign: campaign, carrier: carrier, limit: limit, now: now, policy: policy, deadline: deadline)
                taken.ids.withLock { $0 = claimed.map(\.id) }
                return claimed
            })
        } catch let error as PostgresError where error.connectionLost {
            // The COMMIT may have reached the server: these messages may be `sending` here with nobody sending them.
            let ids = taken.ids.withLock { $0 }
            if !ids.isEmpty { unsureClaims.withLock { $0.formUnion(ids) } }
            throw error
        }
    }

    public func reroute(campaign: String, from: String, to: String, limit: Int, reason: String) throws -> Int {
        try write { ctx in
            let rows = try ctx.queuedRows(campaign: campaign, carrier: from, limit: limit)
            guard !rows.isEmpty else { return 0 }
            try ctx.run("UPDATE messages SET carrier = ?, updated_at = ? WHERE id = ANY(?::bigint[])",
                        [.text(to), .int(ctx.now), .text(PGContext.idArray(rows.map(\.id)))])
            for m in rows {
                ctx.emit(campaign: campaign, message: m.id, recipient: m.phone, carrier: to, event: "rerouted", status: "queued", attempt: m.attempts,
                         detail: "from \(from): \(reason)")
            }
            ctx.moveCount(campaign: campaign, state: .queued, from: from, to: to, by: Int64(rows.count))
            return rows.count
        }
    }

    public func record(_ outcomes: [SendOutcome]) throws {
        guard !outcomes.isEmpty else { return }
        try write { ctx in try ctx.record(all: outcomes) }
    }

    public func recordSoon(_ outcomes: [SendOutcome], failed: @escaping @Sendable (Error) -> Void) {
        guard !outcomes.isEmpty else { return }
        let job = PGJob({ ctx in try ctx.record(all: outcomes) }) { result in
            if case .failure(let error) = result { failed(error) }
        }
        do { try queue.push(job) } catch { failed(error) }
    }

    /// Queued messages due now (counted up to `limit`); more may come while some are queued for later or in flight.
    public func batchReadiness(campaign: String, carrier: String, now: UnixMillis, limit: Int) throws -> (ready: Int, moreMayCome: Bool) {
        try write { ctx in
            var ready = 0
            try ctx.query("""
                SELECT COUNT(*) AS n FROM (SELECT 1 FROM messages WHERE campaign_id = ? AND carrier = ? AND state = \(PGSchema.queued)
                AND not_before <= ? LIMIT ?) AS due
                """, [.text(campaign), .text(carrier), .int(now), .int(Int64(limit))]) { ready = Int($0.int("n")) }
            var later = false
            try ctx.query("SELECT EXISTS(SELECT 1 FROM messages WHERE campaign_id = ? AND carrier = ? AND state = \(PGSchema.queued) AND not_before > ?) AS later",
                          [.text(campaign), .text(carrier), .int(now)]) { later = $0.int("later") != 0 }
            let inFlight = try ctx.counted(campaign, .sending, carrier: carrier)
            return (ready, later || inFlight > 0)
        }
    }

    public func handedOverNotPassedOn(carriers: [String]) throws -> [(id: Int64, carrier: String, at: UnixMillis)] {
        guard !carriers.isEmpty else { return [] }
        return try write { ctx in
            var out: [(id: Int64, carrier: String, at: UnixMillis)] = []
            try ctx.query("""
                SELECT id, carrier, COALESCE(sent_at, updated_at) AS at FROM messages
                WHERE state = \(PGSchema.sent) AND receipt_rank = 0 AND carrier = ANY(?::text[]) ORDER BY id
                """, [.text(PGContext.textArray(carriers))]) { out.append(($0.int("id"), $0.text("carrier") ?? "", $0.int("at"))) }
            return out
        }
    }
}

extension PGContext {
    /// A `text[]` parameter's text: each element quoted.
    static func textArray(_ items: [String]) -> String { optionalTextArray(items) }

    func claim(campaign: String, carrier: String, limit: Int, now t: UnixMillis, policy: ContactPolicy?, deadline: UnixMillis) throws -> [OutgoingMessage] {
        var out: [OutgoingMessage] = []
        try query("""
            SELECT id, phone, text, encoding, segments, attempts FROM messages
            WHERE campaign_id = ? AND carrier = ? AND state = \(PGSchema.queued) AND not_before <= ?
            ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED
            """, [.text(campaign), .text(carrier), .int(t), .int(Int64(limit))]) { r in
            out.append(OutgoingMessage(id: r.int("id"), campaign: campaign, phone: r.text("phone") ?? "", carrier: carrier, text: r.text("text") ?? "",
                                       encoding: r.int("encoding") == 1 ? .ucs2 : .gsm7, segments: Int(r.int("segments")),
                                       attempt: Int(r.int("attempts")) + 1))
        }
        guard !out.isEmpty else { return [] }
        let anySuppression = try anySuppression(campaign)
        var sending: [OutgoingMessage] = []
        sending.reserveCapacity(out.count)
        for m in out {
            // Opted out or excluded after the campaign was submitted: never sent.
            if anySuppression, let reason = try suppressionReason(campaign: campaign, phone: m.phone) {
                try run("UPDATE messages SET state = \(PGSchema.suppressed), reason = ?, detail = ?, updated_at = ? WHERE id = ?",
                        [.text(reason), .text("\(reason): found before sending"), .int(now), .int(m.id)])
                count(campaign: campaign, carrier: carrier, from: .queued, to: .suppressed)
                try bumpReason(campaign, reason)
                emit(campaign: campaign, message: m.id, recipient: m.phone, carrier: carrier, event: "suppressed", status: "suppressed",
                     attempt: m.attempt - 1, detail: "\(reason): found before sending")
                continue
            }
            if let policy {
                var recent: [UnixMillis] = []
                try query("SELECT sent_at FROM contacts WHERE phone = ? AND sent_at > ? AND message_id <> ?",
                          [.text(m.phone), .int(t - policy.windowMillis), .int(m.id)]) { recent.append($0.int("sent_at")) }
                if case .holdUntil(let until) = policy.decide(recent: recent, now: t) {
                    if until >= deadline {
                        try run("UPDATE messages SET state = \(MessageState.expired.rawValue), reason = 'frequency-cap', detail = ?, updated_at = ? WHERE id = ?",
                                [.text("frequency-cap: the number may not be messaged again before the deadline"), .int(now), .int(m.id)])
                        count(campaign: campaign, carrier: carrier, from: .queued, to: .expired)
                        emit(campaign: campaign, message: m.id, recipient: m.phone, carrier: carrier, event: "expired", status: "expired",
                             attempt: m.attempt - 1, detail: "frequency-cap: no allowed time before the deadline")
                    } else {
                        try run("UPDATE messages SET not_before = ?, updated_at = ? WHERE id = ?", [.int(max(until, 1)), .int(now), .int(m.id)])
                        emit(campaign: campaign, message: m.id, recipient: m.phone, carrier: carrier, event: "held", status: "queued",
                             attempt: m.attempt - 1, detail: "frequency-cap: held until \(ISOTime.format(until))")
                    }
                    continue
                }
                try run("INSERT INTO contacts(phone, sent_at, message_id) VALUES(?, ?, ?)", [.text(m.phone), .int(t), .int(m.id)])
            }
            emit(campaign: campaign, message: m.id, recipient: m.phone, carrier: carrier, event: "sending", status: "sending", attempt: m.attempt)
            sending.append(m)
        }
        guard !sending.isEmpty else { return [] }
        // One statement for the whole claim: `sending`, the attempt counted, this node named.
        try run("UPDATE messages SET state = \(PGSchema.sending), attempts = attempts + 1, node = ?, updated_at = ? WHERE id = ANY(?::bigint[])",
                [.text(node), .int(now), .text(Self.idArray(sending.map(\.id)))])
        count(campaign: campaign, carrier: carrier, from: .queued, to: .sending, by: Int64(sending.count))
        return sending
    }

    /// Records outcomes in order. Acceptances of messages still as claimed go together, one UPDATE for all of them
    /// (``recordAccepted(_:)``); the rest, and those a receipt overtook, one by one (``record(_:)``).
    func record(all outcomes: [SendOutcome]) throws {
        // Receipts that came before their send answer are rare: one look per call, not one per message.
        pendingReceiptsMayExist = false
        try query("SELECT EXISTS(SELECT 1 FROM pending_receipts) AS any") { pendingReceiptsMayExist = $0.int("any") != 0 }
        var i = 0
        while i < outcomes.count {
            var j = i
            while j < outcomes.count, outcomes[j].claimed != nil, case .accepted = outcomes[j].result { j += 1 }
            if j - i >= 2 {
                let done = try recordAccepted(outcomes[i..<j])
                for o in outcomes[i..<j] where !done.contains(o.id) { try record(o) }
                i = j
            } else {
                try record(outcomes[i])
                i += 1
            }
        }
    }

    /// Acceptances of claimed messages in one UPDATE over arrays: each row changes only while it is still as claimed
    /// (`sending`, the claimed attempt, no gateway id). The rows are found by `id = ANY(ids)` and each row's values
    /// picked by `array_position`, with no join: joined to `unnest(...)`, the planner (whose statistics say almost no
    /// message is `sending`) chose a nested loop rescanning the arrays for each `sending` row, 47-110 ms per 100-300
    /// rows (auto_explain); `Tests/Benchmarks/postgres.sh 20000 8 3` went from 5,103 to 16,129 recipients/s. Returns the ids it changed, with their log lines and
    /// counters written; the others (a receipt overtook the answer, a stale copy) go through ``record(_:)``.
    private func recordAccepted(_ run: ArraySlice<SendOutcome>) throws -> Set<Int64> {
        guard let next = MessageLifecycle.next(.sending, on: .accepted) else { return [] }
        var ids: [Int64] = [], gids: [String?] = [], details: [String?] = [], attempts: [Int64] = []
        for o in run {
            guard case .accepted(let gid, let detail, _) = o.result, let m = o.claimed else { continue }
            ids.append(m.id); gids.append(gid); details.append(detail); attempts.append(Int64(m.attempt))
        }
        var done = Set<Int64>()
        try query("""
            WITH a AS (SELECT ?::bigint[] AS ids, ?::text[] AS gids, ?::text[] AS details, ?::integer[] AS attempts)
            UPDATE messages SET state = \(next.rawValue), gateway_id = a.gids[array_position(a.ids, messages.id)],
                detail = COALESCE(a.details[array_position(a.ids, messages.id)], messages.detail), updated_at = ?, sent_at = ?
            FROM a
            WHERE messages.id = ANY(a.ids) AND messages.state = \(PGSchema.sending) AND messages.gateway_id IS NULL
              AND messages.attempts = a.attempts[array_position(a.ids, messages.id)]
            RETURNING messages.id
            """, [.text(Self.idArray(ids)), .text(Self.optionalTextArray(gids)), .text(Self.optionalTextArray(details)),
                  .text(Self.idArray(attempts)), .int(now), .int(now)]) { done.insert($0.int("id")) }
        changes += Int64(done.count)
        for o in run {
            guard done.contains(o.id), case .accepted(let gid, let detail, let parts) = o.result, let m = o.claimed else { continue }
            count(campaign: m.campaign, carrier: m.carrier, from: .sending, to: next)
            emit(campaign: m.campaign, message: m.id, recipient: m.phone, carrier: m.carrier, event: "accepted", status: next.name, attempt: m.attempt,
                 gatewayID: gid, detail: detail)
            try recordParts(parts, message: m.id, carrier: m.carrier)
            if let gid { try applyPendingReceipts(carrier: m.carrier, gatewayID: gid, message: m.id) }
        }
        return done
    }

    /// A `text[]` parameter's text with NULL elements.
    static func optionalTextArray(_ items: [String?]) -> String {
        "{" + items.map { item in
            guard let item else { return "NULL" }
            return "\"" + item.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }.joined(separator: ",") + "}"
    }

    struct Current {
        var campaign: String
        var phone: String?
        var carrier: String
        var state: MessageState
        var attempts: Int
        var gatewayID: String?
        var sentAt: UnixMillis?
        var segments: Int
        var receiptsSeen: Int64
        /// The node that claimed it last (nil before any claim): whose hand-off window holds it.
        var node: String? = nil
    }

    /// A message's row, locked for the rest of the transaction.
    func current(_ id: Int64) throws -> Current? {
        var c: Current?
        try query("""
            SELECT campaign_id, phone, carrier, state, attempts, gateway_id, sent_at, segments, receipts_seen, node FROM messages WHERE id = ? FOR UPDATE
            """, [.int(id)]) { r in
            c = Current(campaign: r.text("campaign_id") ?? "", phone: r.text("phone"), carrier: r.text("carrier") ?? "",
                        state: MessageState(rawValue: Int(r.int("state"))) ?? .unknown, attempts: Int(r.int("attempts")),
                        gatewayID: r.text("gateway_id"), sentAt: r.isNull("sent_at") ? nil : r.int("sent_at"), segments: Int(r.int("segments")),
                        receiptsSeen: r.int("receipts_seen"), node: r.text("node"))
        }
        return c
    }

    /// One send outcome, as SQLite's `record` decides it: through ``MessageLifecycle`` from the row's current state
    /// (a receipt may have overtaken the answer), the attempt given back for a requeue, receipts that came first applied.
    func record(_ o: SendOutcome) throws {
        let event: MessageEvent
        var name: String
        var detail: String?
        var gatewayID: String?
        var notBefore: UnixMillis?
        var parts: [String] = []
        switch o.result {
        case .accepted(let gid, let d, let p): event = .accepted; name = "accepted"; gatewayID = gid; detail = d; parts = p
        case .retry(let nb, let d): event = .temporaryFailure(retry: true, pastDeadline: false); name = "retry"; detail = d; notBefore = max(nb, 1)
        case .requeue(let nb, let d): event = .temporaryFailure(retry: true, pastDeadline: false); name = "requeued"; detail = d; notBefore = max(nb, 1)
        case .failed(let d): event = .permanentFailure; name = "failed"; detail = d
        case .expired(let d): event = .temporaryFailure(retry: false, pastDeadline: true); name = "expired"; detail = d
        case .unknown(let d): event = .crashRecovered; name = "unknown"; detail = d
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
        let keepDetail = next == nil && cur.state.isFinal
        try run("""
            UPDATE messages SET state = ?, gateway_id = COALESCE(?, gateway_id), detail = CASE WHEN ?::boolean THEN detail ELSE COALESCE(?, detail) END,
            not_before = COALESCE(?, not_before), updated_at = ?,
            sent_at = CASE WHEN ?::boolean THEN ?::bigint WHEN ?::boolean THEN COALESCE(sent_at, ?::bigint) ELSE sent_at END,
            attempts = attempts - ? WHERE id = ?
            """, [.int(Int64(newState.rawValue)), .opt(gatewayID), .int(keepDetail ? 1 : 0), .opt(detail), .opt(notBefore), .int(now),
                  .int(accepted ? 1 : 0), .int(now), .int(isAccepted ? 1 : 0), .int(now), .int(refund ? 1 : 0), .int(o.id)])
        if let next { count(campaign: cur.campaign, carrier: cur.carrier, from: cur.state, to: next) }
        emit(campaign: cur.campaign, message: o.id, recipient: cur.phone, carrier: cur.carrier, event: name, status: newState.name,
             attempt: cur.attempts - (refund ? 1 : 0), gatewayID: gatewayID ?? cur.gatewayID, detail: detail)
        if isAccepted { try recordParts(parts, message: o.id, carrier: cur.carrier) }
        if let gatewayID { try applyPendingReceipts(carrier: cur.carrier, gatewayID: gatewayID, message: o.id) }
    }

    /// The part ids a send answer named, so receipts keyed by any of them find the message.
    private func recordParts(_ parts: [String], message: Int64, carrier: String) throws {
        for p in parts where !p.isEmpty {
            try run("""
                INSERT INTO message_parts(message_id, part_id, carrier, named) VALUES(?, ?, ?, 1)
                ON CONFLICT(message_id, part_id) DO UPDATE SET named = 1
                """, [.int(message), .text(p), .text(carrier)])
        }
        for p in parts where !p.isEmpty { try applyPendingReceipts(carrier: carrier, gatewayID: p, message: message) }
    }

    /// Receipts that named `gatewayID` before its send answer was recorded.
    private func applyPendingReceipts(carrier: String, gatewayID: String, message: Int64) throws {
        guard pendingReceiptsMayExist else { return }
        var pending: [(Int64, Int, String?)] = []
        try query("SELECT id, status, detail FROM pending_receipts WHERE carrier = ? AND gateway_id = ? ORDER BY status, id",
                  [.text(carrier), .text(gatewayID)]) { pending.append(($0.int("id"), Int($0.int("status")), $0.text("detail"))) }
        for (row, status, d) in pending {
            if let st = ReceiptStatus(rawValue: status) {
                _ = try apply(ReceiptUpdate(carrier: carrier, messageID: message, status: st, gatewayID: gatewayID, detail: d))
            }
            try run("DELETE FROM pending_receipts WHERE id = ?", [.int(row)])
        }
    }
}
