/// Who may try a password now: the console's login throttle and lockout, per user name and per client address.
///
/// Pure, on the caller's clock (the caller holds the lock). Each user name and each address has a
/// ``TokenBucket`` of failures: `maxFailures` (per name) or `addressMaxFailures` (per address) at once, refilling
/// at that many per `failureWindowMillis`. An attempt takes a token from both *before* the password is checked
/// (``begin(user:address:now:)``), so concurrent attempts count too and a refused attempt costs no hashing; a
/// success gives the tokens back and clears the name's failures. A failure that empties the name's bucket locks
/// the name for `lockMillis`: until then every attempt is refused, the right password too, unless an admin
/// unlocks it (``unlock(user:)``). Names that do not exist are tracked like names that do, so a lock says nothing
/// about which names are real.
///
/// Worked example, defaults (5 per name, 20 per address, window and lock 15 min):
///
/// | at | attempt | verdict | after |
/// |---|---|---|---|
/// | 0 s | lan, wrong ×4 | proceed | lan has 1 token |
/// | 1 s | lan, wrong | proceed | lan 0 tokens: locked until 901 s |
/// | 2 s | lan, right | locked(901 s) | nothing hashed |
/// | 901 s | lan, right | proceed | success: lan cleared |
/// | 0 s | 20 names from one address, wrong | proceed | the address has 0 tokens |
/// | 6 s | a 21st name from it | throttled(45 s) | one token refills per 45 s |
///
/// Memory: at most `maxTracked` names and as many addresses; past that, quiet entries (full bucket, not locked)
/// go first, then the least recently seen.
public struct LoginThrottle: Sendable {
    public struct Limits: Sendable, Equatable {
        /// Failures per name before it is locked (within about `failureWindowMillis`).
        public var maxFailures = 5
        public var failureWindowMillis: Int64 = 900_000
        /// How long a name stays locked.
        public var lockMillis: Int64 = 900_000
        /// Failures per client address (over every name it tries) before its attempts are refused for a while.
        public var addressMaxFailures = 20
        /// Names (and addresses) tracked at most.
        public var maxTracked = 10_000
        public init() {}
    }

    public enum Verdict: Sendable, Equatable {
        /// Check the password, then report ``succeeded(user:address:now:)`` or ``failed(user:address:now:)``, or
        /// ``abandoned(user:address:)`` if it was not checked after all.
        case proceed
        /// The name is locked until then: refuse, whatever the password.
        case locked(until: UnixMillis)
        /// Too many failures from this address, or attempts on this name at once: refuse; try again at `until`.
        case throttled(until: UnixMillis)
    }

    struct Entry: Sendable {
        var bucket: TokenBucket
        var lockedUntil: UnixMillis?
        var lastSeen: UnixMillis
    }

    public let limits: Limits
    private var users: [String: Entry] = [:]
    private var addresses: [String: Entry] = [:]

    public init(limits: Limits = Limits()) { self.limits = limits }

    private func fresh(_ n: Int, _ now: UnixMillis) -> Entry {
        Entry(bucket: TokenBucket(rate: Double(n) * 1000 / Double(max(1, limits.failureWindowMillis)), burst: n, now: now), lockedUntil: nil, lastSeen: now)
    }

    /// Whether `user` may try a password now; when `.proceed`, a token of the name and of the address is taken.
    public mutating func begin(user: String, address: String, now: UnixMillis) -> Verdict {
        if let until = lockedUntil(user: user, now: now) { return .locked(until: until) }
        var a = addresses[address] ?? fresh(limits.addressMaxFailures, now)
        var u = users[user] ?? fresh(limits.maxFailures, now)
        a.lastSeen = now
        u.lastSeen = now
        defer {
            addresses[address] = a
            users[user] = u
            prune(now)
        }
        guard a.bucket.take(upTo: 1, now: now) == 1 else { return .throttled(until: a.bucket.whenAvailable(now: now)) }
        guard u.bucket.take(upTo: 1, now: now) == 1 else {
            // Only attempts in progress hold the name's last tokens (an empty bucket after a failure locks it).
            a.bucket.giveBack(1)
            return .throttled(until: u.bucket.whenAvailable(now: now))
        }
        return .proceed
    }

    /// The right password: the name's failures are cleared and the address's token given back.
    public mutating func succeeded(user: String, address: String, now: UnixMillis) {
        users[user] = nil
        addresses[address]?.bucket.giveBack(1)
    }

    /// A wrong password (tokens stay taken). Returns the end of the lock when this failure locked the name.
    public mutating func failed(user: String, address: String, now: UnixMillis) -> UnixMillis? {
        guard var u = users[user] else { return nil }
        u.lastSeen = now
        defer { users[user] = u }
        guard u.lockedUntil == nil, u.bucket.available(now) == 0 else { return nil }
        u.lockedUntil = now + limits.lockMillis
        return u.lockedUntil
    }

    /// The attempt was not checked after all (the daemon was busy): both tokens are given back.
    public mutating func abandoned(user: String, address: String) {
        users[user]?.bucket.giveBack(1)
        addresses[address]?.bucket.giveBack(1)
    }

    /// An admin's reset: the name's lock and failures are gone. Returns whether it was locked.
    @discardableResult
    public mutating func unlock(user: String) -> Bool {
        defer { users[user] = nil }
        return users[user]?.lockedUntil != nil
    }

    /// The end of the name's lock, or nil when it is not locked now (an expired lock is cleared with its failures).
    public mutating func lockedUntil(user: String, now: UnixMillis) -> UnixMillis? {
        guard let until = users[user]?.lockedUntil else { return nil }
        if now < until { return until }
        users[user] = nil
        return nil
    }

    /// Names and addresses tracked (for tests of the memory bound).
    public var tracked: (users: Int, addresses: Int) { (users.count, addresses.count) }

    private mutating func prune(_ now: UnixMillis) {
        Self.prune(&users, limits.maxTracked, now)
        Self.prune(&addresses, limits.maxTracked, now)
    }

    /// Down to 90% of `cap` once over it: entries with a full bucket and no lock first, then the least recently seen.
    private static func prune(_ map: inout [String: Entry], _ cap: Int, _ now: UnixMillis) {
        guard map.count > cap else { return }
        let target = max(1, cap * 9 / 10)
        for (key, var e) in map where map.count > target {
            let quiet = (e.lockedUntil.map { $0 <= now } ?? true) && e.bucket.available(now) >= e.bucket.burst
            if quiet { map[key] = nil }
        }
        guard map.count > target else { return }
        for key in map.sorted(by: { $0.value.lastSeen < $1.value.lastSeen }).prefix(map.count - target).map(\.key) {
            map[key] = nil
        }
    }
}
