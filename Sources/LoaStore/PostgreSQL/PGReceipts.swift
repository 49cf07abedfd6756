import Foundation
import LoaCore

// Receipts on PostgreSQL: the same rules as SQLite's Receipts.swift (each distinct status once, parts per
// MessageParts, final states never left), and receipts by polling and aggregate callbacks (Polling.swift).

extension PostgresStore {
    public func expireReceipts(olderThan cutoff: UnixMillis, limit: Int) throws -> Int {
        let carriers = try write { ctx -> [String] in
            var rows: [(Int64, String, String?, String, Int)] = []
            try ctx.query("""
                SELECT id, campaign_id, phone, carrier, attempts FROM messages WHERE state = \(PGSchema.sent) AND updated_at < ?
                ORDER BY updated_at LIMIT ? FOR UPDATE SKIP LOCKED
                """, [.int(cutoff), .int(Int64(limit))]) { r in
                rows.append((r.int("id"), r.text("campaign_id") ?? "", r.text("phone"), r.text("carrier") ?? "", Int(r.int("attempts"))))
            }
            if !rows.isEmpty {
                try ctx.run("UPDATE messages SET state = \(MessageState.unknown.rawValue), detail = ?, updated_at = ? WHERE id = ANY(?::bigint[])",
                            [.text("no final receipt in time"), .int(ctx.now), .text(PGContext.idArray(rows.map(\.0)))])
            }
            for (id, campaign, phone, carrier, attempts) in rows {
                ctx.count(campaign: campaign, carrier: carrier, from: .sent, to: .unknown)
                ctx.emit(campaign: campaign, message: id, recipient: phone, carrier: carrier, event: "unknown", status: "unknown", attempt: attempts,
                         detail: "no final receipt in time")
            }
            try ctx.run("DELETE FROM pending_receipts WHERE received_at < ?", [.int(cutoff)])
            return rows.map(\.3)
        }
        if !carriers.isEmpty { receiptStats.withLock { s in for c in carriers { s.overdue(carrier: c) } } }
        return carriers.count
    }

    public func apply(_ receipts: [ReceiptUpdate]) throws -> [ReceiptResult] {
        let (results, latencies) = try write { ctx -> ([ReceiptResult], [(carrier: String, state: String, millis: Int64)]) in
            ctx.receiptLatencies.removeAll(keepingCapacity: true)
            let r = try receipts.map { try ctx.apply($0) }
            return (r, ctx.receiptLatencies)
        }
        if !latencies.isEmpty { receiptStats.withLock { h in for l in latencies { h.settled(carrier: l.carrier, state: l.state, millis: l.millis) } } }
        return results
    }

    /// Polling needs no index of its own here: `messages_gateway` and `messages_sent_age` serve its queries.
    public func preparePolling(enabled: Bool) throws {}

    public func pollCandidates(carrier: String, sentFrom: UnixMillis, sentTo: UnixMillis, polledBefore: UnixMillis,
                               limit: Int) throws -> [(id: Int64, gatewayID: String)] {
        try write { ctx in
            var rows: [(id: Int64, gatewayID: String)] = []
            try ctx.query("""
                SELECT id, gateway_id FROM messages
                WHERE carrier = ? AND state = \(PGSchema.sent) AND gateway_id IS NOT NULL AND COALESCE(polled_at, 0) <= ?
                  AND sent_at >= ? AND sent_at <= ?
                ORDER BY COALESCE(polled_at, 0), id LIMIT ?
                """, [.text(carrier), .int(polledBefore), .int(sentFrom), .int(sentTo), .int(Int64(max(0, limit)))]) {
                rows.append(($0.int("id"), $0.text("gateway_id") ?? ""))
            }
            return rows
        }
    }

    public func markPolled(_ ids: [Int64]) throws {
        guard !ids.isEmpty else { return }
        try write { ctx in
            try ctx.run("UPDATE messages SET polled_at = ? WHERE id = ANY(?::bigint[])", [.int(ctx.now), .text(PGContext.idArray(ids))])
        }
    }

