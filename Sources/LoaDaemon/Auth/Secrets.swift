import CSodium
import Foundation

/// Passwords and API tokens through libsodium, the one place Loa calls it.
/// https://doc.libsodium.org/password_hashing/default_phf and https://doc.libsodium.org/hashing/generic_hashing
///
/// **Passwords** are stored as libsodium's Argon2id string (`$argon2id$v=19$m=65536,t=2,p=1$salt$hash`), which
/// carries its own salt and limits, so a later change of limits still verifies the old strings. The limits are
/// libsodium's INTERACTIVE (2 passes over 64 MiB, about 0.1 s on one core here): a login is answered at once and a
/// handful of logins at the same moment take a few hundred MiB at most, on a server whose memory also holds the
/// send queue. MODERATE (3 passes, 256 MiB, ~0.5 s) would cost a gigabyte for four logins at once; the console's
/// logins are throttled per user and address, which is what keeps online guessing slow.
///
/// **API tokens** are 32 random bytes (256 bits, `loa_` + 64 hex digits), stored as their BLAKE2b-256
/// (`crypto_generichash`, keyed with a fixed domain label). A slow hash such as Argon2 protects guessable secrets
/// (people's passwords) from a dictionary search once the table leaks; a 256-bit random token has no dictionary, so a
/// fast hash is as strong, and it lets every API request be checked in microseconds by an index lookup.
public enum Secrets {
    struct Failure: Error, CustomStringConvertible { var description: String }

    /// `sodium_init` once per process (it is safe to call again, but must come before any other call).
    private static let ready: Bool = sodium_init() >= 0

    static func requireReady() throws {
        guard ready else { throw Failure(description: "libsodium could not be initialised") }
    }

    /// The Argon2id string of `password` (INTERACTIVE limits). https://doc.libsodium.org/password_hashing/default_phf#password-storage
    public static func hashPassword(_ password: String) throws -> String {
        try requireReady()
        var out = [CChar](repeating: 0, count: Int(crypto_pwhash_STRBYTES))
        let pw = Array(password.utf8CString.dropLast())
        let rc = crypto_pwhash_str_alg(&out, pw, UInt64(pw.count), UInt64(crypto_pwhash_opslimit_interactive()),
                                       crypto_pwhash_memlimit_interactive(), csodium_alg_argon2id13())
        // It fails only when the memory cannot be had.
        guard rc == 0 else { throw Failure(description: "crypto_pwhash_str_alg failed (out of memory?)") }
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether `password` matches a stored Argon2id string. Constant time in the password (libsodium's own compare).
    public static func verifyPassword(_ password: String, against stored: String) -> Bool {
        guard ready, stored.hasPrefix("$argon2id$") else { return false }
        let pw = Array(password.utf8CString.dropLast())
        return crypto_pwhash_str_verify(stored, pw, UInt64(pw.count)) == 0
    }

    /// A new API token: `loa_` and 32 random bytes in hex. https://doc.libsodium.org/generating_random_data
    public static func newToken() throws -> String {
        try requireReady()
        var bytes = [UInt8](repeating: 0, count: 32)
        randombytes_buf(&bytes, bytes.count)
        return "loa_" + bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// The stored form of an API token: BLAKE2b-256 keyed with a fixed 16-byte label, in hex.
    public static func tokenHash(_ token: String) -> String {
        guard ready else { return "" }
        let key = Array("loa api token v1".utf8)
        let input = Array(token.utf8)
        var out = [UInt8](repeating: 0, count: 32)
        _ = crypto_generichash(&out, out.count, input, UInt64(input.count), key, key.count)
        return out.map { String(format: "%02x", $0) }.joined()
    }

    /// `count` random bytes from libsodium's CSPRNG, in hex: session ids and CSRF tokens (32 bytes, 256 bits).
    static func randomHex(_ count: Int = 32) throws -> String {
        try requireReady()
        var bytes = [UInt8](repeating: 0, count: count)
        randombytes_buf(&bytes, bytes.count)
        return bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// The key a console session is kept under: BLAKE2b-256 of its id keyed with another fixed label than tokens',
    /// so the daemon's memory never holds a live session id (a core dump shows only hashes).
    static func sessionHash(_ id: String) -> String {
        guard ready else { return "" }
        let key = Array("loa session id 1".utf8)
        let input = Array(id.utf8)
        var out = [UInt8](repeating: 0, count: 32)
        _ = crypto_generichash(&out, out.count, input, UInt64(input.count), key, key.count)
        return out.map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `id` has the shape of a session id (64 lower-case hex digits).
    static func looksLikeSessionID(_ id: String) -> Bool {
        id.utf8.count == 64 && id.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Whether `token` has the shape of a Loa user token (so other bearer values are not looked up at all).
    static func looksLikeToken(_ token: String) -> Bool {
        token.utf8.count == 68 && token.hasPrefix("loa_") && token.utf8.dropFirst(4).allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}
