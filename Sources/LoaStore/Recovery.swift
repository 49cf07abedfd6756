import Foundation
import LoaCore

// A start after a stop that left messages in flight: none is ever resent.

extension WriteContext {
    /// Turns every message a stop left in flight into `unknown` (attempt counted, logged): those the remaining claim
    /// records name that were never settled (still queued, no attempt, no `not_before`), then `sending` rows
    /// (claimed row by row: tried before, held, or moved by a receipt before the send answer). The claim records go.
    func recoverInFlight() throws {
        var maxClaim: Int64 = 0
        try statement("SELECT COALESCE(MAX(id), 0) AS n FROM claims").query { maxClaim = $0.int("n") }
        book.nextClaimID = maxClaim + 1
        // The counts move with the rows and the claims in the same transactions: none in flight, nothing to scan
        // (there is no index on `sending`, so that scan reads the whole table).
        var inFlight: Int64 = 0
        try statement("SELECT COALESCE(SUM(n), 0) AS n FROM counts WHERE state = ?").query([.int(Int64(MessageState.sending.rawValue))]) { inFlight = $0.int("n") }
        guard inFlight > 0 || maxClaim > 0 else { return }
        let detail = "daemon stopped while the request was in flight; not resent"
        var perCampaign: [String: Int64] = [:]
        var recovered: Int64 = 0
        func unknown(_ id: Int64, campaign: String, phone: String?, carrier: String, attempts: Int, fresh: Bool) throws {
            try statement("UPDATE messages SET state = ?, detail = ?, updated_at = ?, attempts = attempts + ? WHERE id = ?")
                .run([.int(Int64(MessageState.unknown.rawValue)), .text(detail), .int(now), .int(fresh ? 1 : 0), .int(id)])
            count(campaign: campaign, carrier: carrier, from: .sending, to: .unknown)
            try emit(DeliveryEvent(time: now, campaign: campaign, message: id, recipient: phone, carrier: carrier,
                                   event: "unknown", status: "unknown", attempt: attempts, detail: detail))
            perCampaign[campaign, default: 0] += 1
            recovered += 1
        }
        var named: [Int64] = []
        try statement("SELECT ids FROM claims ORDER BY id").query { r in
            let text = r.text("ids") ?? ""
            guard let ids = ClaimIDs.decode(text) else {
                throw StoreError.invalid("the claims table holds a record that cannot be read: \(text.prefix(80))")
            }
            named += ids
        }
        let row = try statement("SELECT campaign_id, phone, carrier FROM messages WHERE id = ? AND \(Self.freshRow)")
        for id in named {
            var found: (String, String?, String)?
            try row.query([.int(id)]) { found = ($0.text("campaign_id") ?? "", $0.text("phone"), $0.text("carrier") ?? "") }
            if let (campaign, phone, carrier) = found { try unknown(id, campaign: campaign, phone: phone, carrier: carrier, attempts: 1, fresh: true) }
        }
        if maxClaim > 0 { try statement("DELETE FROM claims").run() }
        if inFlight > recovered {
            var rows: [(Int64, String, String?, String, Int)] = []
            try statement("SELECT id, campaign_id, phone, carrier, attempts FROM messages WHERE state = 1").query {
                rows.append(($0.int("id"), $0.text("campaign_id") ?? "", $0.text("phone"), $0.text("carrier") ?? "", Int($0.int("attempts"))))
            }
            for (id, campaign, phone, carrier, attempts) in rows {
                try unknown(id, campaign: campaign, phone: phone, carrier: carrier, attempts: attempts, fresh: false)
            }
        }
        // Kept per campaign across starts: `unknown` also counts receipts that never came, and the operator
        // needs to tell the two apart.
        let bump = try statement("UPDATE campaigns SET recovered_unknown = recovered_unknown + ? WHERE id = ?")
        for (campaign, n) in perCampaign { try bump.run([.int(n), .text(campaign)]) }
        recovery.unknownMessages = recovered
        recovery.unknownByCampaign = perCampaign
    }
}
