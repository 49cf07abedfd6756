import Foundation
import LoaCore
import Synchronization
import Testing
@testable import LoaStore

/// How the nodes of a cluster reach and open their database (Deploy/loa@.service, Deploy/cluster-demo.sh,
/// Tests/Benchmarks/failover.sh).
@Suite(.enabled(if: StoreKind.all.contains(.postgresql))) struct PGClusterStartTests {
    /// Several daemons started at once on a database nobody has used yet (`systemctl enable --now loa@n1 loa@n2 loa@n3`):
    /// each creates the schema and its version table if missing, and PostgreSQL's `CREATE … IF NOT EXISTS` run at the
    /// same moment by two sessions can fail one of them on the catalog's unique index ("duplicate key value violates
    /// unique constraint pg_type_typname_nsp_index"). Every node must open.
    @Test(.timeLimit(.minutes(2))) func nodesStartingAtOnceOnAFreshSchemaAllOpen() throws {
        let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)
        let failures = Mutex<[String]>([])
        for round in 0..<20 {
            let schema = testSchema(TempDir(.postgresql).path + "/first-start-\(round)")
            DispatchQueue.concurrentPerform(iterations: 3) { i in
                do {
                    let store = try PostgresStore(settings: testPostgresSettings(schema: schema, node: "n\(i + 1)"), directory: nil, log: nil, clock: clock)
                    store.close()
                } catch {
                    failures.withLock { $0.append("round \(round), n\(i + 1): \(error)") }
                }
            }
        }
        let seen = failures.withLock { $0 }
        #expect(seen.isEmpty, "\(seen.count) nodes failed to open: \(seen.prefix(3))")
    }

    /// A libpq URL with several hosts and `target_session_attrs=read-write` (how a node follows a failover, README
    /// "PostgreSQL") goes to libpq whole: the first host refuses (nothing listens on port 1), the second is taken; the
    /// URL is shown as given, it holds no password.
    @Test func aURLWithSeveralHostsReachesTheOneThatTakesWrites() throws {
        var settings = try testPostgresSettings(schema: testSchema(TempDir(.postgresql).path), node: "multi")
        let hostPort = try #require(settings.url.split(separator: "@").last?.split(separator: "/").first.map(String.init))
        settings.url = settings.url.replacingOccurrences(of: "@" + hostPort + "/", with: "@127.0.0.1:1,\(hostPort)/") + "?target_session_attrs=read-write"
        let store = try PostgresStore(settings: settings, directory: nil, log: nil, clock: ManualTimeSource())
        defer { store.close() }
        try store.createCampaign(submission(), startAt: 0, deadlineAt: .max)
        #expect(try store.campaign("c1") != nil)
        #expect(settings.redactedURL == settings.url && settings.url.contains("127.0.0.1:1,"), "\(settings.url)")
    }
}
