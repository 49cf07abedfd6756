import Foundation
import LoaCarriers
import LoaCore

/// The daemon's configuration, validated and with secrets resolved.
public struct LoaConfig: Sendable {
    public struct Carrier: Sendable {
        public var name: String
        public var kind: String
        /// The kind's unit: its adapter, receipt URL and receipt format (``CarrierKinds``).
        public var carrierKind: any CarrierKind
        public var url: String
        public var username: String
        public var password: String
        public var receiptSecret: String
        /// Messages per second.
        public var rate: Double
        public var maxInFlight: Int
        public var timeout: Double
        /// Kannel: "GET" (query parameters) or "POST" (X-Kannel-* headers, text as the body).
        public var method: String = "GET"
        /// `rate` counts SMS parts (carriers bill and throttle parts), or whole messages.
        public var rateInSegments = true
        /// The kind's own options, checked (``KannelOptions``, ``JasminOptions``, a ``GenericGatewaySpec``).
        public var options: any CarrierOptions
        /// Resolved `secrets` of a generic gateway, for its `{{secret.NAME}}` placeholders.
        public var secrets: [String: String] = [:]
        /// The gateway deduplicates resends (a request id), so a timeout after sending may be retried.
        public var idempotent = false
        /// The proxy the carrier's requests go through, or nil for none (proxy environment variables are not read).
        public var proxy: String?
        /// `pace_from_receipts`: learn the gateway's pass-on pace from its receipts and hand it no more than it can
        /// pass on before the deadline (``HandoffWindow``). Default true for kannel and jasmin (their receipts
        /// say when the SMSC took a message), false for generic (a provider's receipts may come only at delivery).
        public var paceFromReceipts = false
        /// Requests per second the provider allows (`requests_per_second`), apart from `rate`; nil: no request limit.
        public var requestsPerSecond: Double?
        /// Identical permanent answers in a row that pause the carrier (`pause_after_identical_failures`); 0: never.
        public var pauseAfterIdenticalFailures = 20
        /// The fewest recipients one request may carry (generic `batch.min`); 1: no minimum.
        public var batchMin = 1
        /// Where a remainder below `batchMin` goes (generic `batch.remainder_carrier`); nil: it fails with the reason.
        public var remainderCarrier: String?

        /// Kind `kannel`'s options: `smsc`, `priority`, `deferred_minutes`, `validity` (the defaults for other kinds).
        public var kannel: KannelOptions { options as? KannelOptions ?? KannelOptions() }
        /// Kind `jasmin`'s options: `validity`, `max_parts` (the defaults for other kinds).
        public var jasmin: JasminOptions { options as? JasminOptions ?? JasminOptions() }
        /// A generic HTTP gateway's description (kind `generic`), nil for other kinds.
        public var generic: GenericGatewaySpec? { options as? GenericGatewaySpec }

        /// What the carrier's kind builds its adapter from.
        public var settings: CarrierSettings {
            CarrierSettings(name: name, url: url, username: username, password: password, receiptSecret: receiptSecret, timeout: timeout,
                            method: method, proxy: proxy, idempotent: idempotent, secrets: secrets, options: options)
        }
    }

    public var path: String
    public var dataDir: String
    public var listenAddress: String
    public var listenPort: Int
    /// Limits of the `listen` listener.
    public var listenLimits = ListenLimits()
    /// A second listener for the receipt and reply endpoints (`receipts_listen`); nil: `listen` serves everything.
    public var receiptsListen: ReceiptsListen?

    /// How many connections a listener holds and how long a client may take to send a request.
    ///
    /// Each connection is a thread (libmicrohttpd, thread per connection), so slow clients are the cost to
    /// bound: `per_client_limit` keeps one IP address from taking every slot: at 768 of 1,024, 256 stay for
    /// everybody else. Not lower by default: a gateway is one address with many connections, and on one host
    /// the gateway and the operator's CLI share 127.0.0.1. Kannel's smsbox makes up to `max-pending-requests`
    /// (512 by default) receipt callbacks at once, and a callback refused is a receipt delayed or, without
    /// `http-request-retry`, lost. Measured: with 128, then 512, the full test suite's Kannel on 127.0.0.1
    /// (plus the tests' own client) filled that address's share under load, and `loa report` from it was
    /// refused. The deadlines free a slot held by a client trickling its head (10 s: a real client sends
    /// it in one packet) or a body read whole (60 s: receipts are at most 64 KiB, a campaign 4 MiB). Streamed
    /// segment uploads, operator-only, have only the 30 s idle timeout.
    public struct ListenLimits: Sendable, Equatable {
        public var connectionLimit = 1024
        public var perClientLimit = 768
        public var headTimeoutSeconds: Double = 10
        public var bodyTimeoutSeconds: Double = 60
        public init() {}
    }

