import Foundation
import LoaCarriers
import LoaCore

/// Reads and validates a config file, collecting every problem as `file:line: field: reason`.
public enum ConfigLoader {
    /// `clientOnly` skips the carriers' secrets: the CLI needs only the address, the token and the data directory.
    public static func load(path: String, clientOnly: Bool = false,
                            environment: [String: String] = ProcessInfo.processInfo.environment) -> Result<LoaConfig, ProblemList> {
        let file: ConfigFile
        let locator: JSONLocator
        let baseDir = configDirectory(of: path)
        // Carrier entries that name a shipped profile (`"profile": "carriers/twilio.json5"`) are completed from it.
        var expanded: Data?
        switch CarrierProfiles.expand(path: path, baseDir: baseDir) {
        case .failure(let p): return .failure(p)
        case .success(let d): expanded = d
        }
        switch JSON5File.decode(ConfigFile.self, path: path, data: expanded) {
        case .failure(let p): return .failure(p)
        case .success(let r): (file, locator) = r
        }
        var problems: [Problem] = []
        func add(_ field: String, _ reason: String) {
            problems.append(Problem(file: path, line: locator.line(of: field), field: field, reason: reason))
        }
        for u in ConfigFile.unknownKeys(expanded ?? FileManager.default.contents(atPath: path) ?? Data()) {
            add(u.path, u.reason)
        }
        func resolve(_ ref: SecretRef?, _ field: String) -> String {
            guard let ref else { add(field, "required: give {\"env\": \"NAME\"}, {\"file\": \"/path\"} or {\"credential\": \"NAME\"}"); return "" }
            if let env = ref.env {
                guard let v = environment[env], !v.isEmpty else { add(field, "environment variable \(env) is not set or empty"); return "" }
                return v
            }
            if let name = ref.credential {
                guard let dir = environment["CREDENTIALS_DIRECTORY"], !dir.isEmpty else {
                    add(field, "credential \(name): CREDENTIALS_DIRECTORY is not set (systemd sets it for LoadCredential=)"); return ""
                }
                guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else { add(field, "credential name \(name) is not a file name"); return "" }
                return resolve(SecretRef(file: dir + "/" + name), field)
            }
            if let f = ref.file {
                let p = resolvePath(f, against: baseDir)
                guard let d = FileManager.default.contents(atPath: p) else { add(field, "cannot read secret file \(p)"); return "" }
                let v = String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                if v.isEmpty { add(field, "secret file \(p) is empty") }
                return v
            }
            add(field, "give {\"env\": \"NAME\"}, {\"file\": \"/path\"} or {\"credential\": \"NAME\"}; inline secrets are not accepted")
            return ""
        }

        let address = file.listen?.address ?? "127.0.0.1"
        let port = file.listen?.port ?? 8780
        if !(0...65535).contains(port) { add("listen.port", "must be 0-65535") }
        /// A listener's limits, each checked against its documented range.
        func limits(_ l: ConfigFile.Listen?, _ f: String) -> LoaConfig.ListenLimits {
            var out = LoaConfig.ListenLimits()
            if let n = l?.connectionLimit {
                if (1...10_000).contains(n) { out.connectionLimit = n } else { add("\(f).connection_limit", "must be 1-10000") }
            }
            if let n = l?.perClientLimit {
                if (1...out.connectionLimit).contains(n) { out.perClientLimit = n } else {
                    add("\(f).per_client_limit", "must be 1-\(out.connectionLimit) (the connection limit)")
                }
            } else {
                out.perClientLimit = min(out.perClientLimit, out.connectionLimit)
            }
            if let t = l?.headTimeoutSeconds {
                if t > 0 && t <= 300 { out.headTimeoutSeconds = t } else { add("\(f).head_timeout_seconds", "must be > 0 and <= 300") }
            }
            if let t = l?.bodyTimeoutSeconds {
                if t > 0 && t <= 3600 { out.bodyTimeoutSeconds = t } else { add("\(f).body_timeout_seconds", "must be > 0 and <= 3600") }
            }
            if let n = l?.streamLimit {
                if (1...min(1000, out.connectionLimit)).contains(n) { out.streamLimit = n } else {
                    add("\(f).stream_limit", "must be 1-\(min(1000, out.connectionLimit)) (and at most the connection limit)")
                }
            }
            return out
        }
        let listenLimits = limits(file.listen, "listen")
        var receiptsListen: LoaConfig.ReceiptsListen?
        if let r = file.receiptsListen {
            let a = r.address ?? address
            if let p = r.port, (0...65535).contains(p) {
                if p != 0 && p == port && a == address { add("receipts_listen.port", "must differ from listen.port on the same address") }
                receiptsListen = LoaConfig.ReceiptsListen(address: a, port: p, limits: limits(r, "receipts_listen"))
            } else {
                add("receipts_listen.port", r.port == nil ? "required" : "must be 0-65535")
            }
        }
        if file.dataDir.isEmpty { add("data_dir", "must not be empty") }
        // A user's own token in LOA_TOKEN is what the CLI sends; it then needs no admin token.
        let userToken = clientOnly && !(environment["LOA_TOKEN"] ?? "").isEmpty
        let token = userToken ? "" : resolve(file.apiToken, "api_token")
        if !token.isEmpty && token.count < 16 { add("api_token", "must be at least 16 characters") }
        let metricsToken = file.metricsToken.map { resolve($0, "metrics_token") }
        if let m = metricsToken, !m.isEmpty {
            if m.count < 16 { add("metrics_token", "must be at least 16 characters") }
            if m == token { add("metrics_token", "must differ from api_token (it is the read-only one)") }
        }
        var carriers: [LoaConfig.Carrier] = []
        var names = Set<String>()
        for (i, c) in file.carriers.enumerated() {
            let f = "carriers.\(i)"
            if !CampaignSpec.isValidID(c.name) { add("\(f).name", "must be letters, digits, '.', '_' or '-'") }
            if !names.insert(c.name).inserted { add("\(f).name", "duplicate carrier name \(c.name)") }
            let kind = CarrierKinds.named(c.kind)
            if kind == nil { add("\(f).kind", "unknown adapter kind '\(c.kind)' (known: \(CarrierKinds.names.joined(separator: ", ")))") }
            if !(c.url.hasPrefix("http://") || c.url.hasPrefix("https://")) { add("\(f).url", "must be an http:// or https:// URL") }
            if !(c.rate > 0 && c.rate <= 1_000_000) { add("\(f).rate", "must be > 0 and <= 1000000 per second") }
            if let m = c.maxInFlight, !(1...4096).contains(m) { add("\(f).max_in_flight", "must be 1-4096") }
            if let r = c.requestsPerSecond, !(r >= 0.001 && r <= 100_000) { add("\(f).requests_per_second", "must be >= 0.001 and <= 100000 per second") }
            if let p = c.pauseAfterIdenticalFailures, !(0...1_000_000).contains(p) {
                add("\(f).pause_after_identical_failures", "must be 0 (never pause) to 1000000")
            }
            if let t = c.timeoutSeconds, !(t > 0 && t <= 300) { add("\(f).timeout_seconds", "must be > 0 and <= 300") }
            var secrets: [String: String] = [:]
            if !clientOnly {
                for (key, ref) in (c.secrets ?? [:]).sorted(by: { $0.key < $1.key }) { secrets[key] = resolve(ref, "\(f).secrets.\(key)") }
            }
            if let u = c.rateUnit, u != "segments" && u != "messages" { add("\(f).rate_unit", "must be segments or messages") }
            var proxy: String?
            switch c.proxy {
            case .url(let u)?:
                if ProxyRef.hasCredentials(u) {
                    add("\(f).proxy", "a proxy URL with credentials must come from {\"env\": \"NAME\"} or {\"file\": \"/path\"}")
                }
                proxy = u
            case .secret(let ref)?:
                proxy = clientOnly ? nil : resolve(ref, "\(f).proxy")
            case nil:
                break
            }
            if let p = proxy, !p.isEmpty, let problem = ProxyRef.problem(p) { add("\(f).proxy", problem) }
            if proxy?.isEmpty == true { proxy = nil }
            let options = kindOptions(c, kind, f, add)
            let password = c.password == nil || clientOnly ? "" : resolve(c.password, "\(f).password")
            let secret = clientOnly ? "" : resolve(c.receiptSecret, "\(f).receipt_secret")
            if !secret.isEmpty && secret.count < 16 { add("\(f).receipt_secret", "must be at least 16 characters") }
            // An unknown kind was reported above and the config is refused; the entry stays so later fields keep their index.
            let unit = kind ?? CarrierKinds.all[0]
            carriers.append(.init(name: c.name, kind: c.kind, carrierKind: unit, url: c.url, username: c.username ?? "", password: password,
                                  receiptSecret: secret, rate: c.rate, maxInFlight: c.maxInFlight ?? 32, timeout: c.timeoutSeconds ?? 15,
                                  method: c.method ?? "GET", rateInSegments: (c.rateUnit ?? "segments") == "segments", options: options, secrets: secrets,
                                  idempotent: c.idempotent ?? false, proxy: proxy,
                                  paceFromReceipts: c.paceFromReceipts ?? unit.pacesFromReceiptsByDefault, requestsPerSecond: c.requestsPerSecond,
                                  pauseAfterIdenticalFailures: c.pauseAfterIdenticalFailures ?? 20, batchMin: options.batchMin,
                                  remainderCarrier: options.remainderCarrier))
        }
        for (i, c) in carriers.enumerated() {
            if let r = c.remainderCarrier, r == c.name || !names.contains(r) {
                add("carriers.\(i).batch.remainder_carrier", r == c.name ? "must name another carrier" : "names no configured carrier ('\(r)')")
            }
        }
        if carriers.isEmpty { add("carriers", "at least one carrier is required") }
        if !names.contains(file.routing.default) { add("routing.default", "names no configured carrier ('\(file.routing.default)')") }
        for (prefix, target) in file.routing.prefixes ?? [:] {
            if !names.contains(target) { add("routing.prefixes", "prefix \(prefix) routes to unknown carrier '\(target)'") }
            if prefix.filter(\.isNumber).isEmpty { add("routing.prefixes", "prefix '\(prefix)' has no digits") }
        }
        var networks: [LoaCore.Carrier: String] = [:]
        for (network, target) in file.routing.networks ?? [:] {
            guard let n = LoaCore.Carrier(rawValue: network.lowercased()) else {
                add("routing.networks", "unknown network '\(network)' (known: \(LoaCore.Carrier.allCases.map(\.rawValue).joined(separator: ", ")))")
                continue
            }
            if !names.contains(target) { add("routing.networks", "network \(network) routes to unknown carrier '\(target)'") }
            networks[n] = target
        }
        var ported: [String: LoaCore.Carrier] = [:]
        if let file = file.routing.portedNumbers {
            let p = resolvePath(file, against: baseDir)
            if let d = FileManager.default.contents(atPath: p) {
                let r = Router.readPorted(String(decoding: d, as: UTF8.self))
                ported = r.ported
                for (line, reason) in r.problems.prefix(50) {
                    problems.append(Problem(file: p, line: line, field: "ported_numbers", reason: reason))
                }
            } else {
                add("routing.ported_numbers", "cannot read \(p)")
            }
        }
        let level: Logger.Level
        switch file.logLevel ?? "info" {
        case "debug": level = .debug
        case "info": level = .info
        case "notice": level = .notice
        case "warning": level = .warning
        case "error": level = .error
        default: add("log_level", "one of debug, info, notice, warning, error"); level = .info
        }
        let drain = file.drainSeconds ?? 20
        if !(drain >= 0 && drain <= 600) { add("drain_seconds", "must be 0-600") }
        let attempts = file.retry?.maxAttempts ?? 5
        let base = file.retry?.baseSeconds ?? 5
        let cap = file.retry?.maxSeconds ?? 300
        if !(1...100).contains(attempts) { add("retry.max_attempts", "must be 1-100") }
        if !(base > 0 && base <= 3600) { add("retry.base_seconds", "must be > 0 and <= 3600") }
        if !(cap >= min(max(base, 0), 3600) && cap <= 86_400) { add("retry.max_seconds", "must be at least base_seconds and <= 86400") }
        // Converted only within those bounds (a `1e300` must not reach Int64).
        let retry = RetryPolicy(maxAttempts: min(max(attempts, 1), 100),
                                baseMillis: Int64((base * 1000).clampedInt(1...3_600_000)),
                                capMillis: Int64((cap * 1000).clampedInt(1...86_400_000)))
        var policy: ContactPolicy? = ContactPolicy()
        if let cp = file.contactPolicy {
            let hours = cp.windowHours ?? 24
            if !(0...1000).contains(cp.maxMessages) { add("contact_policy.max_messages", "must be 0 (no cap) to 1000") }
            if !(hours > 0 && hours <= 168) { add("contact_policy.window_hours", "must be > 0 and <= 168") }
            policy = cp.maxMessages == 0 ? nil : ContactPolicy(maxPerWindow: min(max(cp.maxMessages, 1), 1000),
                                                               windowMillis: Int64((hours * 3_600_000).clampedInt(1...604_800_000)))
        }
        if let h = file.receiptTimeoutHours, !(h > 0 && h <= 24 * 30) { add("receipt_timeout_hours", "must be > 0 and <= 720") }
        if let k = file.optOutKeywords, k.isEmpty || k.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            add("opt_out_keywords", "must be a list of non-empty words")
        }
        if let g = file.globalRate, !(g > 0 && g <= 1_000_000) { add("global_rate", "must be > 0 and <= 1000000 SMS parts/s") }
        let console = ConsoleFileEntry.settings(file.console, trustedProxies: file.trustedProxies, baseDir: baseDir, add)
        guard problems.isEmpty else { return .failure(ProblemList(problems)) }
        let dataDir = resolvePath(file.dataDir, against: baseDir)
        // Gateways reach the receipt endpoints: on the receipts listener when there is one.
        let receiptsAddress = receiptsListen?.address ?? address
        let host = receiptsAddress.contains(":") ? "[\(receiptsAddress)]" : receiptsAddress
        var config = LoaConfig(
            path: path, dataDir: dataDir, listenAddress: address, listenPort: port,
            publicURL: file.publicURL ?? "http://\(host == "0.0.0.0" ? "127.0.0.1" : host):\(receiptsListen?.port ?? port)",
            apiToken: token, drainSeconds: drain, retry: retry, carriers: carriers,
            router: Router(defaultCarrier: file.routing.default, prefixes: file.routing.prefixes ?? [:], networks: networks, ported: ported),
            logLevel: level, contactPolicy: policy,
            receiptTimeoutSeconds: (file.receiptTimeoutHours ?? 72) * 3600,
            optOutKeywords: Set((file.optOutKeywords ?? ["TC", "STOP", "HUY"]).map(OptOut.normalize)),
            maskNumbersInLog: file.maskNumbersInLog ?? false, globalRate: file.globalRate)
        config.listenLimits = listenLimits
        config.receiptsListen = receiptsListen
        config.metricsToken = metricsToken
        config.approvalRequired = file.approval?.required ?? true
        config.console = console
        return .success(config)
    }
}

