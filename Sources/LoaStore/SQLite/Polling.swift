import LoaCore

/// The store's side of receipts by polling (a generic carrier's `poll`) and of aggregate callbacks.
extension Store {
    /// Creates the poller's index when a carrier polls (`enabled`), drops it when none does: every message that
    /// is accepted and later settled would otherwise pay an index entry for a query nobody makes. Building it
    /// reads the `sent` messages once, at start.
    public func preparePolling(enabled: Bool) throws {
        try write { ctx in
            try ctx.db.exec(enabled
                ? "CREATE INDEX IF NOT EXISTS messages_poll ON messages(carrier, COALESCE(polled_at, 0)) WHERE state = \(MessageState.sent.rawValue) AND gateway_id IS NOT NULL"
                : "DROP INDEX IF EXISTS messages_poll")
        }
    }

    /// The carrier's `sent` messages with a gateway id that are due a poll: sent in `sentFrom...sentTo` and not
    /// polled since `polledBefore`, the longest-unpolled first, at most `limit`. The poller marks those it asks
    /// about with ``markPolled(_:)``.
    public func pollCandidates(carrier: String, sentFrom: UnixMillis, sentTo: UnixMillis, polledBefore: UnixMillis,
                                   limit: Int) throws -> [(id: Int64, gatewayID: String)] {
        try write { ctx in
            var rows: [(id: Int64, gatewayID: String)] = []
            try ctx.statement("""
                SELECT id, gateway_id FROM messages
                WHERE carrier = ? AND state = \(MessageState.sent.rawValue) AND gateway_id IS NOT NULL AND COALESCE(polled_at, 0) <= ?
                  AND sent_at >= ? AND sent_at <= ?
                ORDER BY COALESCE(polled_at, 0), id LIMIT ?
                """).query([.text(carrier), .int(polledBefore), .int(sentFrom), .int(sentTo), .int(Int64(max(0, limit)))]) {
                rows.append(($0.int("id"), $0.text("gateway_id") ?? ""))
            }
            return rows
        }
    }

    /// Notes that the poller asked about these messages now (they are not asked again before the interval).
    public func markPolled(_ ids: [Int64]) throws {
        guard !ids.isEmpty else { return }
        try write { ctx in
            let mark = try ctx.statement("UPDATE messages SET polled_at = ? WHERE id = ?")
            for id in ids { try mark.run([.int(ctx.now), .int(id)]) }
        }
    }

    /// Records an aggregate callback (one per send request, no message named) as one `request-receipt` line in the
    /// delivery log, and returns the request's messages still `sent` (gateway id `requestID` or `requestID:…`, at
    /// most `limit`): the caller polls them.
    ///
    /// The line has `message` 0 and no recipient; `campaign` is the campaign of the request's first message (empty
    /// when Loa has none under that id), `gateway_id` the request id and `detail` the counts the gateway gave and
    /// how many of Loa's messages are still `sent`: `SendSuccess=2 SendFailed=1; 3 sent`.
    public func recordRequestReceipt(carrier: String, requestID: String, counts: [(name: String, value: String)],
                                     limit: Int = 10_000) throws -> [(id: Int64, gatewayID: String)] {
        try write { ctx in
            var rows: [(id: Int64, gatewayID: String)] = []
            var campaign = ""
            var total = 0
            if !requestID.isEmpty {
                // `R` itself or `R:…` (the per-recipient ids of a request id): a range on the (carrier, gateway_id) index.
                try ctx.statement("""
                    SELECT id, gateway_id, state, campaign_id FROM messages
                    WHERE carrier = ? AND (gateway_id = ? OR (gateway_id >= ? AND gateway_id < ?)) ORDER BY id
                    """).query([.text(carrier), .text(requestID), .text(requestID + ":"), .text(requestID + ";")]) {
                    total += 1
                    if campaign.isEmpty { campaign = $0.text("campaign_id") ?? "" }
                    if $0.int("state") == Int64(MessageState.sent.rawValue), rows.count < limit { rows.append(($0.int("id"), $0.text("gateway_id") ?? "")) }
                }
            }
            var detail = counts.map { "\($0.name)=\($0.value)" }.joined(separator: " ")
            detail += (detail.isEmpty ? "" : "; ") + "\(total) messages, \(rows.count) sent"
            try ctx.emit(DeliveryEvent(time: ctx.now, campaign: campaign, message: 0, recipient: nil, carrier: carrier,
                                       event: "request-receipt", status: "request", attempt: 0, gatewayID: requestID, detail: detail))
            return rows
        }
    }
}
