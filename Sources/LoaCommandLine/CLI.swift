import Foundation
import LoaDaemon
import LoaSim
import LoaCarriers
import LoaCore
import LoaStore
import Synchronization

/// The `loa` command line. `main.swift` only calls ``LoaCLI/main(_:)``.
public enum LoaCLI {
    static let usage = """
        loa: bulk SMS campaign dispatcher

        usage: loa <command> [options]

        commands:
          daemon --config FILE             run the daemon in the foreground until SIGTERM/SIGINT
          check --config FILE [CAMPAIGN…]  validate config, campaign files, templates and segments; send nothing
          campaign submit FILE             submit a campaign file to the running daemon
          campaign list                    list campaigns
          campaign show ID                 show a campaign's counts per state and carrier
          campaign rejects ID [--csv FILE] every row that will not be sent, with file, line, value and reason
          campaign pause|resume|cancel ID  hold, continue, or stop a campaign (cancel: queued → cancelled)
          preview CAMPAIGN [--sample N]    render samples and count recipients, rejects and SMS parts; sends nothing
          optout add|remove NUMBER…|--file FILE
                                           the global opt-out list: numbers on it are never sent to
          tail [-f] [--campaign ID] [--carrier C] [--event E] [--status S] [--since T] [--json] [-n N]
                                           print the delivery log, one readable line per event
          carriers                         each carrier's rate, current rate and requests in flight
          report ID [--csv FILE] [--html FILE]
                                           one row per recipient (CSV), or a one-page HTML report with charts
          gateway-sim [--port N] [--seed N] …
                                           a carrier gateway simulator (Kannel, Jasmin, generic JSON)
                                           with faults and receipts, for demos, benchmarks and tests
          version                          print the version

        Every command takes --help. Client commands find the daemon through --config FILE
        (default: $LOA_CONFIG, else /etc/loa/loa.json).
        """

