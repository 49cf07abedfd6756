import Foundation
import LoaDaemon
import LoaSim
import LoaCarriers
import LoaCore
import LoaStore
import Synchronization

// `loa check`, `report`, `carriers`, `optout`, `preview` and `tail`.
extension LoaCLI {
    // MARK: check

    static func check(_ opts: Options) -> Int32 {
        var problems: [Problem] = []
        var config: LoaConfig?
        if let path = opts.config {
            switch ConfigLoader.load(path: path) {
            case .failure(let p): problems += p.problems
            case .success(let c): config = c
            }
        }
        var summary: [String] = []
        if let config {
            // Relative paths resolve against the config file's directory: show where the store will be.
            summary.append("\(config.path): data_dir \(config.dataDir)")
            for e in DataDirAccess.exposed(dataDir: config.dataDir) {
                let reason = "\(e); \(DataDirAccess.fix(e, dataDir: config.dataDir))"
                if opts.allowSharedDataDir {
                    summary.append("warning: \(reason) (allowed by --allow-shared-data-dir)")
                } else {
                    problems.append(Problem(file: config.path, line: 0, field: "data_dir",
                                            reason: reason + ", or start the daemon with --allow-shared-data-dir: it refuses this"))
                }
            }
        }
        let router = config?.router ?? Router(defaultCarrier: "default")
        for file in opts.positional {
            switch CampaignLoader.load(path: file, knownCarriers: config?.carriers.map(\.name)) {
            case .failure(let p): problems += p.problems
            case .success(let c):
                let scan = CampaignScan(campaign: c, router: router)
                scan.partLimits = config.map(CampaignScan.partLimits) ?? [:]
                scan.run()
                problems += scan.problems
                if scan.rejectedRows > scan.listLimit {
                    problems.append(Problem(file: file, line: 0, field: "segments", reason: "\(scan.rejectedRows - scan.listLimit) more rejected rows not listed"))
                }
                summary.append("\(file): \(scan.accepted) recipients, \(scan.rejected) rejected, \(scan.duplicates) duplicates, \(scan.excluded) excluded (opt-outs are applied by the daemon at submit), \(scan.parts) SMS parts")
                summary += scan.partLimitWarnings
            }
        }
        // Problems on stderr (rows --allow-rejects lets through as warnings), results on stdout.
        let allowed = { (p: Problem) in opts.allowRejects && (p.field == "row" || p.field == "segments") }
        for p in problems { allowed(p) ? printWarning(p.description) : printError(p.description) }
        for s in summary { printLine(s) }
        let blocking = problems.filter { !allowed($0) }
        if blocking.isEmpty { print(problems.isEmpty ? "ok" : "ok (rows listed above will be rejected)") }
        return blocking.isEmpty ? 0 : 1
    }

    /// Reads a file in 256 KiB chunks.

    static func report(_ opts: Options) async -> Int32 {
        guard let id = opts.positional.first, opts.csv != nil || opts.html != nil else { printError(help["report"]!); return 2 }
        return await withClient(opts) { client in
            if let csv = opts.csv {
                let n = try await CampaignReport.writeCSV(id, to: csv, client: client)
                print("\(csv): \(n) recipients")
            }
            if let html = opts.html {
                let c = try await client.request("GET", "/api/v1/campaigns/\(URLQuery.escape(id))")
                guard c.status == 200 else { printError(APIClient.errorText(c)); return 1 }
                let d = try await client.request("GET", "/api/v1/campaigns/\(URLQuery.escape(id))/report")
                guard d.status == 200 else { printError(APIClient.errorText(d)); return 1 }
                let page = CampaignReport.html(campaign: (try JSONSerialization.jsonObject(with: Data(c.body)) as? [String: Any]) ?? [:],
                                               data: (try JSONSerialization.jsonObject(with: Data(d.body)) as? [String: Any]) ?? [:])
                let out = try OutputFile(html, replace: true)
                out.write(page)
                try out.commit()
                print("\(html): report written")
            }
            return 0
        }
    }

