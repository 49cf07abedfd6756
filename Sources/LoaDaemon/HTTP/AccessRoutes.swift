import Foundation
import LoaCore
import LoaServer
import LoaStore

/// Users, API tokens, the audit trail and two-person approval under `/api/v1` (issue 20). Users and tokens are
/// managed through the API, as the admin: the daemon holds the store's lock, so a command writing the data directory
/// directly could not run beside it, and through the API every change lands in the audit trail with who made it.
extension DaemonService {
    static let accessEndpoints: [Endpoint] = [
        Endpoint("POST", "/api/v1/campaigns/{id}/approve", access: .role(.approver)) { s, _ in
            .body(limit: 64 << 10) { r in try s.decide(r, approve: true) }
        },
        Endpoint("POST", "/api/v1/campaigns/{id}/reject", access: .role(.approver)) { s, _ in
            .body(limit: 64 << 10) { r in try s.decide(r, approve: false) }
        },
        Endpoint("POST", "/api/v1/campaigns/{id}/test-send", access: .role(.approver)) { s, _ in
            .body(limit: 64 << 10) { r in try s.testSend(r) }
        },
        Endpoint("GET", "/api/v1/users", access: .role(.admin)) { s, _ in .value(try s.store.users()) },
        Endpoint("POST", "/api/v1/users", access: .role(.admin)) { s, _ in .body(limit: 64 << 10) { r in try s.addUser(r) } },
        Endpoint("DELETE", "/api/v1/users/{name}", access: .role(.admin)) { s, r in
            try s.store.removeUser(name: r["name"], now: s.clock.now())
            s.console.sessions.endAll(user: r["name"])
            s.audit(r, "user.remove", detail: ["user": r["name"]])
            return .value(["removed": r["name"]])
        },
        // Any user may change their own password; an admin anyone's.
        Endpoint("PUT", "/api/v1/users/{name}/password", access: .role(.viewer)) { s, _ in .body(limit: 64 << 10) { r in try s.setPassword(r) } },
        Endpoint("GET", "/api/v1/tokens", access: .role(.admin)) { s, r in .value(try s.store.tokens(user: r.query["user"])) },
        Endpoint("POST", "/api/v1/tokens", access: .role(.admin)) { s, _ in .body(limit: 64 << 10) { r in try s.createToken(r) } },
        Endpoint("DELETE", "/api/v1/tokens/{id}", access: .role(.admin)) { s, r in
            guard let id = Int64(r["id"]) else { throw APIError(404, "not-found", "no token \(r["id"])") }
            let t = try s.store.revokeToken(id: id, now: s.clock.now())
            s.audit(r, "token.revoke", detail: ["token": "\(t.id)", "user": t.user, "label": t.label])
            return .value(t)
        },
        Endpoint("GET", "/api/v1/audit", access: .role(.approver)) { s, r in try s.auditPage(r.query) },
    ]

