import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import LoaStore
import Synchronization

/// The operator API under `/api/v1`: campaigns and their uploads, reports, opt-outs and carriers.
extension DaemonService {
    func uploadKey(_ id: String, _ generation: Int64) -> String { "\(id)#\(generation)" }

    /// The `generation` a request names (`?generation=N`), when it names one. A client that gives it (the CLI
    /// does) cannot touch a campaign created again under the same id after its own was discarded.
    func generation(_ head: RequestHead) throws -> Int64? {
        guard let g = head.query["generation"] else { return nil }
        guard let n = Int64(g) else { throw StoreError.invalid("generation: not a number") }
        return n
    }

    // MARK: - Operator API

    /// The operator API: every line names the least role it needs (``Role/includes(_:)``); the configured
    /// `api_token` is an admin and passes all. Reads are for viewers; campaign preparation for planners; pause and
    /// resume for operators; cancel for approvers (who also approve, reject and test-send: `AccessRoutes.swift`).
    static let operatorEndpoints: [Endpoint] = [
        Endpoint("GET", "/api/v1/campaigns", access: .role(.viewer)) { s, _ in .value(try s.store.campaigns()) },
        Endpoint("POST", "/api/v1/campaigns", access: .role(.planner)) { s, _ in .body(limit: 4 << 20) { r in try s.createCampaign(r.body, r) } },
        Endpoint("GET", "/api/v1/campaigns/{id}", access: .role(.viewer)) { s, r in try s.campaignView(r["id"]) },
        Endpoint("DELETE", "/api/v1/campaigns/{id}", access: .role(.planner)) { s, r in try s.discard(r["id"], r) },
        Endpoint("POST", "/api/v1/campaigns/{id}/commit", access: .role(.planner)) { s, r in try s.commit(r["id"], generation: try s.generation(r.head), r) },
        Endpoint("POST", "/api/v1/campaigns/{id}/pause", access: .role(.operator)) { s, r in try s.change(r["id"], .pause, r) },
        Endpoint("POST", "/api/v1/campaigns/{id}/resume", access: .role(.operator)) { s, r in try s.change(r["id"], .resume(started: true), r) },
        Endpoint("POST", "/api/v1/campaigns/{id}/cancel", access: .role(.approver)) { s, r in try s.change(r["id"], .cancel, r) },
        Endpoint("PUT", "/api/v1/campaigns/{id}/segments/{name}", access: .role(.planner)) { s, r in
            try s.uploadSegment(campaign: r["id"], segment: r["name"], head: r.head)
        },
        Endpoint("POST", "/api/v1/campaigns/{id}/segments/{name}/from-campaign", access: .role(.planner)) { s, r in
            try s.segmentFromCampaign(campaign: r["id"], segment: r["name"], head: r.head)
        },
        Endpoint("PUT", "/api/v1/campaigns/{id}/exclusions/{name}", access: .role(.planner)) { s, r in
            try s.uploadExclusion(campaign: r["id"], name: r["name"], head: r.head)
        },
        Endpoint("GET", "/api/v1/campaigns/{id}/report", access: .role(.viewer)) { s, r in
            try s.requireCampaign(r["id"])
            return .value(try s.store.reportData(campaign: r["id"]))
        },
        Endpoint("GET", "/api/v1/campaigns/{id}/messages", access: .role(.viewer)) { s, r in try s.messages(campaign: r["id"], query: r.query) },
        Endpoint("GET", "/api/v1/campaigns/{id}/rejects", access: .role(.viewer)) { s, r in try s.rejects(campaign: r["id"], query: r.query) },
        Endpoint("GET", "/api/v1/optouts", access: .role(.viewer)) { s, r in try s.optOutList(r.query) },
        Endpoint("POST", "/api/v1/optouts", access: .role(.operator)) { s, _ in .body(limit: 64 << 20) { r in try s.optOuts(r.body, add: true, r) } },
        Endpoint("DELETE", "/api/v1/optouts", access: .role(.operator)) { s, _ in .body(limit: 64 << 20) { r in try s.optOuts(r.body, add: false, r) } },
        Endpoint("GET", "/api/v1/carriers", access: .role(.viewer)) { s, _ in .value(s.carrierStatus()) },
        Endpoint("POST", "/api/v1/carriers/{name}/resume", access: .role(.operator)) { s, r in try s.resumeCarrier(r["name"], r) },
    ]