    static let help: [String: String] = [
        "gateway-sim": GatewaySim.help,
        "daemon": """
            usage: loa daemon --config FILE [--allow-shared-data-dir]

            Runs Loa in the foreground (for systemd). Opens the store in the config's data_dir (a relative
            data_dir is relative to the config file's directory). Refuses to start when group or others have
            any permission on data_dir, delivery.log or loa.db (they hold phone numbers: chmod 700 / 600),
            unless --allow-shared-data-dir is given, which starts with a warning per path. Listens on
            listen.address:listen.port (default 127.0.0.1:8780) for receipts and the operator API, and sends
            running campaigns through the configured carriers. SIGTERM/SIGINT: drain in-flight sends up to
            drain_seconds and exit 0; a second signal exits at once. SIGHUP: reopen the delivery log.
            """,
        "check": """
            usage: loa check --config FILE [--allow-rejects] [--allow-shared-data-dir] [CAMPAIGN_FILE…]

            Validates the config and each campaign file with its templates and segments, without sending or
            touching the store. Exit 0 when all is well; else exit 1 and one line per problem:
              file:line: field: reason
            Prints the data directory the config resolves to. A data directory (or delivery.log, loa.db) that
            group or others may read is a problem, as the daemon refuses it; --allow-shared-data-dir makes
            it a warning, as for the daemon.
            Rows that would be rejected (bad numbers, ragged rows) are problems too; --allow-rejects still
            lists them but exits 0 when they are the only problems.
            """,
        "campaign": """
            usage: loa campaign submit FILE [--config FILE]
                   loa campaign list [--json] [--config FILE]
                   loa campaign show ID [--json] [--watch] [--config FILE]
                   loa campaign rejects ID [--csv FILE] [--config FILE]
                   loa campaign pause|resume|cancel ID [--config FILE]
                   loa campaign discard ID [--config FILE]

            submit: checks the campaign file, creates the campaign on the daemon, streams its exclusion files
            and then each segment to it (never held in memory), and commits it; the daemon starts sending at
            its start time. A failed upload discards the half-loaded campaign, and so does SIGTERM or SIGINT
            (Ctrl-C) before the commit: the upload stops, stderr says so, exit 143 or 130.
            discard: removes a campaign still `loading` (a submit that was cut off), with its rows.
            pause: nothing more is sent until resume (requests in flight finish); the deadline still applies.
            cancel: queued messages end `cancelled` (reported, never deleted); in-flight requests finish.
            rejects: every segment row that will not be sent (rejected, duplicate, opted out, excluded) as CSV
            (file,line,value,reason,detail) on stdout (control characters shown escaped) or into a new 0600 file
            (raw values). CSV cells beginning with = + - @ TAB CR or ' get a leading ' (drop one to recover them).
            """,
        "preview": """
            usage: loa preview CAMPAIGN_FILE [--sample N] [--config FILE]

            Reads the campaign's templates, exclusion files and segments exactly as a submit would, without
            sending or touching the store, and prints N rendered sample messages (default 5) with their
            encoding and SMS parts, then the totals: recipients accepted, rejected by reason, duplicates,
            excluded, per carrier and per network, total SMS parts (the cost), and what the `ascii` and
            `unicode` encodings would cost instead. With --config, routing follows the config's carriers.
            Shows a progress bar on a terminal, plain progress lines otherwise. With a config whose daemon is
            reachable, numbers on its global opt-out list are counted too.
            """,
        "optout": """
            usage: loa optout add NUMBER… [--file FILE] [--config FILE]
                   loa optout remove NUMBER… [--file FILE] [--config FILE]

            Adds numbers to (or removes them from) the daemon's global opt-out list. A number on the list is
            never sent to: campaigns submitted later mark it `suppressed`, and queued messages to it in running
            campaigns are suppressed just before they would be sent. --file reads one number per line.
            """,
        "report": """
            usage: loa report ID [--csv FILE] [--html FILE] [--config FILE]

            --csv: one row per recipient (message id, recipient, carrier, final state, reason, attempts, time of
            the last change, segment, line, breakdown group, gateway id), written to a new 0600 file. Cells
            beginning with = + - @ TAB CR or ' get a leading ' against spreadsheet formulas (drop one to recover).
            --html: one self-contained page (no external assets) with inline SVG charts: deliveries over time
            per carrier, final states, failure reasons, and a breakdown by the segments' breakdown column
            (`breakdown_column`, default `ward`).
            """,
        "carriers": """
            usage: loa carriers [--json] [--config FILE]
                   loa carriers resume NAME [--config FILE]

            Each carrier's configured rate, current rate (requests started per second over the last 10 s),
            request limit, requests in flight, batch fill, SMS parts the gateway accepted, and its state: the
            breaker with its cause, a refusal of Loa's credentials, a pause after identical permanent answers.
            `resume NAME` ends such a pause (the messages that waited are sent again).
            """,
        "tail": """
            usage: loa tail [-f] [--campaign ID] [--carrier C] [--event E] [--status S] [--since TIME]
                            [--json] [-n N] [--config FILE]

            Prints the delivery log (data_dir/delivery.log). -f keeps following it (across logrotate).
            --campaign, --carrier, --event (sending, accepted, retry, receipt, …), --status (delivered, failed,
            …) and --since (ISO 8601 with offset) keep matching events only. --json prints the raw JSON lines.
            -n N starts with the last N matching lines (default: all). On a terminal lines are aligned and
            colored by status.
            """,
    ]

    public static func main(_ argv: [String]) -> Int32 {
        var args = Array(argv.dropFirst())
        guard let command = args.first else {
            print(usage)
            return 2
        }
        args.removeFirst()
        if command == "--help" || command == "-h" || command == "help" {
            if let topic = args.first, let h = help[topic] { print(h) } else { print(usage) }
            return 0
        }
        if args.contains("--help") || args.contains("-h") {
            print(help[command] ?? usage)
            return help[command] == nil ? 2 : 0
        }
        if command == "gateway-sim" { return GatewaySim.main(args) }  // its own flags, see Sim/SimConfig.swift
        var opts: Options
        do { opts = try Options(args) } catch {
            printError("\(error)\n\n\(help[command] ?? usage)")
            return 2
        }
        switch command {
        case "version", "--version":
            print("loa 0.1.0")
            return 0
        case "daemon":
            guard let path = opts.config else { printError("loa daemon: --config FILE is required"); return 2 }
            switch ConfigLoader.load(path: path) {
            case .failure(let p): printError(p.description); return 1
            case .success(let config): return Daemon.run(config: config, allowSharedDataDir: opts.allowSharedDataDir)
            }
        case "check":
            return check(opts)
        case "campaign":
            guard let sub = opts.positional.first else { printError(help["campaign"]!); return 2 }
            opts.positional.removeFirst()
            return blockingAwait { [opts] in await campaign(sub, opts) }
        case "tail":
            return tail(opts)
        case "preview":
            return preview(opts)
        case "carriers":
            return blockingAwait { [opts] in await carriers(opts) }
        case "report":
            return blockingAwait { [opts] in await report(opts) }
        case "optout":
            return blockingAwait { [opts] in await optout(opts) }
        default:
            printError("loa: unknown command '\(command)'\n\n\(usage)")
            return 2
        }
    }