    public func recordRequestReceipt(carrier: String, requestID: String, counts: [(name: String, value: String)],
                                     limit: Int) throws -> [(id: Int64, gatewayID: String)] {
        try write { ctx in
            var rows: [(id: Int64, gatewayID: String)] = []
            var campaign = ""
            var total = 0
            if !requestID.isEmpty {
                // `R` itself or `R:…`; COLLATE "C" so the range is by bytes, as SQLite's.
                try ctx.query("""
                    SELECT id, gateway_id, state, campaign_id FROM messages
                    WHERE carrier = ? AND (gateway_id = ? OR (gateway_id COLLATE "C" >= ? AND gateway_id COLLATE "C" < ?)) ORDER BY id
                    """, [.text(carrier), .text(requestID), .text(requestID + ":"), .text(requestID + ";")]) {
                    total += 1
                    if campaign.isEmpty { campaign = $0.text("campaign_id") ?? "" }
                    if $0.int("state") == Int64(PGSchema.sent), rows.count < limit { rows.append(($0.int("id"), $0.text("gateway_id") ?? "")) }
                }
            }
            var detail = counts.map { "\($0.name)=\($0.value)" }.joined(separator: " ")
            detail += (detail.isEmpty ? "" : "; ") + "\(total) messages, \(rows.count) sent"
            ctx.emit(campaign: campaign, message: 0, recipient: nil, carrier: carrier, event: "request-receipt", status: "request", attempt: 0,
                     gatewayID: requestID, detail: detail)
            return rows
        }
    }
}