    /// The campaign, or 404 naming it.
    @discardableResult
    func requireCampaign(_ id: String) throws -> CampaignRecord {
        guard let c = try store.campaign(id) else { throw StoreError.notFound("campaign \(id)") }
        return c
    }

    /// The campaign with its progress, its planned and measured ends, and why it is not moving when it is not.
    func campaignView(_ id: String) throws -> Reply {
        let c = try requireCampaign(id)
        let now = clock.now()
        let pace = [.running, .paused].contains(c.state) ? paces.record(c, now: now) : nil
        return .value(CampaignView(c, now: now, feasibility: feasibility(c), pace: pace, carriers: dispatcher.status()))
    }

    func discard(_ id: String, _ r: Request) throws -> Reply {
        let c = try requireCampaign(id)
        try store.discardLoadingCampaign(id, generation: try generation(r.head) ?? c.generation)
        _ = uploads.withLock { $0.removeValue(forKey: uploadKey(id, c.generation)) }
        audit(r, "campaign.discard", campaign: id)
        return .value(["discarded": true])
    }

    /// Pause, resume or cancel, as the operator asks.
    func change(_ id: String, _ event: CampaignEvent, _ r: Request) throws -> Reply {
        let state = try store.apply(event, to: id, now: clock.now())
        let action = switch event { case .pause: "pause"; case .cancel: "cancel"; default: "resume" }
        audit(r, "campaign." + action, campaign: id, detail: ["state": state.rawValue])
        logger.notice(state.operatorMessage, ["campaign.id": id, "campaign.state": state.rawValue])
        dispatcher.wake()
        return .value(["id": id, "state": state.rawValue])
    }

    /// The dispatcher's figures per carrier, each with the unit its configured rate counts in; in a cluster with
    /// every live node's figures and the totals.
    func carrierStatus() -> [Dispatcher.CarrierStatus] {
        let inParts = Dictionary(uniqueKeysWithValues: config.carriers.map { ($0.name, $0.rateInSegments) })
        return dispatcher.clusterView(dispatcher.status()).map { var s = $0; s.rateUnit = inParts[s.name] == false ? "messages" : "parts"; return s }
    }

    /// Ends a pause after identical permanent answers.
    func resumeCarrier(_ name: String, _ r: Request) throws -> Reply {
        guard config.carriers.contains(where: { $0.name == name }) else { throw APIError(404, "not-found", "no carrier \(name)") }
        guard dispatcher.resume(carrier: name) else { throw APIError(409, "not-paused", "carrier \(name) is not paused") }
        audit(r, "carrier.resume", detail: ["carrier": name])
        return .value(["carrier": name, "state": "resumed"])
    }

    /// The opt-out list's size, or with `?format=text` the list itself, one E.164 number per line (for loa preview).
    func optOutList(_ query: [String: String]) throws -> Reply {
        guard query["format"] == "text" else { return .value(["count": try store.optOutCount()]) }
        let list = try store.optOuts()
        return .response(ServerResponse(status: 200, headers: [.init("Content-Type", "text/plain")],
                                        body: Array((list.joined(separator: "\n") + (list.isEmpty ? "" : "\n")).utf8)))
    }

    /// A page's cursor (`after`, default 0) and size (`limit`, 1-50,000, default 10,000) from the query.
    static func page(_ query: [String: String]) -> (after: Int64, limit: Int) {
        (query["after"].flatMap { Int64($0) } ?? 0, min(max(query["limit"].flatMap { Int($0) } ?? 10_000, 1), 50_000))
    }

    /// A page of a campaign's messages, each row an array (the report's columns), for `loa report`.
    func messages(campaign: String, query: [String: String]) throws -> Reply {
        let (after, limit) = Self.page(query)
        try requireCampaign(campaign)
        let rows = try store.reportRows(campaign: campaign, after: after, limit: limit)
        var out = "{\"rows\":["
        for (i, r) in rows.enumerated() {
            if i > 0 { out += "," }
            out += "[\(r.id),\(JSONText.quoted(r.phone)),\(JSONText.quoted(r.carrier)),\(JSONText.quoted(r.state)),\(JSONText.quoted(r.reason)),"
                + "\(r.attempts),\(r.updatedAt),\(JSONText.quoted(r.source)),\(r.line),\(JSONText.quoted(r.group)),\(JSONText.quoted(r.gatewayID))]"
        }
        out += "],\"next\":\(rows.count == limit ? String(rows.last!.id) : "null")}"
        return .json(200, Array(out.utf8))
    }

