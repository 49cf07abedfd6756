import Foundation
import LoaCore

// Users, API tokens, the audit trail and two-person approval (see AccessStore).

extension Store {
    public func addUser(name: String, role: Role, passwordHash: String, now t: UnixMillis) throws {
        try write { ctx in
            var exists = false
            try ctx.statement("SELECT 1 FROM users WHERE name = ?").query([.text(name)]) { _ in exists = true }
            if exists { throw StoreError.conflict("user \(name) already exists") }
            try ctx.statement("INSERT INTO users(name, role, password, created_at, updated_at) VALUES(?, ?, ?, ?, ?)")
                .run([.text(name), .text(role.rawValue), .text(passwordHash), .int(t), .int(t)])
        }
    }

    public func removeUser(name: String, now t: UnixMillis) throws {
        try write { ctx in
            try ctx.statement("DELETE FROM users WHERE name = ?").run([.text(name)])
            guard ctx.db.changes == 1 else { throw StoreError.notFound("user \(name)") }
            try ctx.statement("UPDATE api_tokens SET revoked_at = ? WHERE user_name = ? AND revoked_at IS NULL").run([.int(t), .text(name)])
        }
    }

    public func setPassword(name: String, passwordHash: String, now t: UnixMillis) throws {
        try write { ctx in
            try ctx.statement("UPDATE users SET password = ?, updated_at = ? WHERE name = ?").run([.text(passwordHash), .int(t), .text(name)])
            guard ctx.db.changes == 1 else { throw StoreError.notFound("user \(name)") }
        }
    }

    public func passwordHash(of name: String) throws -> String? {
        try write { ctx in
            var hash: String?
            try ctx.statement("SELECT password FROM users WHERE name = ?").query([.text(name)]) { hash = $0.text("password") }
            return hash
        }
    }

    public func users() throws -> [UserRecord] {
        try write { ctx in
            var out: [UserRecord] = []
            try ctx.statement("""
                SELECT name, role, created_at, updated_at,
                       (SELECT COUNT(*) FROM api_tokens t WHERE t.user_name = users.name AND t.revoked_at IS NULL) AS live
                FROM users ORDER BY name
                """).query { r in
                out.append(UserRecord(name: r.text("name") ?? "", role: Role(rawValue: r.text("role") ?? "") ?? .viewer,
                                      createdAt: r.int("created_at"), updatedAt: r.int("updated_at"), tokens: r.int("live")))
            }
            return out
        }
    }

    public func addToken(user: String, label: String, hash: String, now t: UnixMillis) throws -> Int64 {
        try write { ctx in
            var exists = false
            try ctx.statement("SELECT 1 FROM users WHERE name = ?").query([.text(user)]) { _ in exists = true }
            guard exists else { throw StoreError.notFound("user \(user)") }
            try ctx.statement("INSERT INTO api_tokens(user_name, label, hash, created_at) VALUES(?, ?, ?, ?)")
                .run([.text(user), .text(label), .text(hash), .int(t)])
            return ctx.db.lastInsertRowID
        }
    }