    static func carriers(_ opts: Options) async -> Int32 {
        if opts.positional.first == "resume" {
            guard opts.positional.count == 2 else { printError(help["carriers"]!); return 2 }
            let name = opts.positional[1]
            return await withClient(opts) { client in
                let r = try await client.request("POST", "/api/v1/carriers/\(URLQuery.escape(name))/resume")
                guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
                printLine("carrier \(name) resumed")
                return 0
            }
        }
        guard opts.positional.isEmpty else { printError(help["carriers"]!); return 2 }
        return await withClient(opts) { client in
            let r = try await client.request("GET", "/api/v1/carriers")
            guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
            if opts.json { print(terminalJSON(r.bodyText)); return 0 }
            let list = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]]) ?? []
            let header: [String] = [pad("CARRIER", 20), pad("RATE LIMIT", 12), pad("ALLOWED", 10), pad("RATE NOW", 10), pad("REQ LIMIT", 11),
                                    pad("IN FLIGHT", 11), pad("BATCH", 9), pad("TOKENS", 8), pad("PARTS SENT", 12), pad("AT GATEWAY", 16), "STATE"]
            print(header.joined())
            for c in list {
                let batch = ((c["max_batch"] as? Int) ?? 1) > 1 ? "\(c["batch_target"] ?? 1)/\(c["max_batch"] ?? 1)" : "1"
                let requests = (c["allowed_request_rate"] as? Double).map { String(format: "%.1f/s", $0) } ?? "-"
                // Handed over, not yet passed on, and the pace the gateway passes on at (pace_from_receipts).
                let held = (c["handoff_limiting"] as? Bool) == true
                    ? "\(c["handoff_outstanding"] ?? 0) @" + ((c["pass_on_rate"] as? Double).map { String(format: "%.1f/s", $0) } ?? "?")
                    : "-"
                let columns: [String] = [pad("\(c["name"] ?? "")", 20), pad("\(c["configured_rate"] ?? 0)/s", 12),
                                         pad(String(format: "%.1f/s", (c["allowed_rate"] as? Double) ?? 0), 10),
                                         pad(String(format: "%.1f/s", (c["current_rate"] as? Double) ?? 0), 10), pad(requests, 11),
                                         pad("\(c["in_flight"] ?? 0)/\(c["max_in_flight"] ?? 0)", 11), pad(batch, 9), pad("\(c["tokens"] ?? 0)", 8),
                                         pad("\(c["segments_sent"] ?? 0)", 12), pad(held, 16), carrierState(c)]
                printLine(columns.joined())
            }
            for c in list { if let nodes = c["nodes"] as? [[String: Any]] { printCluster(c, nodes) } }
            return 0
        }
    }

    /// A carrier's figures per node of a cluster and their total (issue 21): each live node's share of the limits,
    /// what it sends now, its requests in flight, and what the gateway accepted from it since the node started.
    static func printCluster(_ c: [String: Any], _ nodes: [[String: Any]]) {
        let total = c["cluster"] as? [String: Any] ?? [:]
        print("")
        printLine("carrier \(c["name"] ?? ""): \(total["nodes_alive"] ?? nodes.count) nodes alive, one limit of \(c["configured_rate"] ?? 0)/s shared")
        print([pad("  NODE", 22), pad("SHARE", 8), pad("RATE NOW", 10), pad("IN FLIGHT", 11), "SENT"].joined())
        func row(_ name: String, _ n: [String: Any]) -> String {
            let share = String(format: "%.1f%%", ((n["share"] as? Double) ?? 0) * 100)
            return [pad("  " + name, 22), pad(share, 8), pad(String(format: "%.1f/s", (n["current_rate"] as? Double) ?? 0), 10),
                    pad("\(n["in_flight"] ?? 0)", 11), "\(n["sent"] ?? 0)"].joined()
        }
        for n in nodes { printLine(row("\(n["node"] ?? "")", n)) }
        printLine(row("total", total))
    }

    /// `loa status`: this node and its lease, and the cluster's nodes (``GET /api/v1/status``).
    static func status(_ opts: Options) async -> Int32 {
        guard opts.positional.isEmpty else { printError(help["status"]!); return 2 }
        return await withClient(opts) { client in
            let r = try await client.request("GET", "/api/v1/status")
            guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
            if opts.json { print(terminalJSON(r.bodyText)); return 0 }
            let s = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]) ?? [:]
            guard let node = s["node"] as? String else {
                printLine("store \(s["store"] ?? "sqlite"): one daemon, no cluster lease")
                return 0
            }
            let holds = (s["holds_lease"] as? Bool) == true
            printLine("node \(node)  epoch \(s["epoch"] ?? 0)  lease \(holds ? "held" : "NOT HELD: sending nothing")  (\(s["lease_millis"] ?? 0) ms)")
            print([pad("NODE", 20), pad("EPOCH", 8), "LEASE"].joined())
            for m in s["members"] as? [[String: Any]] ?? [] {
                printLine([pad("\(m["node"] ?? "")", 20), pad("\(m["epoch"] ?? 0)", 8), (m["alive"] as? Bool) == true ? "alive" : "ended"].joined())
            }
            return 0
        }
    }

    /// A carrier's state in words: what holds its messages, and why.
    static func carrierState(_ c: [String: Any]) -> String {
        var out = "breaker \(c["breaker"] ?? "")"
        if let why = c["auth_refused"] as? String {
            out += ": REFUSES LOA'S CREDENTIALS (\(why)); its messages wait"
        } else if let cause = c["breaker_cause"] as? String {
            out += " (\(cause))"
        }
        if let why = c["paused_reason"] as? String {
            out += "; PAUSED after \(why); `loa carriers resume \(c["name"] ?? "")` ends it"
        }
        if ((c["paused_until"] as? NSNumber)?.int64Value ?? 0) > 0 { out += "; paused by the gateway's rate-limit wait" }
        return out
    }

    static func optout(_ opts: Options) async -> Int32 {
        guard let verb = opts.positional.first, verb == "add" || verb == "remove" else { printError(help["optout"]!); return 2 }
        var numbers = Array(opts.positional.dropFirst())
        if let file = opts.file {
            guard let d = FileManager.default.contents(atPath: file) else { printError("\(file): cannot read"); return 1 }
            numbers += String(decoding: d, as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init)
        }
        guard !numbers.isEmpty else { printError(help["optout"]!); return 2 }
        return await withClient(opts) { client in
            let r = try await client.request(verb == "add" ? "POST" : "DELETE", "/api/v1/optouts",
                                             body: Array(numbers.joined(separator: "\n").utf8), contentType: "text/plain")
            guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
            let o = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Int]) ?? [:]
            func count(_ n: Int) -> String { n == 1 ? "1 number" : "\(n) numbers" }
            print(verb == "add" ? "\(count(o["added"] ?? 0)) opted out (\(count(numbers.count - (o["added"] ?? 0))) already were); the opt-out list holds \(count(o["count"] ?? 0))"
                                : "\(count(o["removed"] ?? 0)) removed from the opt-out list; it holds \(count(o["count"] ?? 0))")
            return 0
        }
    }

    static func preview(_ opts: Options) -> Int32 {
        guard let file = opts.positional.first else { printError(help["preview"]!); return 2 }
        var router = Router(defaultCarrier: "default")
        var partLimits: [String: PartLimit] = [:]
        var optOuts: Set<String>?
        if let path = opts.config, FileManager.default.fileExists(atPath: path) {
            switch ConfigLoader.load(path: path, clientOnly: true) {
            case .failure(let p): printError(p.description); return 1
            case .success(let c):
                router = c.router
                partLimits = CampaignScan.partLimits(c)
                optOuts = blockingAwait { await fetchOptOuts(c) }
            }
        }
        let loaded: LoadedCampaign
        switch CampaignLoader.load(path: file) {
        case .failure(let p): printError(p.description); return 1
        case .success(let l): loaded = l
        }
        let scan = CampaignScan(campaign: loaded, router: router, sampleCount: opts.sample)
        scan.optOuts = optOuts
        scan.partLimits = partLimits
        let progress = ProgressReporter(label: "reading segments")
        scan.run { done, total in progress.update(done, total) }
        progress.finish()
        if opts.json {
            print(PreviewReport.json(scan))
            for p in scan.problems.prefix(20) { printError(p.description) }
            return scan.problems.contains { $0.field != "row" } ? 1 : 0
        }
        print(TerminalText.sanitizeLines(PreviewReport.render(scan)))
        for w in scan.partLimitWarnings { printLine(w) }
        for p in scan.problems.prefix(20) { printLine("  " + p.description) }
        if scan.problems.count > 20 { print("  … \(scan.problems.count - 20) more (loa check lists up to \(scan.listLimit))") }
        return scan.problems.contains { $0.field != "row" } ? 1 : 0
    }

    /// The daemon's opt-out list, or nil when it cannot be reached.
    static func fetchOptOuts(_ config: LoaConfig) async -> Set<String>? {
        guard let engine = try? CurlEngine(maxConnectionsPerHost: 1) else { return nil }
        defer { engine.shutdown() }
        let client = APIClient(base: config.apiBaseURL, token: userToken ?? config.apiToken, engine: engine)
        guard let r = try? await client.request("GET", "/api/v1/optouts?format=text"), r.status == 200 else { return nil }
        return Set(r.bodyText.split(separator: "\n").map(String.init))
    }

    // MARK: tail

    static func tail(_ opts: Options) -> Int32 {
        let config: LoaConfig
        switch clientConfig(opts) {
        case .failure(let p): printError(p.description); return 1
        case .success(let c): config = c
        }
        // A campaign that does not exist is an error, as everywhere (it printed nothing and exited 0); the log is
        // read even when the daemon cannot be asked.
        if let id = opts.campaign {
            let answer = blockingAwait { () -> Int? in
                guard let engine = try? CurlEngine(maxConnectionsPerHost: 1) else { return nil }
                defer { engine.shutdown() }
                let client = APIClient(base: config.apiBaseURL, token: config.apiToken, engine: engine)
                return (try? await client.request("GET", "/api/v1/campaigns/\(URLQuery.escape(id))", timeout: 10))?.status
            }
            if answer == 404 { printError("no campaign \(id)"); return 1 }
            if answer != 200 { printWarning("could not ask the daemon whether campaign \(id) exists; reading the log anyway") }
        }
        let filter = LogTailer.Filter(campaign: opts.campaign, carrier: opts.carrier, event: opts.event, status: opts.status, since: opts.since)
        if opts.cluster {
            let color = !opts.json && Display.colorAllowed(noColorFlag: opts.noColor)
            return blockingAwait { [opts] in
                guard let engine = try? CurlEngine(maxConnectionsPerHost: 1) else { printError("tail: cannot start the HTTP client"); return 1 }
                defer { engine.shutdown() }
                let client = APIClient(base: config.apiBaseURL, token: userToken ?? config.apiToken, engine: engine)
                return await ClusterTail(client: client, filter: filter, json: opts.json, follow: opts.follow, lines: opts.lines, color: color).run()
            }
        }
        let path = config.dataDir + "/delivery.log"
        let localFilter = LogTailer.Filter(campaign: opts.campaign, carrier: opts.carrier, event: opts.event, status: opts.status, since: opts.since)
        return LogTailer(path: path, filter: localFilter, json: opts.json, follow: opts.follow, last: opts.lines,
                         color: !opts.json && Display.colorAllowed(noColorFlag: opts.noColor)).run()
    }
}
