import Foundation
import LoaCore

// Delivery receipts, and receipts that never came.

extension Store {
    /// Turns `sent` messages whose final receipt is overdue into `unknown` (at most `limit` per call).
    public func expireReceipts(olderThan cutoff: UnixMillis, limit: Int = 20_000) throws -> Int {
        let carriers = try write { ctx -> [String] in
            var rows: [(Int64, String, String?, String, Int)] = []
            try ctx.statement("""
                SELECT id, campaign_id, phone, carrier, attempts FROM messages WHERE state = \(MessageState.sent.rawValue) AND updated_at < ? LIMIT ?
                """).query([.int(cutoff), .int(Int64(limit))]) { r in
                rows.append((r.int("id"), r.text("campaign_id") ?? "", r.text("phone"), r.text("carrier") ?? "", Int(r.int("attempts"))))
            }
            let expire = try ctx.statement("UPDATE messages SET state = \(MessageState.unknown.rawValue), detail = ?, updated_at = ? WHERE id = ?")
            for (id, campaign, phone, carrier, attempts) in rows {
                try expire.run([.text("no final receipt in time"), .int(ctx.now), .int(id)])
                ctx.count(campaign: campaign, carrier: carrier, from: .sent, to: .unknown)
                try ctx.emit(DeliveryEvent(time: ctx.now, campaign: campaign, message: id, recipient: phone, carrier: carrier,
                                           event: "unknown", status: "unknown", attempt: attempts, detail: "no final receipt in time"))
            }
            // Receipts for gateway ids no message ever got (a gateway's mistake, or another system's traffic).
            if ctx.hasPendingReceipts { try ctx.statement("DELETE FROM pending_receipts WHERE received_at < ?").run([.int(cutoff)]) }
            return rows.map(\.3)
        }
        if !carriers.isEmpty { receiptStats.withLock { s in for c in carriers { s.overdue(carrier: c) } } }
        return carriers.count
    }

    /// Applies receipts in one transaction and returns what each did.
    public func apply(_ receipts: [ReceiptUpdate]) throws -> [ReceiptResult] {
        let (results, latencies) = try write { ctx -> ([ReceiptResult], [(carrier: String, state: String, millis: Int64)]) in
            ctx.receiptLatencies.removeAll(keepingCapacity: true)
            let r = try receipts.map { try ctx.apply($0) }
            return (r, ctx.receiptLatencies)
        }
        if !latencies.isEmpty { receiptStats.withLock { h in for l in latencies { h.settled(carrier: l.carrier, state: l.state, millis: l.millis) } } }
        return results
    }
}

extension WriteContext {
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
            try statement("SELECT id FROM messages WHERE carrier = ? AND gateway_id = ? LIMIT 1").query([.text(r.carrier), .text(key)]) { id = $0.int("id") }
            if id == nil {
                try statement("SELECT message_id FROM message_parts WHERE carrier = ? AND part_id = ? AND named = 1 LIMIT 1")
                    .query([.text(r.carrier), .text(key)]) { id = $0.int("message_id") }
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
                seen = $0.int("seen")
                partStatus = $0.int("status")
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
                try statement("""
                    SELECT COUNT(*) AS known, COALESCE(SUM(status = 10), 0) AS delivered, COALESCE(SUM(named), 0) AS named
                    FROM message_parts WHERE message_id = ?
                    """).query([.int(r.messageID)]) { known = $0.int("known"); delivered = $0.int("delivered"); named = $0.int("named") }
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
                sent_at = COALESCE(sent_at, ?), updated_at = CASE WHEN ? THEN ? ELSE updated_at END, attempts = attempts + ? WHERE id = ?
                """).run([.int(Int64(newState.rawValue)), .int(part == nil ? Int64(r.status.rawValue) : 0), .int(part == nil ? bit : 0),
                          .opt(part == nil ? r.gatewayID : nil), .int(changes ? 1 : 0), .opt(reason), .int(now), .int(changes ? 1 : 0), .int(now),
                          .int(cur.inFlightFresh ? 1 : 0), .int(r.messageID)])
        }
        if let next {
            count(campaign: cur.campaign, carrier: cur.carrier, from: cur.state, to: next)
            if next.isFinal { receiptLatencies.append((cur.carrier, next.name, max(0, now - (cur.sentAt ?? now)))) }
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