    struct Options: Sendable {
        var config: String?
        var positional: [String] = []
        var follow = false
        var allowRejects = false
        var allowSharedDataDir = false
        var json = false
        var campaign: String?
        var lines: Int?
        var sample = 5
        var watch = false
        var carrier: String?
        var event: String?
        var status: String?
        var since: UnixMillis?
        var csv: String?
        var file: String?
        var html: String?

        struct Bad: Error, CustomStringConvertible { var description: String }

        init(_ args: [String]) throws {
            var i = 0
            func value(_ name: String) throws -> String {
                i += 1
                guard i < args.count else { throw Bad(description: "\(name) needs a value") }
                return args[i]
            }
            while i < args.count {
                let a = args[i]
                switch a {
                case "--config", "-c": config = try value(a)
                case "-f", "--follow": follow = true
                case "--allow-rejects": allowRejects = true
                case "--allow-shared-data-dir": allowSharedDataDir = true
                case "--json": json = true
                case "--campaign": campaign = try value(a)
                case "--sample":
                    guard let n = Int(try value(a)), (0...1000).contains(n) else { throw Bad(description: "--sample needs a number 0-1000") }
                    sample = n
                case "--csv": csv = try value(a)
                case "--watch", "-w": watch = true
                case "--carrier": carrier = try value(a)
                case "--event": event = try value(a)
                case "--status": status = try value(a)
                case "--since":
                    let v = try value(a)
                    guard let t = ISOTime.parse(v) else { throw Bad(description: "--since needs an ISO 8601 time with an offset, e.g. 2026-11-24T08:00:00+07:00") }
                    since = t
                case "--file": file = try value(a)
                case "--html": html = try value(a)
                case "-n":
                    guard let n = Int(try value(a)), n >= 0 else { throw Bad(description: "-n needs a number") }
                    lines = n
                default:
                    if a.hasPrefix("-") && a.count > 1 { throw Bad(description: "unknown option \(a)") }
                    positional.append(a)
                }
                i += 1
            }
            if config == nil, let env = ProcessInfo.processInfo.environment["LOA_CONFIG"], !env.isEmpty { config = env }
        }
    }

    /// Writes `s` to stderr with a final newline. Control characters other than line breaks are shown escaped
    /// (``TerminalText``): error texts carry what the daemon was sent (ids, field values) and reach a terminal.
    static func printError(_ s: String) {
        let s = TerminalText.sanitizeLines(s)
        FileHandle.standardError.write(Data((s.hasSuffix("\n") ? s : s + "\n").utf8))
    }

    /// Prints one line made of text from outside (file contents, the daemon's answers): every control character,
    /// line breaks included, is shown escaped, so the text can neither move the cursor nor pass for a line of its own.
    static func printLine(_ s: String) {
        print(TerminalText.sanitize(s))
    }