    /// The receipts listener: `/dlr`, `/mo`, `/healthz`, `/readyz`, with limits of its own.
    public struct ReceiptsListen: Sendable, Equatable {
        public var address: String
        public var port: Int
        public var limits: ListenLimits
    }
    /// The base URL gateways use to reach Loa's receipt endpoint.
    public var publicURL: String
    public var apiToken: String
    public var drainSeconds: Double
    public var retry: RetryPolicy
    public var carriers: [Carrier]
    public var router: Router
    public var logLevel: Logger.Level
    /// At most this many messages to one number across all campaigns per rolling window; nil disables it.
    public var contactPolicy: ContactPolicy?
    /// A `sent` message with no final receipt after this long becomes `unknown`.
    public var receiptTimeoutSeconds: Double = 72 * 3600
    /// Opt-out reply keywords, normalized (no diacritics, upper case).
    public var optOutKeywords: Set<String> = ["TC", "STOP", "HUY"]
    /// Mask recipients in the delivery log (`+8491****678`).
    public var maskNumbersInLog = false
    /// A cap over all carriers together, in SMS parts per second (nil: none).
    public var globalRate: Double?

    public var apiBaseURL: String {
        let host = listenAddress.contains(":") ? "[\(listenAddress)]" : listenAddress
        return "http://\(host == "0.0.0.0" ? "127.0.0.1" : host):\(listenPort)"
    }
}

/// A secret given by reference: `{"env": "NAME"}` or `{"file": "/path"}`. Never inline, so config files can be shared and committed.
struct SecretRef: Decodable, Sendable {
    var env: String?
    var file: String?
}

/// A carrier's proxy: a URL written in the config when it holds no credentials, else `{"env": "NAME"}` or
/// `{"file": "/path"}` like any secret.
enum ProxyRef: Decodable, Sendable {
    case url(String)
    case secret(SecretRef)

    init(from decoder: any Decoder) throws {
        if let s = try? decoder.singleValueContainer().decode(String.self) {
            self = .url(s)
        } else {
            self = .secret(try SecretRef(from: decoder))
        }
    }

    static let schemes = ["http", "https", "socks4", "socks4a", "socks5", "socks5h"]

    /// Why `url` cannot be a proxy, or nil. Never quotes it: it may hold a password.
    static func problem(_ url: String) -> String? {
        guard let u = URLComponents(string: url), let scheme = u.scheme, schemes.contains(scheme.lowercased()) else {
            return "must be a proxy URL: \(schemes.map { $0 + "://" }.joined(separator: ", ")) then host:port"
        }
        if (u.host ?? "").isEmpty { return "has no host" }
        if !(u.path.isEmpty || u.path == "/") || u.query != nil || u.fragment != nil { return "must not have a path" }
        return nil
    }

    /// Whether `url` carries a user name or password (`scheme://user:pass@host`).
    static func hasCredentials(_ url: String) -> Bool {
        guard let u = URLComponents(string: url) else { return url.contains("@") }
        return u.user != nil || u.password != nil
    }
}

