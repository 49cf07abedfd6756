import Foundation
import LoaDaemon
import LoaSim
import LoaCarriers
import LoaCore
import LoaStore
import Synchronization


/// The `loa` command line. `main.swift` only calls ``LoaCLI/main(_:)``.
public enum LoaCLI {
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
            print("loa \(BuildInfo.version)")
            return 0
        case "daemon":
            guard let path = opts.config else { printError("daemon: --config FILE is required"); return 2 }
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
        case "status":
            return blockingAwait { [opts] in await status(opts) }
        case "report":
            return blockingAwait { [opts] in await report(opts) }
        case "optout":
            return blockingAwait { [opts] in await optout(opts) }
        case "users":
            return blockingAwait { [opts] in await users(opts) }
        case "tokens":
            return blockingAwait { [opts] in await tokens(opts) }
        case "audit":
            return blockingAwait { [opts] in await audit(opts) }
        default:
            printError("unknown command '\(command)'\n\n\(usage)")
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
        /// Colour and cursor control off (also `NO_COLOR`, `TERM=dumb`: ``Display/colorAllowed(noColorFlag:fd:environment:)``).
        var noColor = false
        /// `--watch`: how long the daemon may not answer before the watch gives up (nil: no limit).
        var timeout: Double?
        var role: String?
        var passwordFile: String?
        var user: String?
        var name: String?
        var comment: String?
        var action: String?
        var until: UnixMillis?
        var replace = false
        /// `tail --cluster`: the whole cluster's log through the daemon (PostgreSQL).
        var cluster = false

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
                case "--cluster": cluster = true
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
                case "--until":
                    let v = try value(a)
                    guard let t = ISOTime.parse(v) else { throw Bad(description: "--until needs an ISO 8601 time with an offset, e.g. 2026-11-24T08:00:00+07:00") }
                    until = t
                case "--role": role = try value(a)
                case "--password-file": passwordFile = try value(a)
                case "--user": user = try value(a)
                case "--name": name = try value(a)
                case "--comment": comment = try value(a)
                case "--action": action = try value(a)
                case "--replace": replace = true
                case "--file": file = try value(a)
                case "--html": html = try value(a)
                case "--no-color": noColor = true
                case "--timeout":
                    guard let n = Double(try value(a)), n > 0, n <= 86_400 else { throw Bad(description: "--timeout needs seconds, 1-86400") }
                    timeout = n
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

    /// Writes a problem to stderr with a final newline, each of its lines (up to a blank line: the help that may
    /// follow) under one prefix, `loa: error: `, for every command (a line already beginning `loa: ` keeps its
    /// own: `loa: warning: `, `loa: SIGTERM while submitting: …`; usage text has none). Control characters other
    /// than line breaks are shown escaped (``TerminalText``): error texts carry what the daemon was sent (ids,
    /// field values) and reach a terminal.
    static func printError(_ s: String) {
        var prefixing = !s.hasPrefix("usage:")
        let lines = TerminalText.sanitizeLines(s).split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            if line.isEmpty { prefixing = false }
            return prefixing && !line.hasPrefix("loa: ") ? "loa: error: " + line : String(line)
        }
        let text = lines.joined(separator: "\n")
        FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }

    /// A warning on stderr: `loa: warning: …`.
    static func printWarning(_ s: String) { printError("loa: warning: " + s) }

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
        do { engine = try CurlEngine(maxConnectionsPerHost: 4) } catch { printError("\(error)"); return 1 }
        defer { engine.shutdown() }
        do {
            return try await body(APIClient(base: config.apiBaseURL, token: userToken ?? config.apiToken, engine: engine))
        } catch {
            printError("\(error)")
            return 1
        }
    }
}

extension LoaCLI {
    /// The caller's own API token (`loa tokens create`), from `LOA_TOKEN`: the CLI then acts as that user, with
    /// that user's role. Without it, the config's `api_token` (the admin).
    static var userToken: String? {
        guard let t = ProcessInfo.processInfo.environment["LOA_TOKEN"], !t.isEmpty else { return nil }
        return t
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
