import Foundation
import LoaCore
import Testing
@testable import LoaDaemon
@testable import LoaStore

/// The `store` entry: SQLite by default; PostgreSQL with a URL that holds no password and the password from a secret;
/// every mistake named by file, line and field, and the password never shown.
@Suite struct StoreConfigTests {
    let env = ["T": "0123456789abcdef-token", "S": "receipt-secret-0123456789", "PGPW": "pg-secret-hunter2"]

    func config(_ store: String) -> String {
        goodConfig.replacingOccurrences(of: "\"data_dir\": \"data\",", with: "\"data_dir\": \"data\",\n      \"store\": \(store),")
    }

    @Test func sqliteIsTheDefault() throws {
        let s = Scratch()
        _ = s.write("kannel.pw", "hunter2\n")
        let c = try ConfigLoader.load(path: s.write("loa.json", goodConfig), environment: env).get()
        guard case .sqlite = c.store else { Issue.record("\(c.store)"); return }
    }

    @Test func postgresqlWithThePasswordFromASecret() throws {
        let s = Scratch()
        _ = s.write("kannel.pw", "hunter2\n")
        _ = s.write("pg.pw", "from-a-file\n")
        let path = s.write("loa.json", config(#"{"kind": "postgresql", "url": "postgresql://loa@127.0.0.1:5432/loa", "password": {"env": "PGPW"}, "node": "n1"}"#))
        let c = try ConfigLoader.load(path: path, environment: env).get()
        guard case .postgresql(let pg) = c.store else { Issue.record("\(c.store)"); return }
        #expect(pg.url == "postgresql://loa@127.0.0.1:5432/loa" && pg.password == "pg-secret-hunter2" && pg.node == "n1" && pg.schema == "public")
        let fromFile = s.write("loa2.json", config(#"{"kind": "postgresql", "url": "postgres://loa@db/loa", "password": {"file": "pg.pw"}}"#))
        guard case .postgresql(let pg2) = try ConfigLoader.load(path: fromFile, environment: env).get().store else { Issue.record("not postgresql"); return }
        #expect(pg2.password == "from-a-file" && pg2.node == "local")
        // The cluster's log: on, kept 7 days, unless the entry says otherwise.
        #expect(pg.clusterLog && pg.clusterLogDays == 7)
        let off = s.write("loa3.json", config(#"{"kind": "postgresql", "url": "postgres://loa@db/loa", "cluster_log": false, "cluster_log_days": 30}"#))
        guard case .postgresql(let pg3) = try ConfigLoader.load(path: off, environment: env).get().store else { Issue.record("not postgresql"); return }
        #expect(!pg3.clusterLog && pg3.clusterLogDays == 30)
    }

    @Test func badStoreEntriesNameFileLineAndFieldAndNeverThePassword() throws {
        let s = Scratch()
        _ = s.write("kannel.pw", "hunter2\n")
        let cases: [(String, String)] = [
            (#"{"kind": "mysql"}"#, "store.kind: unknown store kind 'mysql' (known: sqlite, postgresql)"),
            (#"{"kind": "postgresql"}"#, "store: url is required for kind postgresql"),
            (#"{"kind": "postgresql", "url": "http://db/loa"}"#, "store.url: must be a postgresql://"),
            (#"{"kind": "postgresql", "url": "postgresql://loa:topsecret@db/loa"}"#, "store.url: must not hold the password"),
            (#"{"kind": "postgresql", "url": "postgresql://loa@db/loa", "password": {"env": "NOPE"}}"#, "store.password: environment variable NOPE is not set"),
            (#"{"kind": "postgresql", "url": "postgresql://loa@db/loa", "node": "a b"}"#, "store.node: must be letters"),
            (#"{"kind": "sqlite", "url": "postgresql://loa@db/loa"}"#, "store.url: only for kind postgresql"),
            (#"{"kind": "postgresql", "url": "postgresql://loa@db/loa", "passwd": "x"}"#, "store.passwd"),
            (#"{"kind": "postgresql", "url": "postgresql://loa@db/loa", "cluster_log_days": 0}"#, "store.cluster_log_days: must be between 1 and 3650"),
            (#"{"kind": "sqlite", "cluster_log": true}"#, "store.cluster_log: only for kind postgresql"),
        ]
        for (entry, expected) in cases {
            let path = s.write("loa.json", config(entry))
            guard case .failure(let list) = ConfigLoader.load(path: path, environment: env) else { Issue.record("\(entry) loaded"); continue }
            // The store entry is on line 4 of the file.
            #expect(list.description.contains("\(path):4: \(expected)"), "\(entry): \(list.description)")
            #expect(!list.description.contains("topsecret") && !list.description.contains("hunter2"))
        }
    }
}