/// The config file as written (JSON with comments, JSON5).
struct ConfigFile: Decodable {
    struct Listen: Decodable {
        var address: String?
        var port: Int?
        var connectionLimit: Int?
        var perClientLimit: Int?
        var headTimeoutSeconds: Double?
        var bodyTimeoutSeconds: Double?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case address, port
            case connectionLimit = "connection_limit", perClientLimit = "per_client_limit"
            case headTimeoutSeconds = "head_timeout_seconds", bodyTimeoutSeconds = "body_timeout_seconds"
        }
    }
    struct CarrierEntry: Decodable {
        var name: String
        var kind: String
        var url: String
        var username: String?
        var password: SecretRef?
        var receiptSecret: SecretRef
        var rate: Double
        var maxInFlight: Int?
        var timeoutSeconds: Double?
        var method: String?
        var rateUnit: String?
        var secrets: [String: SecretRef]?
        var idempotent: Bool?
        var proxy: ProxyRef?
        /// Each kind's options as the entry writes them, by kind name (``CarrierKind/decodeOptions(from:own:)``).
        var options: [String: any CarrierOptionValues] = [:]
        var paceFromReceipts: Bool?
        var requestsPerSecond: Double?
        var pauseAfterIdenticalFailures: Int?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, kind, url, username, password, rate, method, secrets, idempotent, proxy
            case paceFromReceipts = "pace_from_receipts"
            case rateUnit = "rate_unit", requestsPerSecond = "requests_per_second", pauseAfterIdenticalFailures = "pause_after_identical_failures"
            case receiptSecret = "receipt_secret", maxInFlight = "max_in_flight", timeoutSeconds = "timeout_seconds"
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            kind = try c.decode(String.self, forKey: .kind)
            url = try c.decode(String.self, forKey: .url)
            username = try c.decodeIfPresent(String.self, forKey: .username)
            password = try c.decodeIfPresent(SecretRef.self, forKey: .password)
            receiptSecret = try c.decode(SecretRef.self, forKey: .receiptSecret)
            rate = try c.decode(Double.self, forKey: .rate)
            maxInFlight = try c.decodeIfPresent(Int.self, forKey: .maxInFlight)
            timeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutSeconds)
            method = try c.decodeIfPresent(String.self, forKey: .method)
            rateUnit = try c.decodeIfPresent(String.self, forKey: .rateUnit)
            secrets = try c.decodeIfPresent([String: SecretRef].self, forKey: .secrets)
            idempotent = try c.decodeIfPresent(Bool.self, forKey: .idempotent)
            proxy = try c.decodeIfPresent(ProxyRef.self, forKey: .proxy)
            paceFromReceipts = try c.decodeIfPresent(Bool.self, forKey: .paceFromReceipts)
            requestsPerSecond = try c.decodeIfPresent(Double.self, forKey: .requestsPerSecond)
            pauseAfterIdenticalFailures = try c.decodeIfPresent(Int.self, forKey: .pauseAfterIdenticalFailures)
            // Every kind reads its option keys from every entry (one written on another kind's entry is refused by
            // name); a generic gateway's own keys (method, headers, body, batch, ...) are read on its entries only.
            for k in CarrierKinds.all {
                options[k.name] = try k.decodeOptions(from: decoder, own: k.name == kind)
            }
        }
    }
    struct Routing: Decodable {
        var `default`: String
        var prefixes: [String: String]?
        var networks: [String: String]?
        var portedNumbers: String?
        enum CodingKeys: String, CodingKey, CaseIterable { case `default`, prefixes, networks, portedNumbers = "ported_numbers" }
    }
    struct Retry: Decodable {
        var maxAttempts: Int?
        var baseSeconds: Double?
        var maxSeconds: Double?
        enum CodingKeys: String, CodingKey, CaseIterable { case maxAttempts = "max_attempts", baseSeconds = "base_seconds", maxSeconds = "max_seconds" }
    }

    var dataDir: String
    var listen: Listen?
    var receiptsListen: Listen?
    var publicURL: String?
    var apiToken: SecretRef
    var drainSeconds: Double?
    var retry: Retry?
    var carriers: [CarrierEntry]
    var routing: Routing
    var logLevel: String?
    var contactPolicy: ContactPolicyEntry?
    var receiptTimeoutHours: Double?
    var optOutKeywords: [String]?
    var maskNumbersInLog: Bool?
    var globalRate: Double?

    struct ContactPolicyEntry: Decodable {
        var maxMessages: Int
        var windowHours: Double?
        enum CodingKeys: String, CodingKey, CaseIterable { case maxMessages = "max_messages", windowHours = "window_hours" }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case listen, retry, carriers, routing
        case receiptsListen = "receipts_listen"
        case dataDir = "data_dir", publicURL = "public_url", apiToken = "api_token", drainSeconds = "drain_seconds", logLevel = "log_level"
        case contactPolicy = "contact_policy", receiptTimeoutHours = "receipt_timeout_hours", optOutKeywords = "opt_out_keywords"
        case maskNumbersInLog = "mask_numbers_in_log", globalRate = "global_rate"
    }
}