    /// JSON text from the daemon made safe for a terminal without changing its value: DEL, the C1 controls and
    /// the Unicode separators and bidirectional controls, which JSON encoders leave as they are, become `\uXXXX`
    /// escapes (valid only inside strings, which is the only place valid JSON can hold them). C0 controls are
    /// already escaped by every JSON encoder Loa uses.
    static func terminalJSON(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: TerminalText.isControl) else { return s }
        var out = ""
        for u in s.unicodeScalars {
            if TerminalText.isControl(u) && u.value >= 0x20 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else if TerminalText.isControl(u) && u != "\n" && u != "\r" && u != "\t" {
                out += TerminalText.escape(u)
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

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
                summary.append("\(file): \(scan.accepted) recipients, \(scan.rejected) rejected, \(scan.duplicates) duplicates, \(scan.excluded) excluded, \(scan.parts) SMS parts")
                summary += scan.partLimitWarnings
            }
        }
        for p in problems { printLine(p.description) }
        for s in summary { printLine(s) }
        let blocking = problems.filter { !(opts.allowRejects && ($0.field == "row" || $0.field == "segments")) }
        if blocking.isEmpty { print(problems.isEmpty ? "ok" : "ok (rows listed above will be rejected)") }
        return blocking.isEmpty ? 0 : 1
    }

    /// Reads a file in 256 KiB chunks.
    static func streamFile(_ path: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let fh = FileHandle(forReadingAtPath: path) else { throw APIClient.Failure(description: "\(path): cannot open") }
        defer { try? fh.close() }
        while let chunk = try fh.read(upToCount: 256 * 1024), !chunk.isEmpty {
            try chunk.withUnsafeBytes { try body($0) }
        }
    }

    // MARK: campaign

    static func clientConfig(_ opts: Options) -> Result<LoaConfig, ProblemList> {
        ConfigLoader.load(path: opts.config ?? "/etc/loa/loa.json", clientOnly: true)
    }

    /// Runs `body` with an API client for the daemon the config names; config and transport errors exit 1.
    static func withClient(_ opts: Options, _ body: (APIClient) async throws -> Int32) async -> Int32 {
        let config: LoaConfig
        switch clientConfig(opts) {
        case .failure(let p): printError(p.description); return 1
        case .success(let c): config = c
        }
        let engine: CurlEngine
        do { engine = try CurlEngine(maxConnectionsPerHost: 4) } catch { printError("loa: \(error)"); return 1 }
        defer { engine.shutdown() }
        do {
            return try await body(APIClient(base: config.apiBaseURL, token: config.apiToken, engine: engine))
        } catch {
            printError("loa: \(error)")
            return 1
        }
    }

    static func campaign(_ sub: String, _ opts: Options) async -> Int32 {
        await withClient(opts) { client in
            switch sub {
            case "submit":
                guard let file = opts.positional.first else { printError(help["campaign"]!); return 2 }
                return try await submit(file, client: client)
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
                let terminal = isatty(STDOUT_FILENO) == 1
                while true {
                    let r = try await client.request("GET", "/api/v1/campaigns/\(URLQuery.escape(id))")
                    guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
                    if opts.json { print(terminalJSON(r.bodyText)); return 0 }
                    let carriers = try await client.request("GET", "/api/v1/carriers")
                    let text = renderShow(r.body, carriers: carriers.status == 200 ? carriers.body : [])
                    // --watch: redraw every second until the campaign is done (Ctrl-C to leave earlier).
                    if opts.watch && terminal { FileHandle.standardOutput.write(Data("\u{1B}[H\u{1B}[2J".utf8)) }
                    print(text)
                    fflushOut()
                    let state = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["state"] as? String ?? ""
                    guard opts.watch, !["completed", "cancelled", "expired"].contains(state) else { return 0 }
                    if !terminal { print("") }
                    try await Task.sleep(for: .seconds(1))
                }
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
            case "rejects":
                guard let id = opts.positional.first else { printError(help["campaign"]!); return 2 }
                return try await rejects(id, csv: opts.csv, client: client)
            default:
                printError(help["campaign"]!)
                return 2
            }
        }
    }

    /// Submits a campaign file. SIGTERM or SIGINT before the commit stops the upload and discards the
    /// half-loaded campaign (it once stayed `loading` and the CLI exited without a word), says so on stderr and
    /// exits 128 + the signal (143, 130).
    static func submit(_ file: String, client: APIClient) async throws -> Int32 {
        let loaded: LoadedCampaign
        switch CampaignLoader.load(path: file) {
        case .failure(let p): printError(p.description); return 1
        case .success(let l): loaded = l
        }
        let id = loaded.submission.id
        let interrupt = SignalInterrupt(signals: [SIGTERM, SIGINT])
        defer { interrupt.uninstall() }
        let bound = BoundGeneration()
        let load = Task { try await submitLoaded(loaded, file: file, client: client, bound: bound) }
        interrupt.onSignal { load.cancel() }
        let result = await load.result
        // A signal after the load ended changed nothing: its result stands.
        guard let sig = interrupt.received, case .failure = result else { return try result.get() }
        let name = sig == SIGINT ? "SIGINT" : "SIGTERM"
        // With the generation when the create was answered: a campaign created again under this id is not ours.
        let path = "/api/v1/campaigns/\(URLQuery.escape(id))" + bound.query.withLock { $0 }
        switch try? await client.request("DELETE", path) {
        case let r? where r.status == 200:
            printError("loa: \(name) while submitting: upload stopped, campaign \(id) discarded; nothing will be sent")
        case let r? where r.status == 404:
            printError("loa: \(name) while submitting: campaign \(id) was not created; nothing will be sent")
        case let r?:
            printError("loa: \(name) while submitting: campaign \(id) could not be discarded (\(APIClient.errorText(r))); "
                       + "see loa campaign show \(id)")
        case nil:
            printError("loa: \(name) while submitting: the daemon could not be reached to discard campaign \(id); "
                       + "run loa campaign discard \(id)")
        }
        return 128 + sig
    }

    /// `?generation=N` of the campaign this submit created, once the create is answered.
    final class BoundGeneration: Sendable {
        let query = Mutex("")
    }

    /// Creates, loads and commits the campaign: what ``submit(_:client:)`` runs in a task a signal can cancel.
    private static func submitLoaded(_ loaded: LoadedCampaign, file: String, client: APIClient, bound boundOut: BoundGeneration) async throws -> Int32 {
        let sub = loaded.submission
        let created = try await client.request("POST", "/api/v1/campaigns", body: Array(try JSONEncoder().encode(sub)))
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
            printLine("\(ex.path): exclusion list \(r.bodyText)")
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
            print("\(seg.fromCampaign.map { "recipients of \($0) (\((seg.states ?? []).joined(separator: ", ")))" } ?? seg.path): \(c.rows) rows, \(c.accepted) accepted, \(c.rejected) rejected, \(c.duplicates) duplicates, \(c.suppressed) suppressed, \(c.segments) SMS parts")
            total.add(c)
        }
        let commit = try await client.request("POST", "/api/v1/campaigns/\(URLQuery.escape(sub.id))/commit" + bound)
        guard commit.status == 200 else {
            printError("\(file): \(APIClient.errorText(commit))")
            return 1
        }
        if let o = try? JSONSerialization.jsonObject(with: Data(commit.body)) as? [String: String] {
            if let w = o["warning"] { printLine("WARNING: the deadline will not be met: \(w)") }
            else if let eta = o["eta"] { print("estimated end of sending: \(eta) (\(o["needed_hours"] ?? "?") h of sending; \(o["window_hours"] ?? "?") h of window before the deadline)") }
        }
        print("campaign \(sub.id) scheduled: \(total.accepted) recipients, \(total.rejected) rejected, \(total.duplicates) duplicates, \(total.suppressed) suppressed, \(total.segments) SMS parts; start \(sub.start), deadline \(sub.deadline)")
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

    static func renderShow(_ body: [UInt8], carriers: [UInt8]) -> String {
        guard let c = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            return TerminalText.sanitizeLines(String(decoding: body, as: UTF8.self))
        }
        var out: [String] = []
        // Each line is made safe on its own when joined (names, senders, reasons and carrier names come from
        // outside): no value can add a line, move the cursor or retitle the window.
        let states = c["states"] as? [String: Int] ?? [:]
        out.append("campaign  \(c["id"] ?? "")  (\(c["state"] ?? ""))")
        if let n = c["name"] as? String { out.append("name      \(n)") }
        if let why = c["failure"] as? String { out.append("FAILED    \(why)") }
        out.append("sender    \(c["sender"] ?? "")")
        out.append("window    \(ISOTime.format(Int64("\(c["start_at"] ?? 0)") ?? 0)) → \(ISOTime.format(Int64("\(c["deadline_at"] ?? 0)") ?? 0))")
        out.append("rows      \(c["rows"] ?? 0) read, \(c["accepted"] ?? 0) accepted, \(c["rejected"] ?? 0) rejected, \(c["duplicates"] ?? 0) duplicates, \(c["segments_total"] ?? 0) SMS parts")
        let progress = (c["progress"] as? Double) ?? 0
        let width = 30
        let filled = Int(progress * Double(width))
        out.append("progress  [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] \(String(format: "%.1f", progress * 100))%")
        let carrierList = (try? JSONSerialization.jsonObject(with: Data(carriers)) as? [[String: Any]]) ?? []
        let used = Set((c["carriers"] as? [String: Any] ?? [:]).keys)
        // A carrier that refuses Loa's credentials or is paused holds this campaign's messages: no ETA holds then.
        let blocked = carrierList.filter { used.contains("\($0["name"] ?? "")") && ($0["auth_refused"] != nil || $0["paused_reason"] != nil) }
        if !blocked.isEmpty {
            for b in blocked {
                if let why = b["auth_refused"] as? String {
                    out.append("deadline  BLOCKED: carrier \(b["name"] ?? "") refuses Loa's credentials (\(why)); its messages wait, no ETA until it accepts them")
                } else if let why = b["paused_reason"] as? String {
                    out.append("deadline  BLOCKED: carrier \(b["name"] ?? "") is paused after \(why); its messages wait until `loa carriers resume \(b["name"] ?? "")`")
                }
            }
        } else if let f = c["feasibility"] as? [String: Any] {
            if let w = f["warning"] as? String {
                out.append("deadline  WARNING: \(w)")
            } else if let eta = f["eta"] as? Int64 ?? (f["eta"] as? Int).map(Int64.init) {
                out.append("deadline  on time: sending should end by \(ISOTime.format(eta))")
            }
        }
        let order = MessageState.allCases.map(\.name)
        out.append("states    " + order.compactMap { s in states[s].map { "\(s) \($0)" } }.joined(separator: ", "))
        if let n = c["recovered_unknown"] as? Int, n > 0 {
            out.append("recovery  \(n) in flight at an unclean stop: unknown, never resent (the gateway may have them)")
        }
        if let reasons = c["reasons"] as? [String: Int], !reasons.isEmpty {
            out.append("not sent  " + reasons.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        if let per = c["carriers"] as? [String: [String: Int]] {
            for name in per.keys.sorted() {
                out.append("carrier   \(name): " + order.compactMap { s in per[name]?[s].map { "\(s) \($0)" } }.joined(separator: ", "))
            }
        }
        for cs in carrierList {
            out.append("rate      \(cs["name"] ?? ""): \(String(format: "%.1f", (cs["current_rate"] as? Double) ?? 0))/s now (limit \(cs["configured_rate"] ?? 0)/s), \(cs["in_flight"] ?? 0) in flight, \(carrierState(cs))")
        }
        return out.map(TerminalText.sanitize).joined(separator: "\n")
    }

    static func rejects(_ id: String, csv: String?, client: APIClient) async throws -> Int32 {
        var out: FileHandle = .standardOutput
        if let csv {
            let fd = open(csv, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)  // it holds phone numbers
            guard fd >= 0 else { printError("\(csv): cannot create (\(String(cString: strerror(errno)))); it must not exist yet"); return 1 }
            out = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        }
        out.write(Data("file,line,value,reason,detail\n".utf8))
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
            out.write(Data(text.utf8))
            n += rows.count
            guard let next = page["next"] as? Int else { break }
            after = Int64(next)
        }
        if csv != nil { printError("\(n) rows written to \(csv!)") }
        return 0
    }

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
                guard FileManager.default.createFile(atPath: html, contents: Data(page.utf8), attributes: [.posixPermissions: 0o600]) else {
                    printError("\(html): cannot write"); return 1
                }
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
            print(TerminalText.sanitizeLines(r.bodyText))
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
        let client = APIClient(base: config.apiBaseURL, token: config.apiToken, engine: engine)
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
        let path = config.dataDir + "/delivery.log"
        let filter = LogTailer.Filter(campaign: opts.campaign, carrier: opts.carrier, event: opts.event, status: opts.status, since: opts.since)
        return LogTailer(path: path, filter: filter, json: opts.json, follow: opts.follow, last: opts.lines,
                         color: isatty(STDOUT_FILENO) == 1 && !opts.json).run()
    }
}

extension JSONDecoder {
    static var api: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }
}

/// Flushes buffered standard output (print) before a pause.
func fflushOut() {
    fflush(nil)
}
