import Foundation
import LoaCore
import Synchronization
import Testing
@testable import LoaStore

/// Several daemons started at once on a database nobody has used yet (`systemctl enable --now loa@n1 loa@n2 loa@n3`, or
/// Deploy/cluster-demo.sh): each creates the schema and its version table if missing, and PostgreSQL's
/// `CREATE … IF NOT EXISTS` run at the same moment by two sessions can fail one of them on the catalog's unique index
/// ("duplicate key value violates unique constraint pg_namespace_nspname_index"). Every node must open.
@Suite(.enabled(if: StoreKind.all.contains(.postgresql))) struct PGFirstStartTests {
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
}