extension ConfigFile {
    /// Every key of the file that Loa does not know, as a dotted path (`carriers.0.rat`), with the keys known
    /// there: a misspelt key would otherwise be ignored and its default used without a word.
    static func unknownKeys(_ data: Data) -> [UnknownField] {
        let decoder = JSONDecoder()
        decoder.allowsJSON5 = true
        guard let root = try? decoder.decode(JSONShape.self, from: data) else { return [] }
        var out: [UnknownField] = []
        func check(_ shape: JSONShape?, _ path: String, _ known: [String]) {
            guard let dict = shape?.object else { return }
            for key in dict.keys.sorted() where !known.contains(key) {
                out.append(UnknownField(path: path.isEmpty ? key : "\(path).\(key)", known: known.sorted()))
            }
        }
        check(root, "", UnknownField.names(CodingKeys.self))
        check(root["listen"], "listen", UnknownField.names(Listen.CodingKeys.self))
        check(root["receipts_listen"], "receipts_listen", UnknownField.names(Listen.CodingKeys.self))
        check(root["retry"], "retry", UnknownField.names(Retry.CodingKeys.self))
        check(root["routing"], "routing", UnknownField.names(Routing.CodingKeys.self))
        check(root["contact_policy"], "contact_policy", UnknownField.names(ContactPolicyEntry.CodingKeys.self))
        for (i, entry) in (root["carriers"]?.array ?? []).enumerated() {
            let kind = entry["kind"]?.string.flatMap(CarrierKinds.named)
            check(entry, "carriers.\(i)", UnknownField.names(CarrierEntry.CodingKeys.self) + CarrierKinds.optionKeys + (kind?.entryKeys ?? []))
            for (path, known) in kind?.nestedKeys ?? [] {
                check(path.reduce(Optional(entry)) { $0?[$1] }, "carriers.\(i)." + path.joined(separator: "."), known)
            }
        }
        return out
    }
}

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
            guard let ref else { add(field, "required: give {\"env\": \"NAME\"} or {\"file\": \"/path\"}"); return "" }
            if let env = ref.env {
                guard let v = environment[env], !v.isEmpty else { add(field, "environment variable \(env) is not set or empty"); return "" }
                return v
            }
            if let f = ref.file {
                let p = resolvePath(f, against: baseDir)
                guard let d = FileManager.default.contents(atPath: p) else { add(field, "cannot read secret file \(p)"); return "" }
                let v = String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                if v.isEmpty { add(field, "secret file \(p) is empty") }
                return v
            }
            add(field, "give {\"env\": \"NAME\"} or {\"file\": \"/path\"}; inline secrets are not accepted")
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
        let token = resolve(file.apiToken, "api_token")
        if !token.isEmpty && token.count < 16 { add("api_token", "must be at least 16 characters") }
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

/// Reads a JSON5 file into a Decodable, reporting a failure as a located problem.
public enum JSON5File {
    /// `data`, when given, is decoded instead of the file's bytes (a config whose carriers were completed from their
    /// profiles); problems still name `path` and are located in the file's own text.
    public static func decode<T: Decodable>(_ type: T.Type, path: String, data given: Data? = nil) -> Result<(T, JSONLocator), ProblemList> {
        guard let fileData = FileManager.default.contents(atPath: path) else {
            return .failure(ProblemList([Problem(file: path, line: 0, field: "-", reason: "cannot read the file")]))
        }
        if let given {
            let locator = JSONLocator(String(decoding: fileData, as: UTF8.self))
            let decoder = JSONDecoder()
            decoder.allowsJSON5 = true
            do {
                return .success((try decoder.decode(T.self, from: given), locator))
            } catch let error as DecodingError {
                return .failure(ProblemList([DecodingProblem.problem(error, file: path, locator: locator)]))
            } catch {
                return .failure(ProblemList([Problem(file: path, line: 1, field: "-", reason: "\(error)")]))
            }
        }
        let data = fileData
        // Foundation's JSON5 reader traps on some invalid UTF-8 (an unquoted key of bytes FD FF FF): refuse it first.
        if let line = firstInvalidUTF8Line(data) {
            return .failure(ProblemList([Problem(file: path, line: line, field: "-", reason: "not valid UTF-8")]))
        }
        // It also traps on a Double written with an exponent sign but no digits (`1e-`).
        if let line = exponentWithoutDigitsLine([UInt8](data)) {
            return .failure(ProblemList([Problem(file: path, line: line, field: "-", reason: "a number's exponent has no digits")]))
        }
        let locator = JSONLocator(String(decoding: data, as: UTF8.self))
        let decoder = JSONDecoder()
        decoder.allowsJSON5 = true
        do {
            return .success((try decoder.decode(T.self, from: data), locator))
        } catch let error as DecodingError {
            return .failure(ProblemList([DecodingProblem.problem(error, file: path, locator: locator)]))
        } catch let error as UnknownField {
            return .failure(ProblemList([Problem(file: path, line: locator.line(of: error.path), field: error.path,
                                                 reason: error.reason)]))
        } catch {
            return .failure(ProblemList([Problem(file: path, line: 1, field: "-", reason: "\(error)")]))
        }
    }