    /// What `POST /api/v1/campaigns` answers.
    struct Created: Encodable {
        var id: String
        var state = "loading"
        var generation: Int64
    }

    /// Creates a `loading` campaign. With `?replace=true`, a campaign of that id that has sent nothing
    /// (pending-approval, rejected, or scheduled before its start) is dropped first: a changed slogan or segment list
    /// is loaded as a new campaign under the same id, and its submission needs a new approval.
    func createCampaign(_ body: [UInt8], _ r: Request) throws -> Reply {
        if let value = JSONValue.parse(body), let key = JSONValue.firstDuplicateKey(value) {
            return invalidCampaign([CampaignRules.Issue(key, "given twice")])
        }
        let sub: CampaignSubmission
        do {
            sub = try JSONDecoder().decode(CampaignSubmission.self, from: Data(body))
        } catch let e as UnknownField {
            return invalidCampaign([CampaignRules.Issue(e.path, e.reason)])
        } catch let e as DecodingError {
            throw APIError(400, "bad-request", "campaign: \(DecodingProblem.text(e))")
        } catch {
            throw APIError(400, "bad-request", "campaign: \(error)")
        }
        // The same rules `loa check` applies to the campaign file (``CampaignRules``).
        let issues = CampaignRules.check(sub, knownCarriers: config.carriers.map(\.name))
        guard issues.isEmpty, let start = ISOTime.parse(sub.start), let deadline = ISOTime.parse(sub.deadline) else {
            return invalidCampaign(issues)
        }
        var replaced: CampaignState?
        if r.query["replace"] == "true", try store.campaign(sub.id) != nil {
            replaced = try store.dropUnsentCampaign(sub.id)
            dispatcher.wake()
        }
        let generation = try store.createCampaign(sub, startAt: start, deadlineAt: deadline)
        var detail = ["templates": sub.templates.map(\.name).joined(separator: " "), "segments": sub.segments.map(\.name).joined(separator: " ")]
        if let replaced { detail["replaced"] = replaced.rawValue }
        audit(r, replaced == nil ? "campaign.create" : "campaign.replace", campaign: sub.id, detail: detail)
        logger.info("campaign created", ["campaign.id": sub.id])
        return .value(Created(id: sub.id, generation: generation), status: 201)
    }

    /// 422 with each problem as `field: reason` in the message (as `loa check` prints them) and in `problems`.
    func invalidCampaign(_ issues: [CampaignRules.Issue]) -> Reply {
        let list = issues.map { "{\"field\":\(JSONText.quoted($0.field)),\"reason\":\(JSONText.quoted($0.reason))}" }.joined(separator: ",")
        let message = issues.map(\.description).joined(separator: "; ")
        return .json(422, Array("{\"error\":{\"code\":\"invalid-campaign\",\"message\":\(JSONText.quoted(message)),\"problems\":[\(list)]}}".utf8))
    }

    /// Ends loading. With approval required (the default) the campaign waits in `pending-approval`; else it is
    /// `scheduled`. The caller is recorded as its submitter, whom the two-person rule keeps from approving it.
    func commit(_ id: String, generation: Int64?, _ r: Request) throws -> Reply {
        guard let c = try store.campaign(id), let spec = c.spec else { throw StoreError.notFound("campaign \(id)") }
        if let generation, generation != c.generation {
            throw StoreError.conflict("campaign \(id) was discarded (and perhaps created again) since this request began")
        }
        let done = uploads.withLock { $0[uploadKey(id, c.generation)] ?? [] }
        let missing = spec.segments.map(\.name).filter { !done.contains($0) }
        if c.state == .loading && !missing.isEmpty {
            throw APIError(409, "segments-missing", "segments not uploaded yet: \(missing.joined(separator: ", "))")
        }
        let state = try store.submitCampaign(id, generation: c.generation, by: r.who, approvalRequired: config.approvalRequired)
        audit(r, "campaign.submit", campaign: id, detail: ["state": state.rawValue, "accepted": "\(c.accepted)", "rejected": "\(c.rejected)",
                                                           "sms_parts": "\(c.segmentsTotal)"])
        _ = uploads.withLock { $0.removeValue(forKey: uploadKey(id, c.generation)) }
        let f = feasibility(c)
        logger.info("campaign committed", ["campaign.id": id, "accepted": "\(c.accepted)", "rejected": "\(c.rejected)",
                                           "feasibility.on_time": "\(f.onTime)"])
        dispatcher.wake()
        var answer = ["id": id, "state": state.rawValue, "needed_hours": String(format: "%.2f", f.neededSeconds / 3600),
                      "window_hours": String(format: "%.2f", f.windowSeconds / 3600)]
        if let eta = f.eta { answer["eta"] = ISOTime.format(eta) }
        if let w = f.warning { answer["warning"] = w }
        return .value(answer)
    }

