import Foundation
import LoaCore

// What a send answer brings: the outcome of each claimed message.

extension WriteContext {
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
        /// Claimed fresh and not settled: the row still reads `queued` with no attempt; this reads `sending`, the
        /// attempt counted, and a write that settles it adds the attempt.
        var inFlightFresh = false
    }

    /// A row claimed fresh and not settled since (the claim record names it; ``InFlightBook``).
    static let freshRow = "state = \(MessageState.queued.rawValue) AND attempts = 0 AND not_before = 0"

    func current(_ id: Int64) throws -> Current? {
        var c: Current?
        try statement("""
            SELECT campaign_id, phone, carrier, state, attempts, gateway_id, receipt_rank, sent_at, segments, receipts_seen FROM messages WHERE id = ?
            """).query([.int(id)]) { r in
            c = Current(campaign: r.text("campaign_id") ?? "", phone: r.text("phone"), carrier: r.text("carrier") ?? "",
                        state: MessageState(rawValue: Int(r.int("state"))) ?? .unknown, attempts: Int(r.int("attempts")),
                        gatewayID: r.text("gateway_id"), receiptRank: Int(r.int("receipt_rank")),
                        sentAt: r.isNull("sent_at") ? nil : r.int("sent_at"), segments: Int(r.int("segments")), receiptsSeen: r.int("receipts_seen"))
        }
        if c?.state == .queued && book.contains(id) {
            c?.state = .sending
            c?.attempts += 1
            c?.inFlightFresh = true
        }
        return c
    }

    /// Records outcomes in order; runs of acceptances of claimed messages (all fresh, or all not) go 100 to a statement.
    func record(all outcomes: [SendOutcome]) throws {
        var i = 0
        while i < outcomes.count {
            var j = i
            let fresh = book.contains(outcomes[i].id)
            while j < outcomes.count, j - i < 100, outcomes[j].claimed != nil, case .accepted = outcomes[j].result,
                  book.contains(outcomes[j].id) == fresh { j += 1 }
            if j - i >= 2 {
                if try !recordAccepted(outcomes[i..<j], fresh: fresh) {
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
    /// same attempt, no gateway id; or, `fresh`, still queued with no attempt: the claim record names them);
    /// otherwise changes nothing and returns false (a receipt overtook one of the send answers: the general
    /// path decides each).
    private func recordAccepted(_ run: ArraySlice<SendOutcome>, fresh: Bool) throws -> Bool {
        guard let next = MessageLifecycle.next(.sending, on: .accepted) else { return false }
        var args: [SQLValue] = [.int(now), .int(now)]
        args.reserveCapacity(2 + run.count * 4)
        for o in run {
            guard case .accepted(let gid, let detail, _) = o.result, let m = o.claimed else { return false }
            args.append(.int(m.id))
            args.append(.opt(gid))
            args.append(.opt(detail))
            args.append(.int(Int64(m.attempt)))
        }
        try statement("SAVEPOINT bulk").run()
        // One statement per shape (fresh or not, how many rows), prepared once: its text is 2 KB at 100 rows, and
        // building and hashing it for the statement cache cost as much as a recipient's log line.
        let shape = run.count * 2 + (fresh ? 1 : 0)
        let update: Statement
        if let cached = acceptedStatements[shape] {
            update = cached
        } else {
            update = try db.prepare("""
                UPDATE messages SET state = \(next.rawValue), gateway_id = v.column2, detail = COALESCE(v.column3, messages.detail),
                updated_at = ?, sent_at = ?\(fresh ? ", attempts = v.column4" : "")
                FROM (VALUES (?, ?, ?, ?)\(String(repeating: ", (?, ?, ?, ?)", count: run.count - 1))) AS v
                WHERE messages.id = v.column1 AND \(fresh ? "messages.state = \(MessageState.queued.rawValue) AND messages.attempts = 0 AND messages.not_before = 0 AND v.column4 = 1" : "messages.state = \(MessageState.sending.rawValue) AND messages.attempts = v.column4 AND messages.gateway_id IS NULL")
                """)
            acceptedStatements[shape] = update
        }
        try update.run(args)
        guard db.changes == run.count else {
            try statement("ROLLBACK TO bulk").run()
            try statement("RELEASE bulk").run()
            return false
        }
        try statement("RELEASE bulk").run()
        // The counters move once per campaign and carrier of the run (nearly always one), not once per message.
        var group = (campaign: run.first!.claimed!.campaign, carrier: run.first!.claimed!.carrier, n: Int64(0))
        for o in run {
            guard case .accepted(let gid, let detail, let parts) = o.result, let m = o.claimed else { continue }
            if m.campaign != group.campaign || m.carrier != group.carrier {
                count(campaign: group.campaign, carrier: group.carrier, from: .sending, to: next, by: group.n)
                group = (m.campaign, m.carrier, 0)
            }
            group.n += 1
            try movedFromSending(m, to: next, event: "accepted", attempt: m.attempt, gatewayID: gid, detail: detail, parts: parts, counted: true)
            if fresh { try settleFresh(m.id) }
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
        // Back in the queue with a `not_before` of at least 1: the claim's look behind its cursor finds it (InFlightBook).
        case .retry(let nb, let d): event = .temporaryFailure(retry: true, pastDeadline: false); name = "retry"; detail = d; notBefore = max(nb, 1)
        case .requeue(let nb, let d): event = .temporaryFailure(retry: true, pastDeadline: false); name = "requeued"; detail = d; notBefore = max(nb, 1)
        case .failed(let d): event = .permanentFailure; name = "failed"; detail = d
        case .expired(let d): event = .temporaryFailure(retry: false, pastDeadline: true); name = "expired"; detail = d
        case .unknown(let d): event = .crashRecovered; name = "unknown"; detail = d
        }
        if let m = o.claimed, try recordClaimed(m, o.result, event: event, name: name, gatewayID: gatewayID, detail: detail, parts: parts,
                                                notBefore: notBefore) {
            return
        }
        guard let cur = try current(o.id) else { return }
        if book.contains(o.id) { try settleFresh(o.id) }
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
            attempts = attempts + ? WHERE id = ?
            """).run([.int(Int64(newState.rawValue)), .opt(gatewayID), .int(keepDetail ? 1 : 0), .opt(detail), .opt(notBefore), .int(now),
                      .int(accepted ? 1 : 0), .int(now), .int(isAccepted ? 1 : 0), .int(now),
                      .int((cur.inFlightFresh ? 1 : 0) - (refund ? 1 : 0)), .int(o.id)])
        if let next { count(campaign: cur.campaign, carrier: cur.carrier, from: cur.state, to: next) }
        if next == .queued { book.dueBehind(InFlightBook.Key(campaign: cur.campaign, carrier: cur.carrier), at: notBefore ?? 1) }
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

    /// ``record`` of a message the caller claimed, nearly always still as claimed (`sending` with the claimed
    /// attempt, or, claimed fresh, still queued with no attempt): one UPDATE, the log line from what the caller
    /// holds (a `sending` row has no gateway id yet: receipts that bring one also move the state). False when the
    /// row has moved on (a receipt overtook the send answer): the general path decides then.
    private func recordClaimed(_ m: OutgoingMessage, _ result: SendResult, event: MessageEvent, name: String, gatewayID: String?,
                               detail: String?, parts: [String], notBefore: UnixMillis?) throws -> Bool {
        guard let next = MessageLifecycle.next(.sending, on: event) else { return false }
        var refund = false
        if case .requeue = result, next == .queued { refund = true }
        let fresh = book.contains(m.id)
        // A copy whose attempt is not the claim's is not what was claimed: the general path decides it.
        if fresh && m.attempt != 1 { return false }
        let args: [SQLValue] = [.int(Int64(next.rawValue)), .opt(gatewayID), .opt(detail), .opt(notBefore), .int(now),
                                .int(next == .sent ? 1 : 0), .int(now), .int((fresh ? 1 : 0) - (refund ? 1 : 0)), .int(m.id)]
        try statement("""
            UPDATE messages SET state = ?, gateway_id = ?, detail = COALESCE(?, detail), not_before = COALESCE(?, not_before),
            updated_at = ?, sent_at = CASE WHEN ? THEN ? ELSE sent_at END, attempts = attempts + ?
            WHERE id = ? AND \(fresh ? Self.freshRow : "state = \(MessageState.sending.rawValue) AND attempts = ? AND gateway_id IS NULL")
            """).run(fresh ? args : args + [.int(Int64(m.attempt))])
        guard db.changes == 1 else { return false }
        if fresh { try settleFresh(m.id) }
        if next == .queued { book.dueBehind(InFlightBook.Key(campaign: m.campaign, carrier: m.carrier), at: notBefore ?? 1) }
        try movedFromSending(m, to: next, event: name, attempt: m.attempt - (refund ? 1 : 0), gatewayID: gatewayID, detail: detail, parts: parts)
        return true
    }

    /// What follows a claimed message's move out of `sending`: the counters, its log line (from what the caller
    /// holds, no read-back), and receipts that named its gateway id before the send answer.
    private func movedFromSending(_ m: OutgoingMessage, to next: MessageState, event: String, attempt: Int, gatewayID: String?,
                                  detail: String?, parts: [String] = [], counted: Bool = false) throws {
        if !counted { count(campaign: m.campaign, carrier: m.carrier, from: .sending, to: next) }
        emit(campaign: m.campaign, message: m.id, recipient: m.phone, carrier: m.carrier, event: event, status: next.name, attempt: attempt,
             gatewayID: gatewayID, detail: detail)
        try recordParts(parts, message: m.id, carrier: m.carrier)
        if let gatewayID, hasPendingReceipts { try applyPendingReceipts(carrier: m.carrier, gatewayID: gatewayID, message: m.id) }
    }

    /// Receipts that named `gatewayID` before its send answer was recorded.
    private func applyPendingReceipts(carrier: String, gatewayID: String, message: Int64) throws {
        var pending: [(Int64, Int, String?)] = []
        try statement("SELECT rowid, status, detail FROM pending_receipts WHERE carrier = ? AND gateway_id = ? ORDER BY status")
            .query([.text(carrier), .text(gatewayID)]) { pending.append(($0.int("rowid"), Int($0.int("status")), $0.text("detail"))) }
        for (rowid, status, d) in pending {
            if let st = ReceiptStatus(rawValue: status) {
                _ = try apply(ReceiptUpdate(carrier: carrier, messageID: message, status: st, gatewayID: gatewayID, detail: d))
            }
            try statement("DELETE FROM pending_receipts WHERE rowid = ?").run([.int(rowid)])
        }
    }
}
