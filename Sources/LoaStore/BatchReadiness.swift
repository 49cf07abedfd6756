import LoaCore

extension Store {
    /// For a carrier with a minimum batch (`batch.min`): how many of a campaign's queued messages for it could be
    /// claimed now (counted up to `limit`), and whether more may come for it later: messages queued for a later
    /// retry, or in flight (a throttled or unanswered one comes back). The dispatcher sends no batch below the
    /// minimum while more may come. Queued rows behind the claim cursor with no `not_before` are in flight
    /// (``InFlightBook``): not ready.
    public func batchReadiness(campaign: String, carrier: String, now: UnixMillis, limit: Int) throws -> (ready: Int, moreMayCome: Bool) {
        try write { ctx in
            var ready = 0
            try ctx.statement("""
                SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE campaign_id = ? AND carrier = ? AND state = 0 AND not_before <= ?
                AND (id > ? OR not_before > 0) LIMIT ?)
                """).query([.text(campaign), .text(carrier), .int(now), .int(ctx.book.cursor(InFlightBook.Key(campaign: campaign, carrier: carrier))),
                            .int(Int64(limit))]) { ready = Int($0.int(0)) }
            var more = false
            try ctx.statement("""
                SELECT EXISTS(SELECT 1 FROM messages WHERE campaign_id = ? AND carrier = ? AND state = 0 AND not_before > ?)
                OR EXISTS(SELECT 1 FROM counts WHERE campaign_id = ? AND carrier = ? AND state = 1 AND n > 0)
                """).query([.text(campaign), .text(carrier), .int(now), .text(campaign), .text(carrier)]) { more = $0.int(0) != 0 }
            return (ready, more)
        }
    }
}