    /// The 1-based line of a number like `1e-` or `2E+` (an exponent sign not followed by a digit) outside strings
    /// and comments, or nil when there is none.
    static func exponentWithoutDigitsLine(_ b: [UInt8]) -> Int? {
        func isDigit(_ i: Int) -> Bool { i >= 0 && i < b.count && b[i] >= 0x30 && b[i] <= 0x39 }
        var i = 0
        var line = 1
        var quote: UInt8?
        while i < b.count {
            let c = b[i]
            if c == 0x0A { line += 1 }
            if let q = quote {
                if c == 0x5C, i + 1 < b.count {  // an escape; a backslash-newline continues the string
                    if b[i + 1] == 0x0A { line += 1 }
                    i += 2
                    continue
                }
                if c == q { quote = nil }
                i += 1
                continue
            }
            switch c {
            case 0x22, 0x27: quote = c
            case 0x2F where i + 1 < b.count && b[i + 1] == 0x2F:  // a line comment
                while i + 1 < b.count && b[i + 1] != 0x0A { i += 1 }
            case 0x2F where i + 1 < b.count && b[i + 1] == 0x2A:  // a block comment
                i += 2
                while i < b.count && !(b[i] == 0x2A && i + 1 < b.count && b[i + 1] == 0x2F) {
                    if b[i] == 0x0A { line += 1 }
                    i += 1
                }
            case 0x65, 0x45:  // e, E after a digit or a point, then a sign
                let afterNumber = isDigit(i - 1) || (i > 0 && b[i - 1] == 0x2E)
                if afterNumber, i + 1 < b.count, b[i + 1] == 0x2B || b[i + 1] == 0x2D, !isDigit(i + 2) { return line }
            default: break
            }
            i += 1
        }
        return nil
    }

    /// The 1-based line of the first byte that is not UTF-8, or nil when all of `data` is.
    static func firstInvalidUTF8Line(_ data: Data) -> Int? {
        var bytes = data.makeIterator()
        var utf8 = UTF8()
        var line = 1
        while true {
            switch utf8.decode(&bytes) {
            case .scalarValue(let s): if s == "\n" { line += 1 }
            case .emptyInput: return nil
            case .error: return line
            }
        }
    }
}

/// Turns Foundation's decoding errors into located problems.
enum DecodingProblem {
    static func problem(_ error: DecodingError, file: String, locator: JSONLocator) -> Problem {
        func path(_ ctx: DecodingError.Context, extra: String? = nil) -> String {
            var keys = ctx.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            if let extra { keys.append(extra) }
            return keys.isEmpty ? "-" : keys.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let ctx):
            let parent = path(ctx)
            let field = path(ctx, extra: key.stringValue)
            return Problem(file: file, line: parent == "-" ? 1 : locator.line(of: parent), field: field, reason: "required field is missing")
        case .typeMismatch(let type, let ctx):
            let f = path(ctx)
            return Problem(file: file, line: locator.line(of: f), field: f, reason: "expected \(describe(type))")
        case .valueNotFound(let type, let ctx):
            let f = path(ctx)
            return Problem(file: file, line: locator.line(of: f), field: f, reason: "expected \(describe(type)), found null")
        case .dataCorrupted(let ctx):
            let f = path(ctx)
            let underlying = (ctx.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            let message = underlying ?? ctx.debugDescription
            // Foundation's syntax errors say "around line N, column M".
            var line = f == "-" ? 1 : locator.line(of: f)
            if let r = message.range(of: "line ") {
                let digits = message[r.upperBound...].prefix(while: \.isNumber)
                if let n = Int(digits) { line = n }
            }
            return Problem(file: file, line: line, field: f, reason: "not valid JSON: \(message)")
        @unknown default:
            return Problem(file: file, line: 1, field: "-", reason: "\(error)")
        }
    }

    /// `field: reason` for a request body, where there is no file or line to name.
    static func text(_ error: DecodingError) -> String {
        let p = problem(error, file: "", locator: JSONLocator(""))
        return "\(p.field): \(p.reason)"
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        default: "\(type)".lowercased().contains("array") ? "a list" : "an object"
        }
    }
}

/// Opt-out replies: keyword matching that ignores case and Vietnamese diacritics ("Huỷ", "hủy", "HUY").
public enum OptOut {
    public static func normalize(_ s: String) -> String {
        SMSText.transliterateVietnamese(s).trimmingCharacters(in: .whitespacesAndNewlines).uppercased()
    }

    /// True when the reply's first word is one of `keywords` (already normalized).
    public static func isOptOut(_ text: String, keywords: Set<String>) -> Bool {
        let first = normalize(text).split(whereSeparator: { $0.isWhitespace || $0.isPunctuation }).first.map(String.init) ?? ""
        return keywords.contains(first)
    }
}
