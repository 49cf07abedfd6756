import Foundation
import LoaCore

/// The console's settings (issue 20): where its files are, its session cookie, its idle timeout, the login
/// throttle, and which peers are reverse proxies whose `X-Forwarded-For` is believed.
public struct ConsoleSettings: Sendable, Equatable {
    /// `console.directory`: the console's files; nil: the resource bundle next to the executable.
    public var directory: String?
    /// `console.secure_cookie`: add `Secure` to the session cookie (the console is reached over TLS, via nginx).
    public var secureCookie = false
    /// `console.idle_timeout_seconds`: a session unused this long is gone (1-86400, default 900).
    public var idleTimeoutSeconds = 900
    /// `console.login`: the throttle and lockout (``LoginThrottle/Limits``).
    public var login = LoginThrottle.Limits()
    /// `trusted_proxies`: peer addresses (exact, as the peer's address reads: `127.0.0.1`, `::1`) whose
    /// `X-Forwarded-For` names the real client. Empty: the header is ignored and the peer is the client.
    public var trustedProxies: [String] = []
    public init() {}
}

/// `console` in the config file.
struct ConsoleFileEntry: Decodable {
    struct Login: Decodable {
        var maxFailures: Int?
        var failureWindowSeconds: Double?
        var lockSeconds: Double?
        var addressMaxFailures: Int?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case maxFailures = "max_failures", failureWindowSeconds = "failure_window_seconds", lockSeconds = "lock_seconds"
            case addressMaxFailures = "address_max_failures"
        }
    }
    var directory: String?
    var secureCookie: Bool?
    var idleTimeoutSeconds: Int?
    var login: Login?
    enum CodingKeys: String, CodingKey, CaseIterable {
        case directory, login
        case secureCookie = "secure_cookie", idleTimeoutSeconds = "idle_timeout_seconds"
    }

    /// Checked settings; each problem goes to `add(field, reason)`. A relative `directory` is taken relative to
    /// the config file, like `data_dir`.
    static func settings(_ entry: ConsoleFileEntry?, trustedProxies: [String]?, baseDir: String,
                         _ add: (String, String) -> Void) -> ConsoleSettings {
        var s = ConsoleSettings()
        if let d = entry?.directory {
            if d.isEmpty { add("console.directory", "must not be empty (leave it out for the files shipped with loa)") }
            else { s.directory = ConfigLoader.resolvePath(d, against: baseDir) }
        }
        s.secureCookie = entry?.secureCookie ?? false
        if let t = entry?.idleTimeoutSeconds {
            if (1...86_400).contains(t) { s.idleTimeoutSeconds = t } else { add("console.idle_timeout_seconds", "must be 1-86400") }
        }
        if let l = entry?.login {
            if let n = l.maxFailures {
                if (1...1000).contains(n) { s.login.maxFailures = n } else { add("console.login.max_failures", "must be 1-1000") }
            }
            if let w = l.failureWindowSeconds {
                if w >= 1 && w <= 86_400 { s.login.failureWindowMillis = Int64(w * 1000) } else { add("console.login.failure_window_seconds", "must be 1-86400") }
            }
            if let w = l.lockSeconds {
                if w >= 1 && w <= 86_400 { s.login.lockMillis = Int64(w * 1000) } else { add("console.login.lock_seconds", "must be 1-86400") }
            }
            if let n = l.addressMaxFailures {
                if (1...100_000).contains(n) { s.login.addressMaxFailures = n } else { add("console.login.address_max_failures", "must be 1-100000") }
            }
        }
        for (i, p) in (trustedProxies ?? []).enumerated() {
            if IPAddressText.isNumeric(p) { s.trustedProxies.append(IPAddressText.canonical(p)) }
            else { add("trusted_proxies.\(i)", "must be a numeric IPv4 or IPv6 address ('\(p)')") }
        }
        return s
    }
}

/// Numeric IP addresses as text: what `X-Forwarded-For` and `trusted_proxies` hold.
enum IPAddressText {
    static func isNumeric(_ s: String) -> Bool { canonicalOrNil(s) != nil }

    /// The address as the peer address reads (`inet_ntop`), so `::0001` and `::1` compare equal; else `s`.
    static func canonical(_ s: String) -> String { canonicalOrNil(s) ?? s }

    static func canonicalOrNil(_ s: String) -> String? {
        guard !s.isEmpty, s.utf8.count <= 64 else { return nil }
        var v4 = in_addr()
        var buf = [CChar](repeating: 0, count: 64)
        if inet_pton(AF_INET, s, &v4) == 1 {
            guard inet_ntop(AF_INET, &v4, &buf, socklen_t(buf.count)) != nil else { return nil }
            return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, s, &v6) == 1 {
            guard inet_ntop(AF_INET6, &v6, &buf, socklen_t(buf.count)) != nil else { return nil }
            return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return nil
    }
}
