import Foundation
import LoaCore
import Synchronization

/// The console's login sessions, in memory: a restart of the daemon ends them all (people log in again; nothing
/// else is lost). Kept in memory on purpose: a session is a short-lived browser login (idle timeout, 15 min by
/// default), and a table in the store would put a write on every console request for its last use.
///
/// A session id is 256 random bits (libsodium's CSPRNG), sent once as the `loa_session` cookie and kept only as
/// its keyed BLAKE2b hash (``Secrets/sessionHash(_:)``), so the daemon's memory (a core dump) holds no live id.
/// Each session has its own CSRF token, which the page reads from `GET /api/v1/session` and sends back in
/// `X-CSRF-Token` with every request that changes something.
///
/// A session ends when unused for `idleMillis` (the daemon's clock: tests drive it), after ``maxLifeMillis``
/// whatever its use, at logout, and when its user is removed or their password changed.
final class SessionTable: Sendable {
    struct Session: Sendable, Equatable {
        var user: String
        var role: Role
        var csrf: String
        var created: UnixMillis
        var lastUsed: UnixMillis
    }

    /// A working day and a half: a session kept alive by a page left open still ends.
    static let maxLifeMillis: Int64 = 12 * 3_600_000
    /// Sessions at most (the least recently used go first beyond it): memory a login flood can take is bounded.
    static let capacity = 10_000

    let idleMillis: Int64
    private let sessions = Mutex<[String: Session]>([:])

    init(idleSeconds: Int) { idleMillis = Int64(idleSeconds) * 1000 }

    /// A new session for `user`: its id (for the cookie, never kept) and its key (the id's hash).
    func create(user: String, role: Role, now: UnixMillis) throws -> (id: String, key: String, session: Session) {
        let id = try Secrets.randomHex(32)
        let session = Session(user: user, role: role, csrf: try Secrets.randomHex(32), created: now, lastUsed: now)
        let key = Secrets.sessionHash(id)
        sessions.withLock { table in
            if table.count >= Self.capacity {
                table = table.filter { live($0.value, now) }
                if table.count >= Self.capacity, let oldest = table.min(by: { $0.value.lastUsed < $1.value.lastUsed }) { table[oldest.key] = nil }
            }
            table[key] = session
        }
        return (id, key, session)
    }

    private func live(_ s: Session, _ now: UnixMillis) -> Bool {
        now - s.lastUsed < idleMillis && now - s.created < Self.maxLifeMillis
    }

    /// The live session with this cookie value, its last use moved to `now`; nil (and the session gone) when it has
    /// been idle too long or lived too long.
    func use(id: String, now: UnixMillis) -> (key: String, session: Session)? {
        guard Secrets.looksLikeSessionID(id) else { return nil }
        let key = Secrets.sessionHash(id)
        return sessions.withLock { table in
            guard var s = table[key] else { return nil }
            guard live(s, now) else {
                table[key] = nil
                return nil
            }
            s.lastUsed = max(s.lastUsed, now)
            table[key] = s
            return (key, s)
        }
    }

    /// Ends one session (logout); returns it.
    @discardableResult
    func end(key: String) -> Session? { sessions.withLock { $0.removeValue(forKey: key) } }

    /// Ends every session of `user` but `except` (their own, when they changed their own password); returns how many.
    @discardableResult
    func endAll(user: String, except: String? = nil) -> Int {
        sessions.withLock { table in
            let keys = table.filter { $0.value.user == user && $0.key != except }.map(\.key)
            for k in keys { table[k] = nil }
            return keys.count
        }
    }

    var count: Int { sessions.withLock { $0.count } }
}

/// What the console needs beside the store: its settings, the sessions, the login throttle, the slots for
/// password checks, and where its files are.
final class ConsoleState: Sendable {
    let settings: ConsoleSettings
    let sessions: SessionTable
    let throttle: Mutex<LoginThrottle>
    /// Password checks running now. Argon2id (INTERACTIVE) takes ~0.1 s of a core and 64 MiB each: at most
    /// ``hashingSlots`` run at once, on the requests' own connection threads (never on a shared executor); a login
    /// finding none free is answered 503 at once, so a flood of logins costs at most two cores' worth of hashing and
    /// 128 MiB, and the dispatcher, receipts and API keep theirs.
    let hashing = Mutex(0)
    static let hashingSlots = 2
    /// The console's files: the directory, or why there is none (for the 404's message and the start-up log).
    let files: Result<String, ConsoleFiles.Missing>

    init(settings: ConsoleSettings) {
        self.settings = settings
        sessions = SessionTable(idleSeconds: settings.idleTimeoutSeconds)
        throttle = Mutex(LoginThrottle(limits: settings.login))
        files = ConsoleFiles.locate(configured: settings.directory)
    }

    /// Takes a hashing slot; false when all are busy.
    func takeHashingSlot() -> Bool {
        hashing.withLock { n in
            guard n < Self.hashingSlots else { return false }
            n += 1
            return true
        }
    }

    func releaseHashingSlot() { hashing.withLock { $0 = max(0, $0 - 1) } }

    /// A stored password string no user has, checked when the name is unknown so that a wrong name takes as long
    /// as a wrong password (the answer is the same for both; its time must be too).
    static let decoyHash: String = (try? Secrets.hashPassword((try? Secrets.randomHex(16)) ?? "decoy-password-unused")) ?? ""
}