    public func revokeToken(id: Int64, now t: UnixMillis) throws -> TokenRecord {
        try write { ctx in
            try ctx.statement("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run([.int(t), .int(id)])
            guard ctx.db.changes == 1 else { throw StoreError.notFound("live token \(id)") }
            return try ctx.tokens(user: nil, id: id)[0]
        }
    }

    public func tokens(user: String?) throws -> [TokenRecord] {
        try write { try $0.tokens(user: user, id: nil) }
    }

    public func principal(tokenHash: String) throws -> (token: Int64, user: String, role: Role)? {
        try write { ctx in
            var found: (token: Int64, user: String, role: Role)?
            try ctx.statement("""
                SELECT t.id, u.name, u.role FROM api_tokens t JOIN users u ON u.name = t.user_name
                WHERE t.hash = ? AND t.revoked_at IS NULL
                """).query([.text(tokenHash)]) { r in
                if let role = Role(rawValue: r.text("role") ?? "") { found = (r.int("id"), r.text("name") ?? "", role) }
            }
            return found
        }
    }

    public func appendAudit(_ e: AuditEntry) throws {
        try write { ctx in
            try ctx.statement("INSERT INTO audit(at, user, address, action, campaign, detail) VALUES(?, ?, ?, ?, ?, ?)")
                .run([.int(e.at), .text(e.user), .text(e.address), .text(e.action), e.campaign.map { .text($0) } ?? .null, .text(e.detail)])
        }
    }

    public func audit(_ q: AuditQuery) throws -> [AuditEntry] {
        try write { ctx in
            var sql = "SELECT id, at, user, address, action, campaign, detail FROM audit WHERE id > ?"
            var values: [SQLValue] = [.int(q.after)]
            if let u = q.user { sql += " AND user = ?"; values.append(.text(u)) }
            if let a = q.action { sql += " AND action = ?"; values.append(.text(a)) }
            if let c = q.campaign { sql += " AND campaign = ?"; values.append(.text(c)) }
            if let s = q.since { sql += " AND at >= ?"; values.append(.int(s)) }
            if let u = q.until { sql += " AND at < ?"; values.append(.int(u)) }
            sql += " ORDER BY id LIMIT \(max(1, q.limit))"
            var out: [AuditEntry] = []
            // Not cached: the filters make many shapes of this statement, each read rarely.
            try ctx.db.prepare(sql).query(values) { r in
                var e = AuditEntry(at: r.int("at"), user: r.text("user") ?? "", address: r.text("address") ?? "", action: r.text("action") ?? "",
                                   campaign: r.text("campaign"), detail: r.text("detail") ?? "{}")
                e.id = r.int("id")
                out.append(e)
            }
            return out
        }
    }

    public func submitCampaign(_ id: String, generation: Int64?, by user: String, approvalRequired: Bool) throws -> CampaignState {
        try write { ctx in
            try ctx.requireGeneration(id, generation)
            try ctx.requireState(id, .loading)
            let next = CampaignLifecycle.next(.loading, on: approvalRequired ? .submit : .commit)!
            try ctx.setCampaignState(id, next)
            try ctx.statement("UPDATE campaigns SET submitted_by = ?, approved_by = NULL WHERE id = ?").run([.text(user), .text(id)])
            return next
        }
    }

    public func decide(_ id: String, approve: Bool, by user: String) throws -> CampaignState {
        try write { ctx in
            var state: CampaignState?
            var submitter: String?
            try ctx.statement("SELECT state, submitted_by FROM campaigns WHERE id = ?").query([.text(id)]) {
                state = CampaignState(rawValue: $0.text("state") ?? "")
                submitter = $0.text("submitted_by")
            }
            guard let state else { throw StoreError.notFound("campaign \(id)") }
            guard let next = CampaignLifecycle.next(state, on: approve ? .approve : .reject) else {
                throw StoreError.conflict("campaign \(id) is \(state.rawValue), not pending-approval")
            }
            // The two-person rule: whoever submitted it may not decide on it, not even to reject.
            if submitter == user { throw ApprovalRefused(description: "\(user) submitted campaign \(id); another approver must decide on it") }
            try ctx.setCampaignState(id, next)
            if approve { try ctx.statement("UPDATE campaigns SET approved_by = ? WHERE id = ?").run([.text(user), .text(id)]) }
            return next
        }
    }

    public func dropUnsentCampaign(_ id: String) throws -> CampaignState {
        try write { ctx in
            var state: CampaignState?
            try ctx.statement("SELECT state FROM campaigns WHERE id = ?").query([.text(id)]) { state = CampaignState(rawValue: $0.text("state") ?? "") }
            guard let state else { throw StoreError.notFound("campaign \(id)") }
            // `scheduled` has never run: a paused campaign resumes to `scheduled` only when its start has not come.
            guard [.pendingApproval, .rejected, .scheduled].contains(state) else {
                throw StoreError.conflict("campaign \(id) is \(state.rawValue); only a campaign that has sent nothing (pending-approval, rejected, scheduled) can be replaced")
            }
            try ctx.deleteCampaignRows(id)
            return state
        }
    }

    public func sampleTexts(campaign: String, limit: Int) throws -> [(text: String, carrier: String)] {
        try write { ctx in
            var out: [(text: String, carrier: String)] = []
            try ctx.statement("SELECT text, carrier FROM messages WHERE campaign_id = ? AND state = \(MessageState.queued.rawValue) AND text IS NOT NULL ORDER BY id LIMIT ?")
                .query([.text(campaign), .int(Int64(limit))]) { out.append(($0.text("text") ?? "", $0.text("carrier") ?? "")) }
            return out
        }
    }
}

extension WriteContext {
    func tokens(user: String?, id: Int64?) throws -> [TokenRecord] {
        var out: [TokenRecord] = []
        let sql = "SELECT id, user_name, label, created_at, revoked_at FROM api_tokens WHERE (? IS NULL OR user_name = ?) AND (? IS NULL OR id = ?) ORDER BY id"
        let u: SQLValue = user.map { .text($0) } ?? .null
        let i: SQLValue = id.map { .int($0) } ?? .null
        try statement(sql).query([u, u, i, i]) { r in
            let revoked = r.int("revoked_at")
            out.append(TokenRecord(id: r.int("id"), user: r.text("user_name") ?? "", label: r.text("label") ?? "",
                                   createdAt: r.int("created_at"), revokedAt: revoked == 0 ? nil : revoked))
        }
        return out
    }

    /// Deletes a campaign and every row it owns (a discarded load, a replaced unsent campaign).
    func deleteCampaignRows(_ id: String) throws {
        for sql in ["DELETE FROM messages WHERE campaign_id = ?", "DELETE FROM counts WHERE campaign_id = ?", "DELETE FROM skipped WHERE campaign_id = ?",
                    "DELETE FROM reason_counts WHERE campaign_id = ?", "DELETE FROM campaign_exclusions WHERE campaign_id = ?",
                    "DELETE FROM campaigns WHERE id = ?"] {
            try statement(sql).run([.text(id)])
        }
    }
}
