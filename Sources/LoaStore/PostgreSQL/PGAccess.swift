import Foundation
import LoaCore

// Users, API tokens, the audit trail and two-person approval on PostgreSQL (SQLite's Access.swift). The audit table
// refuses UPDATE, DELETE and TRUNCATE through triggers (PGSchema), whoever asks.

extension PostgresStore {
    public func addUser(name: String, role: Role, passwordHash: String, now t: UnixMillis) throws {
        try write { ctx in
            let added = try ctx.run("INSERT INTO users(name, role, password, created_at, updated_at) VALUES(?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                    [.text(name), .text(role.rawValue), .text(passwordHash), .int(t), .int(t)])
            if added == 0 { throw StoreError.conflict("user \(name) already exists") }
        }
    }

    public func removeUser(name: String, now t: UnixMillis) throws {
        try write { ctx in
            guard try ctx.run("DELETE FROM users WHERE name = ?", [.text(name)]) == 1 else { throw StoreError.notFound("user \(name)") }
            try ctx.run("UPDATE api_tokens SET revoked_at = ? WHERE user_name = ? AND revoked_at IS NULL", [.int(t), .text(name)])
        }
    }

    public func setPassword(name: String, passwordHash: String, now t: UnixMillis) throws {
        try write { ctx in
            guard try ctx.run("UPDATE users SET password = ?, updated_at = ? WHERE name = ?", [.text(passwordHash), .int(t), .text(name)]) == 1 else {
                throw StoreError.notFound("user \(name)")
            }
        }
    }

    public func passwordHash(of name: String) throws -> String? {
        try write { ctx in
            var hash: String?
            try ctx.query("SELECT password FROM users WHERE name = ?", [.text(name)]) { hash = $0.text("password") }
            return hash
        }
    }

    public func users() throws -> [UserRecord] {
        try write { ctx in
            var out: [UserRecord] = []
            try ctx.query("""
                SELECT name, role, created_at, updated_at,
                       (SELECT COUNT(*) FROM api_tokens t WHERE t.user_name = users.name AND t.revoked_at IS NULL) AS live
                FROM users ORDER BY name COLLATE "C"
                """) { r in
                out.append(UserRecord(name: r.text("name") ?? "", role: Role(rawValue: r.text("role") ?? "") ?? .viewer,
                                      createdAt: r.int("created_at"), updatedAt: r.int("updated_at"), tokens: r.int("live")))
            }
            return out
        }
    }

    public func addToken(user: String, label: String, hash: String, now t: UnixMillis) throws -> Int64 {
        try write { ctx in
            var exists = false
            try ctx.query("SELECT 1 AS one FROM users WHERE name = ?", [.text(user)]) { _ in exists = true }
            guard exists else { throw StoreError.notFound("user \(user)") }
            var id: Int64 = 0
            try ctx.query("INSERT INTO api_tokens(user_name, label, hash, created_at) VALUES(?, ?, ?, ?) RETURNING id",
                          [.text(user), .text(label), .text(hash), .int(t)]) { id = $0.int("id") }
            ctx.changes += 1
            return id
        }
    }

    public func revokeToken(id: Int64, now t: UnixMillis) throws -> TokenRecord {
        try write { ctx in
            guard try ctx.run("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", [.int(t), .int(id)]) == 1 else {
                throw StoreError.notFound("live token \(id)")
            }
            return try ctx.tokens(user: nil, id: id)[0]
        }
    }

    public func tokens(user: String?) throws -> [TokenRecord] {
        try write { try $0.tokens(user: user, id: nil) }
    }

    public func principal(tokenHash: String) throws -> (token: Int64, user: String, role: Role)? {
        try write { ctx in
            var found: (token: Int64, user: String, role: Role)?
            try ctx.query("""
                SELECT t.id, u.name, u.role FROM api_tokens t JOIN users u ON u.name = t.user_name WHERE t.hash = ? AND t.revoked_at IS NULL
                """, [.text(tokenHash)]) { r in
                if let role = Role(rawValue: r.text("role") ?? "") { found = (r.int("id"), r.text("name") ?? "", role) }
            }
            return found
        }
    }

    public func appendAudit(_ e: AuditEntry) throws {
        try write { ctx in
            try ctx.run("INSERT INTO audit(at, user_name, address, action, campaign, detail) VALUES(?, ?, ?, ?, ?, ?)",
                        [.int(e.at), .text(e.user), .text(e.address), .text(e.action), .opt(e.campaign), .text(e.detail)])
        }
    }

    public func audit(_ q: AuditQuery) throws -> [AuditEntry] {
        try write { ctx in
            // One statement for every filter: a missing filter is a NULL that matches everything.
            var out: [AuditEntry] = []
            try ctx.query("""
                SELECT id, at, user_name, address, action, campaign, detail FROM audit
                WHERE id > ? AND (?::text IS NULL OR user_name = ?::text) AND (?::text IS NULL OR action = ?::text)
                AND (?::text IS NULL OR campaign = ?::text) AND (?::bigint IS NULL OR at >= ?::bigint) AND (?::bigint IS NULL OR at < ?::bigint)
                ORDER BY id LIMIT ?
                """, [.int(q.after), .opt(q.user), .opt(q.user), .opt(q.action), .opt(q.action), .opt(q.campaign), .opt(q.campaign),
                      .opt(q.since), .opt(q.since), .opt(q.until), .opt(q.until), .int(Int64(max(1, q.limit)))]) { r in
                var e = AuditEntry(at: r.int("at"), user: r.text("user_name") ?? "", address: r.text("address") ?? "", action: r.text("action") ?? "",
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
            try ctx.run("UPDATE campaigns SET submitted_by = ?, approved_by = NULL WHERE id = ?", [.text(user), .text(id)])
            return next
        }
    }

    public func decide(_ id: String, approve: Bool, by user: String) throws -> CampaignState {
        try write { ctx in
            var state: CampaignState?
            var submitter: String?
            try ctx.query("SELECT state, submitted_by FROM campaigns WHERE id = ? FOR UPDATE", [.text(id)]) {
                state = CampaignState(rawValue: $0.text("state") ?? "")
                submitter = $0.text("submitted_by")
            }
            guard let state else { throw StoreError.notFound("campaign \(id)") }
            guard let next = CampaignLifecycle.next(state, on: approve ? .approve : .reject) else {
                throw StoreError.conflict("campaign \(id) is \(state.rawValue), not pending-approval")
            }
            if submitter == user { throw ApprovalRefused(description: "\(user) submitted campaign \(id); another approver must decide on it") }
            try ctx.setCampaignState(id, next)
            if approve { try ctx.run("UPDATE campaigns SET approved_by = ? WHERE id = ?", [.text(user), .text(id)]) }
            return next
        }
    }

    public func dropUnsentCampaign(_ id: String) throws -> CampaignState {
        try write { ctx in
            var state: CampaignState?
            try ctx.query("SELECT state FROM campaigns WHERE id = ? FOR UPDATE", [.text(id)]) { state = CampaignState(rawValue: $0.text("state") ?? "") }
            guard let state else { throw StoreError.notFound("campaign \(id)") }
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
            try ctx.query("SELECT text, carrier FROM messages WHERE campaign_id = ? AND state = \(PGSchema.queued) AND text IS NOT NULL ORDER BY id LIMIT ?",
                          [.text(campaign), .int(Int64(limit))]) { out.append(($0.text("text") ?? "", $0.text("carrier") ?? "")) }
            return out
        }
    }
}

extension PGContext {
    func tokens(user: String?, id: Int64?) throws -> [TokenRecord] {
        var out: [TokenRecord] = []
        try query("""
            SELECT id, user_name, label, created_at, revoked_at FROM api_tokens
            WHERE (?::text IS NULL OR user_name = ?::text) AND (?::bigint IS NULL OR id = ?::bigint) ORDER BY id
            """, [.opt(user), .opt(user), .opt(id), .opt(id)]) { r in
            out.append(TokenRecord(id: r.int("id"), user: r.text("user_name") ?? "", label: r.text("label") ?? "",
                                   createdAt: r.int("created_at"), revokedAt: r.isNull("revoked_at") ? nil : r.int("revoked_at")))
        }
        return out
    }
}
