import Foundation
import LoaCore
import LoaServer
@testable import LoaStore
import Testing
@testable import LoaDaemon

/// Roles through the route table, in-process, and libsodium's password and token hashing (issue 20).
@Suite struct AccessRouteTests {
    /// Every endpoint that names a role refuses, with 403 from the table, each caller whose role does not include it,
    /// and lets each caller whose role does past the table (to the handler's own answer); the configured api_token
    /// passes all of them.
    @Test func everyEndpointAdmitsExactlyTheRolesThatIncludeItsOwn() throws {
        let f = FuzzService()
        var tokens: [Role: String] = [:]
        for role in Role.allCases {
            let token = try Secrets.newToken()
            try f.store.addUser(name: "u-\(role.rawValue)", role: role, passwordHash: "$argon2id$unused", now: 1)
            _ = try f.store.addToken(user: "u-\(role.rawValue)", label: "", hash: Secrets.tokenHash(token), now: 1)
            tokens[role] = token
        }
        var checked = 0
        for e in DaemonService.endpoints {
            guard case .role(let needed) = e.access else { continue }
            let path = "/" + e.pattern.parts.map { if case .literal(let l) = $0 { l } else { "nosuch" } }.joined(separator: "/")
            for (caller, token) in tokens.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                let head = RequestHead(method: e.method, path: path, headers: ["authorization": "Bearer " + token], remoteAddress: "127.0.0.1")
                let r = f.handle(head, body: [])
                let text = String(decoding: r.body, as: UTF8.self)
                let refusedByTable = r.status == 403 && text.contains("this needs \(needed.rawValue)")
                #expect(refusedByTable == !caller.includes(needed), "\(caller) \(e.method) \(e.pattern): \(r.status) \(text)")
                #expect(r.status != 401, "\(e.method) \(e.pattern) refused \(caller)'s live token")
                checked += 1
            }
            let admin = f.handle(RequestHead(method: e.method, path: path, headers: ["authorization": "Bearer " + FuzzService.apiToken],
                                             remoteAddress: "127.0.0.1"), body: [])
            #expect(admin.status != 401 && admin.status != 403, "the api_token at \(e.method) \(e.pattern): \(admin.status)")
        }
        #expect(checked >= 5 * 25)
        // Only user management stays for the admin alone; `/metrics` is the admin's and the scrape token's.
        let adminOnly = DaemonService.endpoints.filter { if case .role(.admin) = $0.access { true } else { $0.access == .operatorToken } }
        #expect(DaemonService.endpoints.filter { $0.access == .metricsReader }.map { "\($0.method) \($0.pattern)" } == ["GET /metrics"])
        #expect(Set(adminOnly.map { "\($0.method) \($0.pattern)" }) == ["GET /api/v1/users", "POST /api/v1/users",
                                                                       "DELETE /api/v1/users/{name}", "GET /api/v1/tokens", "POST /api/v1/tokens",
                                                                       "DELETE /api/v1/tokens/{id}", "POST /api/v1/users/{name}/unlock"])
    }

    @Test func passwordsAreArgon2idStringsThatVerify() throws {
        let stored = try Secrets.hashPassword("correct horse battery")
        #expect(stored.hasPrefix("$argon2id$v=19$m=65536,t=2,p=1$"), "\(stored)")
        #expect(!stored.contains("correct horse"))
        #expect(Secrets.verifyPassword("correct horse battery", against: stored))
        #expect(!Secrets.verifyPassword("correct horse batterY", against: stored))
        // Salted: the same password never gives the same string.
        #expect(try Secrets.hashPassword("correct horse battery") != stored)
        // Only Argon2id strings are accepted as stored passwords.
        #expect(!Secrets.verifyPassword("x", against: "x"))
    }

    @Test func tokensAreRandomAndStoredAsTheirHash() throws {
        let a = try Secrets.newToken(), b = try Secrets.newToken()
        #expect(a != b && a.count == 68 && a.hasPrefix("loa_") && Secrets.looksLikeToken(a))
        #expect(Secrets.tokenHash(a) == Secrets.tokenHash(a) && Secrets.tokenHash(a) != Secrets.tokenHash(b))
        #expect(Secrets.tokenHash(a).count == 64 && !Secrets.tokenHash(a).contains(a.dropFirst(4)))
        #expect(!Secrets.looksLikeToken(FuzzService.apiToken) && !Secrets.looksLikeToken("loa_" + String(repeating: "G", count: 64)))
    }
}
