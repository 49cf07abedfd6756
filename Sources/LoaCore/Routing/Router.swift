import Foundation

/// Chooses the carrier connection (a configured carrier name) for a number.
///
/// Longest matching E.164 digit prefix first (so an operator can pin a block to a link), then the number's
/// network — from the ported-numbers list when it is there (number portability makes the prefix only a
/// default), else from the numbering plan — mapped to a carrier, then the default.
public struct Router: Sendable, Equatable {
    public var defaultCarrier: String
    /// Digit prefixes of the E.164 number without `+` (e.g. `8486`), longest first.
    public private(set) var prefixes: [(prefix: String, carrier: String)]
    public var networks: [Carrier: String]
    /// E.164 → the network the number was ported to.
    public var ported: [String: Carrier]
    /// The carriers a campaign may use (empty: any). A number whose route is not among them goes to the
    /// first of them (e.g. an aggregator that reaches every network).
    public var allowed: [String] = []

    public init(defaultCarrier: String, prefixes: [String: String] = [:], networks: [Carrier: String] = [:], ported: [String: Carrier] = [:]) {
        self.ported = ported
        self.defaultCarrier = defaultCarrier
        self.prefixes = prefixes
            .map { (prefix: $0.key.filter(\.isNumber), carrier: $0.value) }
            .sorted { $0.prefix.count != $1.prefix.count ? $0.prefix.count > $1.prefix.count : $0.prefix < $1.prefix }
        self.networks = networks
    }

    public static func == (a: Router, b: Router) -> Bool {
        a.defaultCarrier == b.defaultCarrier && a.networks == b.networks && a.ported == b.ported && a.allowed == b.allowed
            && a.prefixes.map(\.prefix) == b.prefixes.map(\.prefix) && a.prefixes.map(\.carrier) == b.prefixes.map(\.carrier)
    }

    public func route(_ number: PhoneNumber) -> String {
        let c = unrestrictedRoute(number)
        if allowed.isEmpty || allowed.contains(c) { return c }
        return allowed[0]
    }

    /// This router limited to `carriers` (a campaign's allowed list; empty keeps every carrier).
    public func restricted(to carriers: [String]) -> Router {
        var r = self
        r.allowed = carriers
        return r
    }

    private func unrestrictedRoute(_ number: PhoneNumber) -> String {
        let digits = number.e164.utf8.dropFirst()  // without "+"
        for p in prefixes where digits.starts(with: p.prefix.utf8) { return p.carrier }
        if let c = networks[network(of: number)] { return c }
        return defaultCarrier
    }

    /// The number's network: ported, else by prefix.
    public func network(of number: PhoneNumber) -> Carrier {
        ported.isEmpty ? number.defaultCarrier : (ported[number.e164] ?? number.defaultCarrier)
    }

    /// Reads a ported-numbers file: one `number,network` per line (any written form of the number; `#` starts
    /// a comment). Returns the map and the problems, each with its line.
    ///
    /// The first line that is not blank or a comment may be a header (`phone,carrier`, `number,network`): a
    /// line whose number field has no digit at all, since exports from spreadsheets and segment files carry
    /// one. Anywhere else such a line is a problem.
    public static func readPorted(_ text: String) -> (ported: [String: Carrier], problems: [(line: Int, reason: String)]) {
        var map: [String: Carrier] = [:]
        var problems: [(Int, String)] = []
        var first = true
        // A spreadsheet's export may begin with a byte order mark.
        let text = text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
        // Split on any line end: in Swift "\r\n" is one Character, which a split on "\n" never finds.
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            if line.allSatisfy(\.isWhitespace) { continue }
            let parts = line.split(separator: ",", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            defer { first = false }
            if first, parts.count == 2, !parts[0].contains(where: \.isNumber) { continue }
            guard parts.count == 2 else { problems.append((i + 1, "expected number,network")); continue }
            guard let network = Carrier(rawValue: parts[1].lowercased()) else {
                problems.append((i + 1, "unknown network '\(parts[1])'"))
                continue
            }
            switch PhoneNormalizer.normalize(parts[0]) {
            case .success(let p): map[p.e164] = network
            case .failure(let r): problems.append((i + 1, "number: \(r.message)"))
            }
        }
        return (map, problems)
    }
}

/// When to try a temporarily failed message again: capped exponential backoff with deterministic jitter.
///
/// | attempt just failed | base 5 s, cap 300 s: delay before the next try |
/// |---|---|
/// | 1 | 5 s × [0.5, 1.0) |
/// | 2 | 10 s × [0.5, 1.0) |
/// | 3 | 20 s × [0.5, 1.0) |
/// | 7+ | 300 s × [0.5, 1.0) (capped) |
///
/// The jitter comes from the message id, so a retry storm spreads out and tests are reproducible.
public struct RetryPolicy: Sendable, Equatable {
    public var maxAttempts: Int
    public var baseMillis: Int64
    public var capMillis: Int64

    public init(maxAttempts: Int = 5, baseMillis: Int64 = 5_000, capMillis: Int64 = 300_000) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseMillis = max(1, baseMillis)
        self.capMillis = max(self.baseMillis, capMillis)
    }

    public enum Decision: Sendable, Equatable {
        case retry(at: UnixMillis)
        /// Attempts ran out.
        case giveUp
        /// The next try would fall at or after the deadline.
        case pastDeadline
    }

    /// What to do after attempt `attempt` (1-based) of message `id` failed temporarily at `now`.
    /// `retryAfterMillis` (from a throttling answer) is a lower bound on the delay.
    public func decide(attempt: Int, id: Int64, now: UnixMillis, deadline: UnixMillis, retryAfterMillis: Int64? = nil) -> Decision {
        guard attempt < maxAttempts else { return .giveUp }
        let exp = min(capMillis, baseMillis << Int64(min(attempt - 1, 30)))
        let jitter = Double(StableHash.fnv1a("\(id)#\(attempt)") % 1000) / 2000.0 + 0.5  // [0.5, 1.0)
        var delay = Int64(Double(exp) * jitter)
        if let ra = retryAfterMillis { delay = max(delay, ra) }
        let at = now + delay
        return at >= deadline ? .pastDeadline : .retry(at: at)
    }
}

/// FNV-1a, 64 bit: a hash that is the same on every run and machine (Swift's `Hasher` is seeded per process).
public enum StableHash {
    public static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h
    }
}
