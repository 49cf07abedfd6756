import Foundation
import LoaCore

// Claims before a request leaves, and the outcomes its answer brings; recovery of what a stop left in flight.

extension Store {
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
}

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

    struct Current {
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

    func current(_ id: Int64) throws -> Current? {
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
}
