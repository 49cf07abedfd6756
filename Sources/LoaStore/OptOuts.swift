import Foundation
import LoaCore

// The global opt-out list and opt-out replies.

extension Store {
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
                .query([.text(phone)]) { r in
                    // One in flight is past stopping: its answer decides it.
                    if !ctx.book.contains(r.int(0)) { rows.append((r.int(0), r.text(1) ?? "", r.text(2) ?? "", Int(r.int(3)))) }
                }
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
}