extension ConfigLoader {
    /// The options of carrier entry `c` (field path `f`), read and checked by its kind; an option key of another kind
    /// is refused by name rather than ignored (``CarrierKinds/refusal(of:onKind:)``). Default options when the kind
    /// is unknown (that was reported).
    static func kindOptions(_ c: ConfigFile.CarrierEntry, _ kind: (any CarrierKind)?, _ f: String,
                            _ add: (String, String) -> Void) -> any CarrierOptions {
        var options: any CarrierOptions = KannelOptions()
        var refused = Set<String>()
        for k in CarrierKinds.all {
            if k.name == kind?.name {
                let facts = CarrierEntryFacts(method: c.method, secretNames: Set((c.secrets ?? [:]).keys))
                options = k.check(c.options[k.name], entry: facts) { add("\(f).\($0)", $1) }
                continue
            }
            for key in c.options[k.name]?.presentKeys ?? [] where refused.insert(key).inserted {
                if let reason = CarrierKinds.refusal(of: key, onKind: c.kind) { add("\(f).\(key)", reason) }
            }
        }
        return options
    }

    /// The absolute directory of the config file: what its relative paths (`data_dir`, secret files,
    /// `routing.ported_numbers`) are relative to, whatever the daemon's working directory. A bare `loa.json`
    /// has an empty directory part; joining that with "/" once put `"data_dir": "data"` at `/data`.
    /// On the path's text, as ``PathText``: Foundation's path methods trap on some inputs (runs of slashes).
    static func configDirectory(of path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return normalized(PathText.directory(of: absolute))
    }

    /// `p` as given when absolute, else joined to `base` (absolute), with `.` and `..` resolved.
    static func resolvePath(_ p: String, against base: String) -> String {
        p.hasPrefix("/") ? p : normalized(base + "/" + p)
    }

    /// An absolute path with `.`, `..` and repeated slashes resolved in its text (symbolic links are left to the
    /// kernel, as `URL.standardizedFileURL` leaves them).
    static func normalized(_ absolute: String) -> String {
        var parts: [Substring] = []
        for c in absolute.split(separator: "/") where c != "." {
            if c == ".." { _ = parts.popLast() } else { parts.append(c) }
        }
        return "/" + parts.joined(separator: "/")
    }
}

/// Several problems, printed one per line.
public struct ProblemList: Error, CustomStringConvertible, Sendable {
    public var problems: [Problem]
    public init(_ problems: [Problem]) { self.problems = problems }
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