    func uploadSegment(campaign: String, segment: String, head: RequestHead) throws -> Reply {
        guard let record = try store.campaign(campaign), let spec = record.spec else { throw APIError(404, "not-found", "campaign \(campaign)") }
        if let g = try generation(head), g != record.generation {
            throw StoreError.conflict("campaign \(campaign) is not the one created with generation \(g)")
        }
        guard record.state == .loading else { throw APIError(409, "conflict", "campaign \(campaign) is \(record.state.rawValue), not loading") }
        guard let info = spec.segments.first(where: { $0.name == segment }) else {
            throw APIError(404, "unknown-segment", "campaign \(campaign) has no segment named \(segment)")
        }
        let key = uploadKey(campaign, record.generation)
        let fresh = uploads.withLock { $0[key, default: []].insert(segment).inserted }
        guard fresh else { throw APIError(409, "conflict", "segment \(segment) was already uploaded") }
        let templates = spec.templates.compactMap { try? Template(name: $0.name, source: $0.text) }
        return .stream(ReaderUpload.segment(self, campaign: spec, generation: record.generation, templates: templates, segment: info))
    }

    /// A reminder wave: the recipients of an earlier campaign in the given final states become this segment's
    /// rows (the campaign's exclusions and the opt-out list apply as for any segment).
    func segmentFromCampaign(campaign: String, segment: String, head: RequestHead) throws -> Reply {
        guard let r = try store.campaign(campaign), let spec = r.spec else { throw APIError(404, "not-found", "campaign \(campaign)") }
        if let g = head.query["generation"], Int64(g) != r.generation {
            throw APIError(409, "conflict", "campaign \(campaign) was discarded (and perhaps created again) since this request began")
        }
        guard r.state == .loading else { throw APIError(409, "conflict", "campaign \(campaign) is \(r.state.rawValue), not loading") }
        guard let info = spec.segments.first(where: { $0.name == segment }), let source = info.fromCampaign else {
            throw APIError(404, "unknown-segment", "campaign \(campaign) has no reminder segment named \(segment)")
        }
        guard try store.campaign(source) != nil else { throw APIError(422, "invalid-segment", "\(segment): no earlier campaign named \(source)") }
        let states = (info.states ?? []).compactMap { MessageState(name: $0) }
        guard !states.isEmpty else { throw APIError(422, "invalid-segment", "\(segment): states must name message states") }
        let fresh = uploads.withLock { $0[uploadKey(campaign, r.generation), default: []].insert(segment).inserted }
        guard fresh else { throw APIError(409, "conflict", "segment \(segment) was already loaded") }
        do {
            let templates = spec.templates.compactMap { try? Template(name: $0.name, source: $0.text) }
            var counts = IngestCounts()
            let reader = SegmentReader(source: segment, format: .lines, campaign: spec, templates: templates, phoneColumn: "phone",
                                       router: config.router) { rows in counts.add(try self.store.ingest(campaign: campaign, generation: r.generation, rows: rows)) }
            var after: Int64 = 0
            while true {
                let page = try store.recipients(of: source, states: states, after: after, limit: 5_000)
                guard let last = page.last else { break }
                let bytes = Array(page.map(\.phone).joined(separator: "\n").utf8) + [10]
                try bytes.withUnsafeBytes { try reader.feed($0) }
                after = last.id
            }
            try reader.finish()
            return .value(counts)
        } catch let h as SegmentReader.HeaderError {
            uploadFailed(campaign: campaign, segment: segment)
            throw APIError(422, "invalid-segment", h.description)
        } catch {
            uploadFailed(campaign: campaign, segment: segment)
            throw error
        }
    }