extension PGContext {
    /// One receipt; see SQLite's ``WriteContext/apply(_:)`` for the rules, followed here statement by statement.
    func apply(_ r: ReceiptUpdate) throws -> ReceiptResult {
        var r = r
        var namedPart = false
        if r.messageID == 0, let key = r.gatewayKey {
            var id: Int64?
            try query("SELECT id FROM messages WHERE carrier = ? AND gateway_id = ? ORDER BY id LIMIT 1", [.text(r.carrier), .text(key)]) { id = $0.int("id") }
            if id == nil {
                try query("SELECT message_id FROM message_parts WHERE carrier = ? AND part_id = ? AND named = 1 ORDER BY message_id LIMIT 1",
                          [.text(r.carrier), .text(key)]) { id = $0.int("message_id") }
                namedPart = id != nil
            }
            guard let id else {
                // The send answer naming this id is not recorded yet (receipts can overtake it): keep the receipt.
                try run("INSERT INTO pending_receipts(carrier, gateway_id, status, detail, received_at) VALUES(?, ?, ?, ?, ?)",
                        [.text(r.carrier), .text(key), .int(Int64(r.status.rawValue)), .opt(r.detail), .int(now)])
                return .pending
            }
            r.messageID = id
        }
        guard let cur = try current(r.messageID) else { return .notFound }
        guard cur.carrier == r.carrier else { return .wrongCarrier }
        if !namedPart, cur.segments > 1, let g = r.gatewayID, g == cur.gatewayID {
            try query("SELECT 1 AS one FROM message_parts WHERE message_id = ? AND part_id = ? AND named = 1", [.int(r.messageID), .text(g)]) { _ in namedPart = true }
        }
        let bit = Int64(1) << Int64(r.status.rawValue)
        let part = MessageParts.part(of: r.gatewayID, segments: cur.segments, messageGatewayID: cur.gatewayID, namedPart: namedPart)
        var status: ReceiptStatus? = r.status
        var reason = r.detail
        var expected = 1
        if let part {
            var (seen, partStatus): (Int64, Int64) = (0, 0)
            try query("SELECT seen, status FROM message_parts WHERE message_id = ? AND part_id = ?", [.int(r.messageID), .text(part)]) {
                seen = $0.int("seen")
                partStatus = $0.int("status")
            }
            guard seen & bit == 0 else { return .duplicate }
            try run("""
                INSERT INTO message_parts(message_id, part_id, carrier, seen, status, detail) VALUES(?, ?, ?, ?, ?, ?)
                ON CONFLICT(message_id, part_id) DO UPDATE SET seen = message_parts.seen | excluded.seen,
                status = CASE WHEN message_parts.status >= 10 THEN message_parts.status ELSE excluded.status END,
                detail = CASE WHEN message_parts.status >= 10 THEN message_parts.detail ELSE COALESCE(excluded.detail, message_parts.detail) END
                """, [.int(r.messageID), .text(part), .text(r.carrier), .int(bit), .int(r.status.isFinal ? Int64(r.status.rawValue) : 0), .opt(r.detail)])
            if r.status.isFinal && partStatus < 10 {
                var (known, delivered, named): (Int64, Int64, Int64) = (0, 0, 0)
                try query("""
                    SELECT COUNT(*) AS known, COUNT(*) FILTER (WHERE status = 10) AS delivered, COALESCE(SUM(named), 0) AS named
                    FROM message_parts WHERE message_id = ?
                    """, [.int(r.messageID)]) { known = $0.int("known"); delivered = $0.int("delivered"); named = $0.int("named") }
                expected = MessageParts.expectedParts(segments: cur.segments, knownParts: Int(known), namedParts: Int(named))
                status = MessageParts.messageStatus(after: r.status, deliveredParts: Int(delivered), expectedParts: expected)
                if status != nil && status != .delivered { reason = MessageParts.reason(r.detail, status: r.status, parts: expected) }
            } else {
                status = nil
            }
        } else {
            guard cur.receiptsSeen & bit == 0 else { return .duplicate }
        }
        let next = MessageLifecycle.next(cur.state, on: .receipt(status ?? .buffered))
        let newState = next ?? cur.state
        if let next, next.isFinal, let final = status {
            reason = final.reason(reason) ?? (final == .delivered ? nil : final.name)
        }
        if next != nil || !cur.state.isFinal || part == nil {
            let changes = next != nil || !cur.state.isFinal
            try run("""
                UPDATE messages SET state = ?, receipt_rank = GREATEST(receipt_rank, ?), receipts_seen = receipts_seen | ?,
                gateway_id = COALESCE(gateway_id, ?), detail = CASE WHEN ?::boolean THEN COALESCE(?, detail) ELSE detail END,
                sent_at = COALESCE(sent_at, ?), updated_at = CASE WHEN ?::boolean THEN ?::bigint ELSE updated_at END WHERE id = ?
                """, [.int(Int64(newState.rawValue)), .int(part == nil ? Int64(r.status.rawValue) : 0), .int(part == nil ? bit : 0),
                      .opt(part == nil ? r.gatewayID : nil), .int(changes ? 1 : 0), .opt(reason), .int(now), .int(changes ? 1 : 0), .int(now),
                      .int(r.messageID)])
        }
        if let next {
            count(campaign: cur.campaign, carrier: cur.carrier, from: cur.state, to: next)
            if next.isFinal { receiptLatencies.append((cur.carrier, next.name, max(0, now - (cur.sentAt ?? now)))) }
        }
        var words = next?.isFinal == true ? reason : r.detail
        if part != nil, expected > 1, !(words ?? "").hasSuffix(" (a part of \(expected))") { words = (words ?? "part") + " (a part of \(expected))" }
        let logged = words.map { "\(r.status.name): \($0)" } ?? r.status.name
        emit(campaign: cur.campaign, message: r.messageID, recipient: cur.phone, carrier: cur.carrier, event: "receipt", status: newState.name,
             attempt: cur.attempts, gatewayID: part ?? cur.gatewayID ?? r.gatewayID, detail: logged)
        // Another node's message: its hand-off window hears of it at COMMIT (``PGReceiptNotes``).
        if let owner = cur.node, owner != node {
            try query("SELECT pg_notify(?, ?) AS sent", [.text(PGReceiptNotes.channel),
                                                         .text(ClusterReceiptNote(carrier: r.carrier, messageID: r.messageID, status: r.status).payload(node: PGReceiptNotes.address(db.settings.schema, owner)))]) { _ in }
        }
        return .applied
    }
}
