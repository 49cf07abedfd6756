import Foundation
import LoaDaemon
import LoaSim
import LoaCarriers
import LoaCore
import LoaStore
import Synchronization

// `loa campaign …`: submit, list, show (and --watch), discard, pause, resume, cancel, rejects.
extension LoaCLI {
    static func campaign(_ sub: String, _ opts: Options) async -> Int32 {
        await withClient(opts) { client in
            switch sub {
            case "submit":
                guard let file = opts.positional.first else { printError(help["campaign"]!); return 2 }
                return try await submit(file, client: client, replace: opts.replace)
            case "list":
                let r = try await client.request("GET", "/api/v1/campaigns")
                guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
                if opts.json { print(terminalJSON(r.bodyText)); return 0 }
                let list = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]]) ?? []
                print(pad("ID", 28) + pad("STATE", 11) + pad("ACCEPTED", 10) + pad("DELIVERED", 10) + pad("FAILED", 8) + "DEADLINE")
                for c in list {
                    let states = c["states"] as? [String: Int] ?? [:]
                    printLine(pad("\(c["id"] ?? "")", 28) + pad("\(c["state"] ?? "")", 11) + pad("\(c["accepted"] ?? 0)", 10)
                          + pad("\(states["delivered"] ?? 0)", 10) + pad("\(states["failed"] ?? 0)", 8)
                          + ISOTime.format(Int64("\(c["deadline_at"] ?? 0)") ?? 0))
                }
                return 0
            case "show":
                guard let id = opts.positional.first else { printError(help["campaign"]!); return 2 }
                return try await show(id, opts: opts, client: client)
            case "discard":
                guard let id = opts.positional.first else { printError(help["campaign"]!); return 2 }
                let r = try await client.request("DELETE", "/api/v1/campaigns/\(URLQuery.escape(id))")
                guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
                print("campaign \(id): discarded")
                return 0
            case "pause", "resume", "cancel":
                guard let id = opts.positional.first else { printError(help["campaign"]!); return 2 }
                let r = try await client.request("POST", "/api/v1/campaigns/\(URLQuery.escape(id))/\(sub)")
                guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
                let state = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["state"] ?? "?"
                print("campaign \(id): \(state)")
                return 0
            case "approve", "reject", "test-send":
                return try await decide(sub, opts, client: client)
            case "preview":
                guard let id = opts.positional.first else { printError(help["campaign"]!); return 2 }
                return try await remotePreview(id, json: opts.json, client: client)
            case "rejects":
                guard let id = opts.positional.first else { printError(help["campaign"]!); return 2 }
                return try await rejects(id, csv: opts.csv, client: client)
            default:
                printError(help["campaign"]!)
                return 2
            }
        }
    }

    /// `campaign show ID [--watch]`. With --watch it redraws every second until the campaign is done (Ctrl-C
    /// leaves earlier). A daemon that stops answering (a restart) does not end the watch: a notice goes to
    /// stderr once, and polling goes on until it answers again, or `--timeout SECONDS` passes without an answer
    /// (then exit 1).
    static func show(_ id: String, opts: Options, client: APIClient) async throws -> Int32 {
        let redraw = opts.watch && Display.colorAllowed(noColorFlag: opts.noColor)
        let color = Display.colorAllowed(noColorFlag: opts.noColor)
        var silentSince: Date?
        while true {
            let answer: (campaign: HTTPResponse, carriers: HTTPResponse)
            do {
                let r = try await client.request("GET", "/api/v1/campaigns/\(URLQuery.escape(id))", timeout: opts.watch ? 10 : 300)
                guard r.status != 503 || !opts.watch else { throw APIClient.Failure(description: APIClient.errorText(r)) }
                let carriers = r.status == 200 && !opts.json ? try await client.request("GET", "/api/v1/carriers", timeout: opts.watch ? 10 : 300) : r
                answer = (r, carriers)
            } catch let e as APIClient.Failure where opts.watch {
                let now = Date()
                if silentSince == nil {
                    silentSince = now
                    printError("loa: warning: the daemon is not answering (\(e.description)); still watching campaign \(id)"
                               + (opts.timeout.map { ", for up to \(Int($0)) s" } ?? "") + "; Ctrl-C to stop")
                }
                if let limit = opts.timeout, now.timeIntervalSince(silentSince!) >= limit {
                    printError("loa: error: the daemon did not answer for \(Int(limit)) s (--timeout); stopped watching")
                    return 1
                }
                try await Task.sleep(for: .seconds(1))
                continue
            }
            if let since = silentSince {
                printError("loa: the daemon answers again after \(Display.duration(Int64(Date().timeIntervalSince(since) * 1000))); watching")
                silentSince = nil
            }
            let r = answer.campaign
            guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
            if opts.json { print(terminalJSON(r.bodyText)); return 0 }
            let text = renderShow(r.body, carriers: answer.carriers.status == 200 ? answer.carriers.body : [], color: color)
            if redraw { FileHandle.standardOutput.write(Data("\u{1B}[H\u{1B}[2J".utf8)) }
            print(text)
            fflushOut()
            let state = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["state"] as? String ?? ""
            guard opts.watch, !["completed", "cancelled", "expired", "failed"].contains(state) else { return 0 }
            if !redraw { print("") }
            try await Task.sleep(for: .seconds(1))
        }
    }

    /// Submits a campaign file. SIGTERM or SIGINT before the commit stops the upload and discards the
    /// half-loaded campaign (it once stayed `loading` and the CLI exited without a word), says so on stderr and
    /// exits 128 + the signal (143, 130).
    static func submit(_ file: String, client: APIClient, replace: Bool = false) async throws -> Int32 {
        let loaded: LoadedCampaign
        switch CampaignLoader.load(path: file) {
        case .failure(let p): printError(p.description); return 1
        case .success(let l): loaded = l
        }
        let id = loaded.submission.id
        let interrupt = SignalInterrupt(signals: [SIGTERM, SIGINT])
        defer { interrupt.uninstall() }
        let bound = BoundGeneration()
        let load = Task { try await submitLoaded(loaded, file: file, client: client, bound: bound, replace: replace) }
        interrupt.onSignal { load.cancel() }
        let result = await load.result
        // A signal after the load ended changed nothing: its result stands.
        guard let sig = interrupt.received, case .failure = result else { return try result.get() }
        let name = sig == SIGINT ? "SIGINT" : "SIGTERM"
        // With the generation when the create was answered: a campaign created again under this id is not ours.
        let path = "/api/v1/campaigns/\(URLQuery.escape(id))" + bound.query.withLock { $0 }
        switch try? await client.request("DELETE", path) {
        case let r? where r.status == 200:
            printError("loa: error: \(name) while submitting: upload stopped, campaign \(id) discarded; nothing will be sent")
        case let r? where r.status == 404:
            printError("loa: error: \(name) while submitting: campaign \(id) was not created; nothing will be sent")
        case let r?:
            printError("loa: error: \(name) while submitting: campaign \(id) could not be discarded (\(APIClient.errorText(r))); "
                       + "see loa campaign show \(id)")
        case nil:
            printError("loa: error: \(name) while submitting: the daemon could not be reached to discard campaign \(id); "
                       + "run loa campaign discard \(id)")
        }
        return 128 + sig
    }

    /// `?generation=N` of the campaign this submit created, once the create is answered.
    final class BoundGeneration: Sendable {
        let query = Mutex("")
    }

    /// Creates, loads and commits the campaign: what ``submit(_:client:)`` runs in a task a signal can cancel.
    /// `replace`: drop an unsent campaign of the same id first (a changed slogan or segments; approval starts over).
    private static func submitLoaded(_ loaded: LoadedCampaign, file: String, client: APIClient, bound boundOut: BoundGeneration,
                                     replace: Bool) async throws -> Int32 {
        let sub = loaded.submission
        let created = try await client.request("POST", "/api/v1/campaigns" + (replace ? "?replace=true" : ""), body: Array(try JSONEncoder().encode(sub)))
        guard created.status == 201 else { printError("\(file): \(APIClient.errorText(created))"); return 1 }
        // Every later request names the campaign's generation: if it is discarded meanwhile (and created again by
        // someone else), they are refused instead of loading or committing the other one.
        let generation = (try? JSONDecoder().decode([String: JSONScalar].self, from: Data(created.body)))?["generation"]?.text ?? ""
        let bound = generation.isEmpty ? "" : "?generation=\(generation)"
        boundOut.query.withLock { $0 = bound }
        for ex in loaded.exclusions {
            let r = try await client.upload("/api/v1/campaigns/\(URLQuery.escape(sub.id))/exclusions/\(URLQuery.escape(ex.name))" + bound, file: ex.path)
            guard r.status == 200 else {
                printError("\(ex.path): \(APIClient.errorText(r))")
                _ = try? await client.request("DELETE", "/api/v1/campaigns/\(URLQuery.escape(sub.id))" + bound)
                printError("campaign \(sub.id) discarded; nothing will be sent")
                return 1
            }
            let e = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Int]) ?? [:]
            printLine("\(ex.path): \(e["read"] ?? 0) numbers read, \(e["added"] ?? 0) added to the campaign's exclusion list, \(e["invalid"] ?? 0) not valid numbers")
        }
        var total = IngestCounts()
        for seg in loaded.segments {
            let path = "/api/v1/campaigns/\(URLQuery.escape(sub.id))/segments/\(URLQuery.escape(seg.name))"
            let r = seg.fromCampaign == nil ? try await client.upload(path + bound, file: seg.path)
                                            : try await client.request("POST", path + "/from-campaign" + bound)
            guard r.status == 200, let c = try? JSONDecoder.api.decode(IngestCounts.self, from: Data(r.body)) else {
                printError("\(seg.path): \(APIClient.errorText(r))")
                _ = try? await client.request("DELETE", "/api/v1/campaigns/\(URLQuery.escape(sub.id))" + bound)
                printError("campaign \(sub.id) discarded; nothing will be sent")
                return 1
            }
            print("\(seg.fromCampaign.map { "recipients of \($0) (\((seg.states ?? []).joined(separator: ", ")))" } ?? seg.path): \(c.rows) rows, \(c.accepted) accepted, \(c.rejected) rejected, \(c.duplicates) duplicates, \(c.suppressed) suppressed (opted out or excluded), \(c.segments) SMS parts")
            total.add(c)
        }
        let commit = try await client.request("POST", "/api/v1/campaigns/\(URLQuery.escape(sub.id))/commit" + bound)
        guard commit.status == 200 else {
            printError("\(file): \(APIClient.errorText(commit))")
            return 1
        }
        // Suppressed, split into its two causes as the campaign counts them (the README's "Words").
        let view = try? await client.request("GET", "/api/v1/campaigns/\(URLQuery.escape(sub.id))")
        let reasons = view.flatMap { try? JSONSerialization.jsonObject(with: Data($0.body)) as? [String: Any] }?["reasons"] as? [String: Int]
        let suppressed = reasons.map(Words.suppressed) ?? "\(total.suppressed) suppressed"
        let answer = (try? JSONSerialization.jsonObject(with: Data(commit.body)) as? [String: String]) ?? [:]
        if let w = answer["warning"] { printLine("WARNING: the deadline will not be met: \(w)") }
        else if let eta = answer["eta"] { print("estimated end of sending: \(eta) (\(answer["needed_hours"] ?? "?") h of sending; \(answer["window_hours"] ?? "?") h of window before the deadline)") }
        let state = answer["state"] ?? "scheduled"
        if state == "pending-approval" { print("campaign \(sub.id) waits for approval by another user: loa campaign approve \(sub.id)") }
        print("campaign \(sub.id) \(state): \(total.accepted) recipients, \(total.rejected) rejected, \(total.duplicates) duplicates, \(suppressed), \(total.segments) SMS parts; start \(sub.start), deadline \(sub.deadline)")
        if total.rejected + total.duplicates + total.suppressed > 0 {
            print("rows not sent, with file, line and reason: loa campaign rejects \(sub.id) --csv FILE")
        }
        return 0
    }

    /// A JSON string or number, as text (the create answer's `id`, `state` and `generation`).
    struct JSONScalar: Decodable {
        var text: String
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let n = try? c.decode(Int64.self) { text = String(n) } else { text = (try? c.decode(String.self)) ?? "" }
        }
    }

    static func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count)
    }

    /// `campaign show` in words: times in the campaign's zone to the second, progress rounded down, the end
    /// estimated from what is actually leaving (the daemon's `measured`), and why nothing is leaving (`stalled`).
    static func renderShow(_ body: [UInt8], carriers: [UInt8], color: Bool = false) -> String {
        guard let c = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            return TerminalText.sanitizeLines(String(decoding: body, as: UTF8.self))
        }
        var out: [String] = []
        // Each line is made safe on its own when joined (names, senders, reasons and carrier names come from
        // outside): no value can add a line, move the cursor or retitle the window.
        let states = c["states"] as? [String: Int] ?? [:]
        let zone = (c["spec"] as? [String: Any])?["time_zone"] as? String
        func time(_ v: Any?) -> String { Display.time(Display.int64(v) ?? 0, zone: zone) }
        out.append("campaign  \(c["id"] ?? "")  (\(c["state"] ?? ""))")
        if let n = c["name"] as? String { out.append("name      \(n)") }
        if let why = c["failure"] as? String { out.append("FAILED    \(why)") }
        out.append("sender    \(c["sender"] ?? "")")
        out.append("window    \(time(c["start_at"])) → \(time(c["deadline_at"]))  (time zone \(zone ?? "UTC"))")
        out.append("rows      \(c["rows"] ?? 0) read, \(c["accepted"] ?? 0) accepted, \(c["rejected"] ?? 0) rejected, \(c["duplicates"] ?? 0) duplicates, \(c["segments_total"] ?? 0) SMS parts")
        let progress = (c["progress"] as? Double) ?? 0
        let width = 30
        let filled = min(width, Int((progress * Double(width)).rounded(.down)))
        let recipients = states.filter { $0.key != "rejected" }.values.reduce(0, +)
        out.append("progress  [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
                   + Display.percent(progress) + "  (\(c["final"] ?? 0) of \(recipients) recipients in a final state)")
        let now = SystemTimeSource().now()
        if let st = c["stalled"] as? [String: Any] {
            let since = Display.int64(st["since"]) ?? now
            let carrier = (st["carrier"] as? String).map { " on carrier \($0)" } ?? ""
            let line = "STALLED   \(st["reason"] ?? "?")\(carrier) since \(time(since)) (\(Display.duration(now - since))): \(st["detail"] ?? "")"
            out.append(line)
        }
        let planned = c["feasibility"] as? [String: Any]
        let plannedText = (planned?["eta"]).map { "planned at the configured rates: end by \(time($0))" }
            ?? (planned?["warning"] as? String).map { "planned at the configured rates: \($0)" } ?? ""
        if let m = c["measured"] as? [String: Any] {
            let rate = m["messages_per_second"] as? Double
            if let eta = m["eta"], (m["on_time"] as? Bool) == true, (Display.int64(m["remaining"]) ?? 0) == 0 || rate != nil {
                out.append("deadline  on time: at the measured \(String(format: "%.1f", rate ?? 0)) messages/s (last minute) sending should end by \(time(eta))")
            } else if let w = m["warning"] as? String {
                out.append("deadline  NOT ON TIME: \(w)" + (plannedText.isEmpty ? "" : " (\(plannedText))"))
            } else {
                out.append("deadline  measuring the rate (under 10 s of samples)" + (plannedText.isEmpty ? "" : "; \(plannedText)"))
            }
        } else if !plannedText.isEmpty, ["scheduled", "loading"].contains("\(c["state"] ?? "")") {
            out.append("deadline  not started; \(plannedText)")
        } else if c["state"] as? String == "completed" {
            out.append("deadline  on time: sending ended, nothing left to send")
        }
        let order = MessageState.allCases.map(\.name)
        out.append("states    " + order.compactMap { s in states[s].map { "\(s) \($0)" } }.joined(separator: ", "))
        if let n = c["recovered_unknown"] as? Int, n > 0 {
            out.append("recovery  \(n) in flight at an unclean stop: unknown, never resent (the gateway may have them)")
        }
        if let reasons = c["reasons"] as? [String: Int], !reasons.isEmpty {
            out.append("not sent  " + reasons.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
                .map { "\(Words.reason($0.key)) \($0.value)" }.joined(separator: ", "))
        }
        if let per = c["carriers"] as? [String: [String: Int]] {
            for name in per.keys.sorted() {
                out.append("carrier   \(name): " + order.compactMap { s in per[name]?[s].map { "\(s) \($0)" } }.joined(separator: ", "))
            }
        }
        let carrierList = (try? JSONSerialization.jsonObject(with: Data(carriers)) as? [[String: Any]]) ?? []
        let used = Set((c["carriers"] as? [String: Any] ?? [:]).keys)
        for cs in carrierList where used.isEmpty || used.contains("\(cs["name"] ?? "")") {
            let unit = (cs["rate_unit"] as? String) ?? "messages"
            out.append("rate      \(cs["name"] ?? ""): \(String(format: "%.1f", (cs["current_rate"] as? Double) ?? 0)) requests/s started (last 10 s); "
                       + "limit \(cs["configured_rate"] ?? 0) \(unit)/s; \(cs["in_flight"] ?? 0) in flight; \(carrierState(cs))")
        }
        // Colour goes on after the escaping, which would show its escape codes as text.
        return out.map(TerminalText.sanitize).map { color && $0.hasPrefix("STALLED") ? "\u{1B}[31m" + $0 + "\u{1B}[0m" : $0 }
            .joined(separator: "\n")
    }

    static func rejects(_ id: String, csv: String?, client: APIClient) async throws -> Int32 {
        // Into a file: written whole or not at all, 0600 (``OutputFile``); else stdout.
        let file = try csv.map { try OutputFile($0, replace: false) }
        func write(_ text: String) { if let file { file.write(text) } else { FileHandle.standardOutput.write(Data(text.utf8)) } }
        write("file,line,value,reason,detail\n")
        var after: Int64 = 0
        var n = 0
        while true {
            let r = try await client.request("GET", "/api/v1/campaigns/\(URLQuery.escape(id))/rejects?after=\(after)&limit=10000")
            guard r.status == 200, let page = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
                  let rows = page["rows"] as? [[String: Any]] else { printError(APIClient.errorText(r)); return 1 }
            var text = ""
            for row in rows {
                let fields = ["\(row["source"] ?? "")", "\(row["line"] ?? "")", "\(row["raw"] ?? "")", "\(row["reason"] ?? "")", "\(row["detail"] ?? "")"]
                // On stdout (a terminal, a pager) control characters are shown escaped; the file keeps raw values.
                text += CSVWriter.record(csv == nil ? fields.map(TerminalText.sanitize) : fields)
            }
            write(text)
            n += rows.count
            guard let next = page["next"] as? Int else { break }
            after = Int64(next)
        }
        if let file {
            try file.commit()
            print("\(file.path): \(n) rows")
        }
        return 0
    }

    /// `campaign preview ID [--json]`: what the daemon counted of the uploaded campaign, as `loa preview` prints it
    /// for the files (`GET /api/v1/campaigns/{id}/preview`).
    static func remotePreview(_ id: String, json: Bool, client: APIClient) async throws -> Int32 {
        let r = try await client.request("GET", "/api/v1/campaigns/\(URLQuery.escape(id))/preview")
        guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
        if json { print(terminalJSON(r.bodyText)); return 0 }
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        let totals = try d.decode(PreviewTotals.self, from: Data(r.body))
        let o = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]) ?? [:]
        var out = ["campaign \(id) (\(o["state"] ?? "?")), as the daemon counted its uploaded segments:"]
        let samples = o["samples"] as? [[String: Any]] ?? []
        if !samples.isEmpty {
            out += ["", "sample messages:"]
            for (i, m) in samples.enumerated() {
                out.append("  \(i + 1). \(m["source"] ?? ""):\(m["line"] ?? 0)  \(m["phone"] ?? "")  → \(m["carrier"] ?? "")  \(m["encoding"] ?? ""), \(m["parts"] ?? 0) part(s)")
                out.append("     \(TerminalText.sanitize("\(m["text"] ?? "")"))")
            }
        }
        out.append("")
        out += PreviewReport.totalsLines(totals, optOutNote: "\(totals.optedOut)  (the daemon's global list when the segments were uploaded)")
        print(TerminalText.sanitizeLines(out.joined(separator: "\n")))
        return 0
    }
}