    /// A request body as a JSON object, or 400.
    func object(_ r: Request) throws -> [String: Any] {
        guard !r.body.isEmpty else { return [:] }
        guard let o = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any] else {
            throw APIError(400, "bad-request", "the body must be a JSON object")
        }
        return o
    }

    static func validUserName(_ n: String) -> Bool {
        CampaignSpec.isValidID(n) && n.count <= 64 && n != Principal.configuredAdminName
    }

    /// A password for Argon2id: at least 10 characters (and at most 1024 bytes: hashing is the cost, not the length).
    func password(_ o: [String: Any]) throws -> String {
        guard let pw = o["password"] as? String, pw.count >= 10, pw.utf8.count <= 1024 else {
            throw APIError(422, "invalid", "password: at least 10 characters (at most 1024 bytes)")
        }
        return pw
    }

    func addUser(_ r: Request) throws -> Reply {
        let o = try object(r)
        guard let name = o["name"] as? String, Self.validUserName(name) else {
            throw APIError(422, "invalid", "name: letters, digits, '.', '_' or '-', at most 64 (and not \(Principal.configuredAdminName))")
        }
        guard let roleName = o["role"] as? String, let role = Role(rawValue: roleName) else {
            throw APIError(422, "invalid", "role: one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let hash = try Secrets.hashPassword(try password(o))
        try store.addUser(name: name, role: role, passwordHash: hash, now: clock.now())
        audit(r, "user.add", detail: ["user": name, "role": role.rawValue])
        return .value(["name": name, "role": role.rawValue], status: 201)
    }

    func setPassword(_ r: Request) throws -> Reply {
        let name = r["name"]
        guard let p = r.principal, p.role == .admin || p.name == name else {
            throw APIError(403, "forbidden", "only an admin may change another user's password")
        }
        let hash = try Secrets.hashPassword(try password(try object(r)))
        try store.setPassword(name: name, passwordHash: hash, now: clock.now())
        // Other browsers logged in as this user are logged out (the one changing it stays).
        console.sessions.endAll(user: name, except: r.principal?.session)
        audit(r, "user.passwd", detail: ["user": name])
        return .value(["name": name, "password": "changed"])
    }

    /// A new token for a user, answered once: only its hash is kept.
    func createToken(_ r: Request) throws -> Reply {
        let o = try object(r)
        guard let user = o["user"] as? String, !user.isEmpty else { throw APIError(422, "invalid", "user: required") }
        let label = (o["name"] as? String) ?? ""
        guard label.count <= 100 else { throw APIError(422, "invalid", "name: at most 100 characters") }
        let token = try Secrets.newToken()
        let id = try store.addToken(user: user, label: label, hash: Secrets.tokenHash(token), now: clock.now())
        audit(r, "token.create", detail: ["token": "\(id)", "user": user, "label": label])
        return .value(["id": "\(id)", "user": user, "name": label, "token": token], status: 201)
    }

    /// Approve or reject a `pending-approval` campaign, with an optional comment (kept in the audit trail).
    func decide(_ r: Request, approve: Bool) throws -> Reply {
        let id = r["id"]
        let comment = (try object(r)["comment"] as? String) ?? ""
        guard comment.count <= 2000 else { throw APIError(422, "invalid", "comment: at most 2000 characters") }
        let action = approve ? "campaign.approve" : "campaign.reject"
        let state: CampaignState
        do {
            state = try store.decide(id, approve: approve, by: r.who)
        } catch let e as ApprovalRefused {
            audit(r, action + "-refused", campaign: id, detail: ["reason": "submitter", "comment": comment])
            throw e
        }
        audit(r, action, campaign: id, detail: ["state": state.rawValue, "comment": comment])
        logger.notice(approve ? "campaign approved" : "campaign rejected", ["campaign.id": id, "user": r.who])
        dispatcher.wake()
        return .value(["id": id, "state": state.rawValue])
    }

    /// The most numbers a test send takes: a proof list (the approver's own phone, a colleague's), not a campaign.
    static let testSendLimit = 5

    /// A test send: the campaign's first rendered messages, one per number of a short proof list, through the real
    /// carrier path. They go as a campaign of their own, `<id>--test-<n>`, scheduled at once without approval, so
    /// nothing about them counts against the campaign (its counts, report and approval are untouched), while the
    /// dispatcher, rate limits, adapters, receipts and the delivery log treat them as any message (their lines name
    /// the test campaign). It keeps the campaign's sender, send windows and allowed carriers; its deadline is an hour.
    func testSend(_ r: Request) throws -> Reply {
        let id = r["id"]
        let c = try requireCampaign(id)
        guard var spec = c.spec else { throw StoreError.notFound("campaign \(id)") }
        guard [.pendingApproval, .scheduled, .paused].contains(c.state) else {
            throw APIError(409, "conflict", "campaign \(id) is \(c.state.rawValue); a test send is for a campaign not yet sending")
        }
        let numbers = (try object(r)["numbers"] as? [Any])?.compactMap { $0 as? String } ?? []
        guard (1...Self.testSendLimit).contains(numbers.count) else {
            throw APIError(422, "invalid", "numbers: a list of 1-\(Self.testSendLimit) phone numbers")
        }
        var phones: [PhoneNumber] = []
        for (i, n) in numbers.enumerated() {
            switch PhoneNormalizer.normalize(n, allowedCountryCodes: Set(spec.allowedCountryCodes)) {
            case .success(let p): phones.append(p)
            case .failure(let e): throw APIError(422, "invalid-number", "numbers[\(i)]: \(e.code)")
            }
        }
        let samples = try store.sampleTexts(campaign: id, limit: phones.count)
        guard !samples.isEmpty else { throw APIError(409, "conflict", "campaign \(id) has no queued message to show") }
        let now = clock.now()
        spec.start = ISOTime.format(now)
        spec.deadline = ISOTime.format(now + 3_600_000)
        let router = spec.carriers.isEmpty ? config.router : config.router.restricted(to: spec.carriers)
        var created: (id: String, generation: Int64)?
        for n in 1...1000 where created == nil {
            spec.id = "\(id)--test-\(n)"
            do { created = (spec.id, try store.createCampaign(spec, startAt: now, deadlineAt: now + 3_600_000)) } catch StoreError.conflict { continue }
        }
        guard let created else { throw APIError(409, "conflict", "campaign \(id) has had 1000 test sends") }
        let rows: [IngestRow] = phones.enumerated().map { i, p in
            let text = samples[i % samples.count].text
            let info = SMSText.analyze(text)
            return .accepted(phone: p.e164, carrier: router.route(p), text: text, encoding: info.encoding, segments: info.segments,
                             source: "test-send", line: i + 1, raw: numbers[i])
        }
        let counts = try store.ingest(campaign: created.id, generation: created.generation, rows: rows)
        _ = try store.submitCampaign(created.id, generation: created.generation, by: r.who, approvalRequired: false)
        audit(r, "campaign.test-send", campaign: id, detail: ["test_campaign": created.id, "numbers": "\(phones.count)",
                                                             "recipients": phones.map(\.masked).joined(separator: " ")])
        dispatcher.wake()
        return .value(TestSend(campaign: id, testCampaign: created.id, accepted: counts.accepted, suppressed: counts.suppressed), status: 201)
    }

    struct TestSend: Encodable {
        var campaign: String
        var testCampaign: String
        var accepted: Int64
        var suppressed: Int64
    }

    /// A page of the audit trail: `?user=&action=&campaign=&since=&until=` (times ISO 8601 with offset or Unix ms),
    /// `after` (the cursor: the last id seen) and `limit` (1-10,000, default 1,000).
    func auditPage(_ q: [String: String]) throws -> Reply {
        var query = AuditQuery()
        query.user = q["user"]
        query.action = q["action"]
        query.campaign = q["campaign"]
        func time(_ key: String) throws -> UnixMillis? {
            guard let v = q[key] else { return nil }
            guard let t = ISOTime.parse(v) ?? Int64(v) else { throw APIError(422, "invalid", "\(key): an ISO 8601 time with an offset, or Unix milliseconds") }
            return t
        }
        query.since = try time("since")
        query.until = try time("until")
        query.after = q["after"].flatMap { Int64($0) } ?? 0
        query.limit = min(max(q["limit"].flatMap { Int($0) } ?? 1000, 1), 10_000)
        let rows = try store.audit(query)
        var out = "{\"rows\":["
        for (i, e) in rows.enumerated() {
            if i > 0 { out += "," }
            // `detail` is a JSON object the daemon wrote; it is embedded as it is.
            out += "{\"id\":\(e.id),\"at\":\(e.at),\"time\":\(JSONText.quoted(ISOTime.format(e.at))),\"user\":\(JSONText.quoted(e.user)),"
                + "\"address\":\(JSONText.quoted(e.address)),\"action\":\(JSONText.quoted(e.action)),"
                + "\"campaign\":\(e.campaign.map(JSONText.quoted) ?? "null"),\"detail\":\(e.detail)}"
        }
        out += "],\"next\":\(rows.count == query.limit ? String(rows.last!.id) : "null")}"
        return .json(200, Array(out.utf8))
    }

    // MARK: - The audit trail

    /// Appends one action to the audit trail: who (the request's principal), from where (its peer address), what.
    /// A failure to write it is logged; the action itself has happened by then.
    func audit(_ r: Request, _ action: String, campaign: String? = nil, detail: [String: String] = [:]) {
        audit(r.head, user: r.who, action, campaign: campaign, detail: detail)
    }

    /// A refused request (`auth.failed`, `auth.forbidden`) on the record, within ``refusalBudget``: past it the refusal
    /// is counted, not written, and the next one written says how many were not kept (`not_kept_before`). The trail
    /// is append-only, so refusals that cost their sender nothing must not be able to fill the disk.
    func auditRefusal(_ head: RequestHead, user: String, _ action: String, detail: [String: String]) {
        let now = clock.now()
        guard let notKept = refusalBudget.withLock({ $0.admit(now: now) }) else { return }
        var detail = detail
        if notKept > 0 {
            detail["not_kept_before"] = String(notKept)
            logger.warning("refused requests beyond the audit trail's budget were counted, not recorded", ["count": "\(notKept)"])
        }
        audit(head, user: user, action, detail: detail)
    }

    func audit(_ head: RequestHead, user: String, _ action: String, campaign: String? = nil, detail: [String: String] = [:]) {
        let text = (try? JSONEncoder.api.encode(detail)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        do {
            try store.appendAudit(AuditEntry(at: clock.now(), user: user, address: head.remoteAddress, action: action, campaign: campaign, detail: text))
        } catch {
            logger.error("audit trail not written", ["action": action, "error": "\(error)"])
        }
    }
}
