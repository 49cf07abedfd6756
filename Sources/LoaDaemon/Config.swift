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
        /// Live log streams (server-sent events) open at once: each holds a connection thread while it lasts.
        public var streamLimit = 16
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
    /// A read-only token for Prometheus: accepted on `/metrics` only (nil: none; the API token works there too).
    public var metricsToken: String?
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
    /// Two-person approval (`approval.required`, default true): a submitted campaign waits in `pending-approval`
    /// until an approver other than its submitter approves it.
    public var approvalRequired = true
    /// The console: its files, session cookie, idle timeout, login throttle and trusted proxies.
    public var console = ConsoleSettings()

    public var apiBaseURL: String {
        let host = listenAddress.contains(":") ? "[\(listenAddress)]" : listenAddress
        return "http://\(host == "0.0.0.0" ? "127.0.0.1" : host):\(listenPort)"
    }
}

/// A secret given by reference: `{"env": "NAME"}`, `{"file": "/path"}` or `{"credential": "NAME"}`. Never inline, so
/// config files can be shared and committed.
///
/// `credential` reads `$CREDENTIALS_DIRECTORY/NAME`: systemd's `LoadCredential=NAME:/etc/loa/credentials/NAME` copies
/// the root-owned file there for the service alone (a non-swappable, per-service directory that the service user
/// can read and nobody else), so the secret is in no environment (`/proc/PID/environ`, crash reports, children).
struct SecretRef: Decodable, Sendable {
    var env: String?
    var file: String?
    var credential: String?
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
        var streamLimit: Int?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case address, port
            case connectionLimit = "connection_limit", perClientLimit = "per_client_limit"
            case headTimeoutSeconds = "head_timeout_seconds", bodyTimeoutSeconds = "body_timeout_seconds"
            case streamLimit = "stream_limit"
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
    var metricsToken: SecretRef?
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
    var approval: Approval?
    var console: ConsoleFileEntry?
    var trustedProxies: [String]?

    struct Approval: Decodable {
        var required: Bool?
        enum CodingKeys: String, CodingKey, CaseIterable { case required }
    }

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
        case maskNumbersInLog = "mask_numbers_in_log", globalRate = "global_rate", approval
        case metricsToken = "metrics_token"
        case console, trustedProxies = "trusted_proxies"
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
        check(root["approval"], "approval", UnknownField.names(Approval.CodingKeys.self))
        check(root["console"], "console", UnknownField.names(ConsoleFileEntry.CodingKeys.self))
        check(root["console"]?["login"], "console.login", UnknownField.names(ConsoleFileEntry.Login.CodingKeys.self))
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
