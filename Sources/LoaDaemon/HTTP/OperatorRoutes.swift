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

    func api(_ head: RequestHead, _ p: [String]) -> Route {
        switch (head.method, p.count) {
        case ("GET", 1) where p[0] == "campaigns":
            return .respond(result { try JSONEncoder.api.encode(self.store.campaigns()) })
        case ("POST", 1) where p[0] == "campaigns":
            return .buffer(limit: 4 << 20) { [self] _, body in createCampaign(body) }
        case ("GET", 2) where p[0] == "campaigns":
            return .respond(result {
                guard let c = try self.store.campaign(p[1]) else { throw StoreError.notFound("campaign \(p[1])") }
                return try JSONEncoder.api.encode(CampaignView(c, now: SystemTimeSource().now(), feasibility: self.feasibility(c)))
            })
        case ("DELETE", 2) where p[0] == "campaigns":
            return .respond(result {
                guard let c = try self.store.campaign(p[1]) else { throw StoreError.notFound("campaign \(p[1])") }
                try self.store.discardLoadingCampaign(p[1], generation: try self.generation(head) ?? c.generation)
                _ = self.uploads.withLock { $0.removeValue(forKey: self.uploadKey(p[1], c.generation)) }
                return Data("{\"discarded\":true}".utf8)
            })
        case ("POST", 3) where p[0] == "campaigns" && p[2] == "commit":
            do { return .respond(commit(p[1], generation: try generation(head))) } catch { return .respond(storeError(error)) }
        case ("POST", 3) where p[0] == "campaigns" && ["pause", "resume", "cancel"].contains(p[2]):
            let event: CampaignEvent = p[2] == "pause" ? .pause : p[2] == "cancel" ? .cancel : .resume(started: true)
            return .respond(result {
                let state = try self.store.apply(event, to: p[1], now: SystemTimeSource().now())
                self.logger.notice("campaign state changed by the operator", ["campaign.id": p[1], "campaign.state": state.rawValue])
                self.dispatcher.wake()
                return Data("{\"id\":\(JSONText.quoted(p[1])),\"state\":\"\(state.rawValue)\"}".utf8)
            })
        case ("PUT", 4) where p[0] == "campaigns" && p[2] == "segments":
            return uploadSegment(campaign: p[1], segment: p[3], head: head)
        case ("POST", 5) where p[0] == "campaigns" && p[2] == "segments" && p[4] == "from-campaign":
            return .respond(segmentFromCampaign(campaign: p[1], segment: p[3], head: head))
        case ("PUT", 4) where p[0] == "campaigns" && p[2] == "exclusions":
            return uploadExclusion(campaign: p[1], name: p[3], head: head)
        case ("GET", 3) where p[0] == "campaigns" && p[2] == "report":
            return .respond(result {
                guard try self.store.campaign(p[1]) != nil else { throw StoreError.notFound("campaign \(p[1])") }
                return try JSONEncoder.api.encode(try self.store.reportData(campaign: p[1]))
            })
        case ("GET", 3) where p[0] == "campaigns" && p[2] == "messages":
            let after = head.query["after"].flatMap { Int64($0) } ?? 0
            let limit = min(max(head.query["limit"].flatMap { Int($0) } ?? 10_000, 1), 50_000)
            return .respond(result {
                guard try self.store.campaign(p[1]) != nil else { throw StoreError.notFound("campaign \(p[1])") }
                let rows = try self.store.reportRows(campaign: p[1], after: after, limit: limit)
                var out = "{\"rows\":["
                for (i, r) in rows.enumerated() {
                    if i > 0 { out += "," }
                    out += "[\(r.id),\(JSONText.quoted(r.phone)),\(JSONText.quoted(r.carrier)),\(JSONText.quoted(r.state)),\(JSONText.quoted(r.reason)),"
                        + "\(r.attempts),\(r.updatedAt),\(JSONText.quoted(r.source)),\(r.line),\(JSONText.quoted(r.group)),\(JSONText.quoted(r.gatewayID))]"
                }
                out += "],\"next\":\(rows.count == limit ? String(rows.last!.id) : "null")}"
                return Data(out.utf8)
            })
        case ("GET", 3) where p[0] == "campaigns" && p[2] == "rejects":
            return .respond(rejects(campaign: p[1], query: head.query))
        case ("POST", 1) where p[0] == "optouts", ("DELETE", 1) where p[0] == "optouts":
            let add = head.method == "POST"
            return .buffer(limit: 64 << 20) { [self] _, body in optOuts(body, add: add) }
        case ("GET", 1) where p[0] == "optouts":
            if head.query["format"] == "text" {
                // The list itself, one E.164 number per line (for loa preview).
                do {
                    let list = try store.optOuts()
                    return .respond(ServerResponse(status: 200, headers: [.init("Content-Type", "text/plain")],
                                                   body: Array((list.joined(separator: "\n") + (list.isEmpty ? "" : "\n")).utf8)))
                } catch {
                    return .respond(storeError(error))
                }
            }
            return .respond(result { Data("{\"count\":\(try self.store.optOutCount())}".utf8) })
        case ("GET", 1) where p[0] == "carriers":
            return .respond(result { try JSONEncoder.api.encode(self.dispatcher.status()) })
        case ("POST", 3) where p[0] == "carriers" && p[2] == "resume":
            // Ends a pause after identical permanent answers (operator routes are all behind the API token).
            guard config.carriers.contains(where: { $0.name == p[1] }) else { return .respond(error(404, "not-found", "no carrier \(p[1])")) }
            guard dispatcher.resume(carrier: p[1]) else { return .respond(error(409, "not-paused", "carrier \(p[1]) is not paused")) }
            return .respond(json(200, ["carrier": p[1], "state": "resumed"]))
        default:
            return .respond(error(404, "not-found", "no such endpoint: \(head.method) \(head.path)"))
        }
    }

    func createCampaign(_ body: [UInt8]) -> ServerResponse {
        if let value = JSONValue.parse(body), let key = JSONValue.firstDuplicateKey(value) {
            return invalidCampaign([CampaignRules.Issue(key, "given twice")])
        }
        let sub: CampaignSubmission
        do {
            sub = try JSONDecoder().decode(CampaignSubmission.self, from: Data(body))
        } catch let e as UnknownField {
            return invalidCampaign([CampaignRules.Issue(e.path, e.reason)])
        } catch let e as DecodingError {
            return self.error(400, "bad-request", "campaign: \(DecodingProblem.text(e))")
        } catch {
            return self.error(400, "bad-request", "campaign: \(error)")
        }
        // The same rules `loa check` applies to the campaign file (``CampaignRules``).
        let issues = CampaignRules.check(sub, knownCarriers: config.carriers.map(\.name))
        guard issues.isEmpty, let start = ISOTime.parse(sub.start), let deadline = ISOTime.parse(sub.deadline) else {
            return invalidCampaign(issues)
        }
        return result(status: 201) {
            let generation = try self.store.createCampaign(sub, startAt: start, deadlineAt: deadline)
            self.logger.info("campaign created", ["campaign.id": sub.id])
            return Data("{\"id\":\(JSONText.quoted(sub.id)),\"state\":\"loading\",\"generation\":\(generation)}".utf8)
        }
    }

    /// 422 with each problem as `field: reason` in the message (as `loa check` prints them) and in `problems`.
    func invalidCampaign(_ issues: [CampaignRules.Issue]) -> ServerResponse {
        let list = issues.map { "{\"field\":\(JSONText.quoted($0.field)),\"reason\":\(JSONText.quoted($0.reason))}" }.joined(separator: ",")
        let message = issues.map(\.description).joined(separator: "; ")
        return .json(422, Array("{\"error\":{\"code\":\"invalid-campaign\",\"message\":\(JSONText.quoted(message)),\"problems\":[\(list)]}}".utf8))
    }

    func commit(_ id: String, generation: Int64?) -> ServerResponse {
        do {
            guard let c = try store.campaign(id), let spec = c.spec else { throw StoreError.notFound("campaign \(id)") }
            if let generation, generation != c.generation {
                throw StoreError.conflict("campaign \(id) was discarded (and perhaps created again) since this request began")
            }
            let done = uploads.withLock { $0[uploadKey(id, c.generation)] ?? [] }
            let missing = spec.segments.map(\.name).filter { !done.contains($0) }
            if c.state == .loading && !missing.isEmpty {
                return error(409, "segments-missing", "segments not uploaded yet: \(missing.joined(separator: ", "))")
            }
            try store.commitCampaign(id, generation: c.generation)
            _ = uploads.withLock { $0.removeValue(forKey: uploadKey(id, c.generation)) }
            let f = feasibility(c)
            logger.info("campaign committed", ["campaign.id": id, "accepted": "\(c.accepted)", "rejected": "\(c.rejected)",
                                               "feasibility.on_time": "\(f.onTime)"])
            dispatcher.wake()
            var answer = ["id": id, "state": "scheduled", "needed_hours": String(format: "%.2f", f.neededSeconds / 3600),
                          "window_hours": String(format: "%.2f", f.windowSeconds / 3600)]
            if let eta = f.eta { answer["eta"] = ISOTime.format(eta) }
            if let w = f.warning { answer["warning"] = w }
            return json(200, answer)
        } catch {
            return storeError(error)
        }
    }

    func uploadSegment(campaign: String, segment: String, head: RequestHead) -> Route {
        let record: CampaignRecord
        do {
            guard let r = try store.campaign(campaign), let _ = r.spec else { return .respond(error(404, "not-found", "campaign \(campaign)")) }
            record = r
            if let g = try generation(head), g != r.generation { throw StoreError.conflict("campaign \(campaign) is not the one created with generation \(g)") }
        } catch {
            return .respond(storeError(error))
        }
        guard record.state == .loading else { return .respond(error(409, "conflict", "campaign \(campaign) is \(record.state.rawValue), not loading")) }
        guard let spec = record.spec, let info = spec.segments.first(where: { $0.name == segment }) else {
            return .respond(error(404, "unknown-segment", "campaign \(campaign) has no segment named \(segment)"))
        }
        let key = uploadKey(campaign, record.generation)
        let fresh = uploads.withLock { $0[key, default: []].insert(segment).inserted }
        guard fresh else { return .respond(error(409, "conflict", "segment \(segment) was already uploaded")) }
        let templates = spec.templates.compactMap { try? Template(name: $0.name, source: $0.text) }
        return .stream(ReaderUpload.segment(self, campaign: spec, generation: record.generation, templates: templates, segment: info))
    }

    /// A reminder wave: the recipients of an earlier campaign in the given final states become this segment's
    /// rows (the campaign's exclusions and the opt-out list apply as for any segment).
    func segmentFromCampaign(campaign: String, segment: String, head: RequestHead) -> ServerResponse {
        do {
            guard let r = try store.campaign(campaign), let spec = r.spec else { return error(404, "not-found", "campaign \(campaign)") }
            if let g = head.query["generation"], Int64(g) != r.generation {
                return error(409, "conflict", "campaign \(campaign) was discarded (and perhaps created again) since this request began")
            }
            guard r.state == .loading else { return error(409, "conflict", "campaign \(campaign) is \(r.state.rawValue), not loading") }
            guard let info = spec.segments.first(where: { $0.name == segment }), let source = info.fromCampaign else {
                return error(404, "unknown-segment", "campaign \(campaign) has no reminder segment named \(segment)")
            }
            guard try store.campaign(source) != nil else { return error(422, "invalid-segment", "\(segment): no earlier campaign named \(source)") }
            let states = (info.states ?? []).compactMap { MessageState(name: $0) }
            guard !states.isEmpty else { return error(422, "invalid-segment", "\(segment): states must name message states") }
            let fresh = uploads.withLock { $0[uploadKey(campaign, r.generation), default: []].insert(segment).inserted }
            guard fresh else { return error(409, "conflict", "segment \(segment) was already loaded") }
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
            return .json(200, Array((try JSONEncoder.api.encode(counts))))
        } catch let h as SegmentReader.HeaderError {
            uploadFailed(campaign: campaign, segment: segment)
            return error(422, "invalid-segment", h.description)
        } catch {
            uploadFailed(campaign: campaign, segment: segment)
            return storeError(error)
        }
    }

    func uploadExclusion(campaign: String, name: String, head: RequestHead) -> Route {
        let spec: CampaignSubmission
        let generation: Int64
        do {
            guard let r = try store.campaign(campaign), let sp = r.spec else { return .respond(error(404, "not-found", "campaign \(campaign)")) }
            guard r.state == .loading else { return .respond(error(409, "conflict", "campaign \(campaign) is \(r.state.rawValue), not loading")) }
            if let g = try self.generation(head), g != r.generation { throw StoreError.conflict("campaign \(campaign) is not the one created with generation \(g)") }
            spec = sp
            generation = r.generation
        } catch {
            return .respond(storeError(error))
        }
        guard let info = spec.exclusions.first(where: { $0.name == name }) else {
            return .respond(error(404, "unknown-exclusion", "campaign \(campaign) has no exclusion file named \(name)"))
        }
        let key = uploadKey(campaign, generation)
        let done = uploads.withLock { $0[key, default: []] }
        if !spec.segments.filter({ done.contains($0.name) }).isEmpty {
            return .respond(error(409, "conflict", "upload exclusion files before segments"))
        }
        _ = uploads.withLock { $0[key, default: []].insert("exclude:" + name) }
        return .stream(ReaderUpload.exclusion(self, campaign: spec, generation: generation, file: info))
    }

    func rejects(campaign: String, query: [String: String]) -> ServerResponse {
        let after = query["after"].flatMap { Int64($0) } ?? 0
        let limit = min(max(query["limit"].flatMap { Int($0) } ?? 10_000, 1), 50_000)
        return result {
            guard try self.store.campaign(campaign) != nil else { throw StoreError.notFound("campaign \(campaign)") }
            let page = try self.store.rejects(campaign: campaign, after: after, batch: limit)
            var out = "{\"rows\":["
            for (i, r) in page.enumerated() {
                if i > 0 { out += "," }
                out += "{\"source\":\(JSONText.quoted(r.row.source)),\"line\":\(r.row.line),\"raw\":\(JSONText.quoted(r.row.raw)),"
                    + "\"reason\":\(JSONText.quoted(r.row.reason)),\"detail\":\(JSONText.quoted(r.row.detail))}"
            }
            out += "],\"next\":\(page.count == limit ? String(page.last!.cursor) : "null")}"
            return Data(out.utf8)
        }
    }

    /// The body is numbers, one per line, in any written form.
    func optOuts(_ body: [UInt8], add: Bool) -> ServerResponse {
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
        guard invalid.isEmpty else { return error(422, "invalid-number", invalid.prefix(20).joined(separator: "; ")) }
        return result {
            let n = add ? try self.store.addOptOuts(phones, source: "api") : try self.store.removeOptOuts(phones)
            self.logger.info(add ? "numbers opted out" : "numbers opted back in", ["count": "\(n)"])
            return Data("{\"\(add ? "added" : "removed")\":\(n),\"count\":\(try self.store.optOutCount())}".utf8)
        }
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
                                    now: SystemTimeSource().now())
    }
}

/// The operator API's view of a campaign.
struct CampaignView: Encodable {
    var campaign: CampaignRecord
    var progress: Double
    var finalCount: Int64
    var feasibility: Feasibility

    init(_ c: CampaignRecord, now: UnixMillis, feasibility: Feasibility) {
        campaign = c
        self.feasibility = feasibility
        // Every recipient (rejected rows aside) counts; progress is the share in a final state.
        let recipients = c.states.filter { $0.key != MessageState.rejected.name }
        finalCount = recipients.filter { MessageState(name: $0.key)?.isFinal == true }.values.reduce(0, +)
        let total = recipients.values.reduce(0, +)
        progress = total == 0 ? 1 : Double(finalCount) / Double(total)
    }

    func encode(to encoder: any Encoder) throws {
        try campaign.encode(to: encoder)
        var c = encoder.container(keyedBy: K.self)
        try c.encode(progress, forKey: .progress)
        try c.encode(finalCount, forKey: .finalCount)
        try c.encode(feasibility, forKey: .feasibility)
    }

    enum K: String, CodingKey { case progress, feasibility, finalCount = "final" }
}