    func uploadExclusion(campaign: String, name: String, head: RequestHead) throws -> Reply {
        guard let r = try store.campaign(campaign), let spec = r.spec else { throw APIError(404, "not-found", "campaign \(campaign)") }
        guard r.state == .loading else { throw APIError(409, "conflict", "campaign \(campaign) is \(r.state.rawValue), not loading") }
        if let g = try self.generation(head), g != r.generation { throw StoreError.conflict("campaign \(campaign) is not the one created with generation \(g)") }
        guard let info = spec.exclusions.first(where: { $0.name == name }) else {
            throw APIError(404, "unknown-exclusion", "campaign \(campaign) has no exclusion file named \(name)")
        }
        let key = uploadKey(campaign, r.generation)
        let done = uploads.withLock { $0[key, default: []] }
        if !spec.segments.filter({ done.contains($0.name) }).isEmpty {
            throw APIError(409, "conflict", "upload exclusion files before segments")
        }
        _ = uploads.withLock { $0[key, default: []].insert("exclude:" + name) }
        return .stream(ReaderUpload.exclusion(self, campaign: spec, generation: r.generation, file: info))
    }

    func rejects(campaign: String, query: [String: String]) throws -> Reply {
        let (after, limit) = Self.page(query)
        try requireCampaign(campaign)
        let page = try store.rejects(campaign: campaign, after: after, batch: limit)
        var out = "{\"rows\":["
        for (i, r) in page.enumerated() {
            if i > 0 { out += "," }
            out += "{\"source\":\(JSONText.quoted(r.row.source)),\"line\":\(r.row.line),\"raw\":\(JSONText.quoted(r.row.raw)),"
                + "\"reason\":\(JSONText.quoted(r.row.reason)),\"detail\":\(JSONText.quoted(r.row.detail))}"
        }
        out += "],\"next\":\(page.count == limit ? String(page.last!.cursor) : "null")}"
        return .json(200, Array(out.utf8))
    }

    /// The body is numbers, one per line, in any written form.
    func optOuts(_ body: [UInt8], add: Bool, _ r: Request) throws -> Reply {
        var phones: [String] = []
        var invalid: [String] = []
        for (i, line) in String(decoding: body, as: UTF8.self).split(whereSeparator: \.isNewline).enumerated() {
            let raw = line.trimmingCharacters(in: .whitespaces)
            if raw.isEmpty { continue }
            switch PhoneNormalizer.normalize(raw, allowedCountryCodes: []) {
            case .success(let p): phones.append(p.e164)
            case .failure(let r): invalid.append("line \(i + 1): \(r.code)")
            }
        }
        guard invalid.isEmpty else { throw APIError(422, "invalid-number", invalid.prefix(20).joined(separator: "; ")) }
        let n = add ? try store.addOptOuts(phones, source: "api") : try store.removeOptOuts(phones)
        logger.info(add ? "numbers opted out" : "numbers opted back in", ["count": "\(n)"])
        audit(r, add ? "optout.add" : "optout.remove", detail: ["numbers": "\(phones.count)", "changed": "\(n)"])
        return .value([(add ? "added" : "removed"): Int64(n), "count": try store.optOutCount()])
    }

    func uploadFailed(campaign: String, generation: Int64? = nil, segment: String) {
        let g = generation ?? ((try? store.campaign(campaign))??.generation ?? 0)
        _ = uploads.withLock { $0[uploadKey(campaign, g)]?.remove(segment) }
    }

    /// Deadline feasibility from what is left per carrier, the carriers' configured rates and the windows.
    func feasibility(_ c: CampaignRecord) -> Feasibility {
        var remaining: [String: Int64] = [:]
        let partsPerMessage = c.accepted == 0 ? 1 : Double(c.segmentsTotal) / Double(c.accepted)
        let inSegments = Dictionary(uniqueKeysWithValues: config.carriers.map { ($0.name, $0.rateInSegments) })
        for (carrier, states) in c.carriers {
            let messages = (states["queued"] ?? 0) + (states["sending"] ?? 0)
            // Carriers that count parts need the parts, not the messages.
            remaining[carrier] = inSegments[carrier] == true ? Int64((Double(messages) * partsPerMessage).rounded(.up)) : messages
        }
        let rates = Dictionary(uniqueKeysWithValues: config.carriers.map { ($0.name, $0.rate) })
        return Feasibility.estimate(remaining: remaining, rates: rates, maxRate: c.spec?.maxRate,
                                    windows: c.spec?.sendWindows ?? .standard, start: c.startAt, deadline: c.deadlineAt,
                                    now: clock.now())
    }
}
