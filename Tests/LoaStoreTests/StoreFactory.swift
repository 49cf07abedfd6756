import Foundation
import LoaCore
import Synchronization
@testable import LoaStore

/// The implementations of ``MessageStore`` the behavioural tests run against. The suites' tests take a `StoreKind`
/// argument (`@Test(arguments: StoreKind.all)`) and make their data directory with it (`TempDir(kind)`), so each runs
/// once per kind; ``makeStore(_:log:clock:maskNumbers:logger:kind:)`` opens the kind the directory was made for.
enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite
    case postgresql

    /// The implementation of tests that do not run over every kind.
    static let `default` = StoreKind.sqlite

    /// Every kind the suite runs: PostgreSQL whenever `LOA_PG_URL` names a server (Tests/run.sh starts one; CI always
    /// has it). In CI (`CI` set) without it the PostgreSQL cases still run, and fail saying the server is missing, so a
    /// CI whose PostgreSQL went missing cannot pass on SQLite alone.
    static let all: [StoreKind] = {
        let env = ProcessInfo.processInfo.environment
        return env["LOA_PG_URL"] != nil || env["CI"] != nil ? [.sqlite, .postgresql] : [.sqlite]
    }()

    var description: String { rawValue }

    /// The kind each test data directory was made for.
    fileprivate static let byDirectory = Mutex<[String: StoreKind]>([:])
    static func of(_ path: String) -> StoreKind { byDirectory.withLock { $0[path] } ?? .default }
    static func register(_ path: String, _ kind: StoreKind) { byDirectory.withLock { $0[path] = kind } }
    static func forget(_ path: String) { _ = byDirectory.withLock { $0.removeValue(forKey: path) } }
}

/// The PostgreSQL server of the test run: `LOA_PG_URL` (no password in it) and the password in the file
/// `LOA_PG_PASSWORD_FILE` (Tests/pg.sh writes both).
func testPostgresSettings(schema: String, node: String = "test") throws -> PostgresSettings {
    let env = ProcessInfo.processInfo.environment
    guard let url = env["LOA_PG_URL"] else {
        throw StoreError.invalid("LOA_PG_URL is not set: start a server with Tests/pg.sh (Tests/run.sh does) to run the PostgreSQL cases")
    }
    let password = try env["LOA_PG_PASSWORD_FILE"].map { try String(contentsOfFile: $0, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) }
    return PostgresSettings(url: url, password: password, schema: schema, node: node)
}

/// A test's own PostgreSQL schema, named from its data directory: the same directory opens the same schema again
/// (a restart), another directory never does, so tests stay independent and may run in parallel.
func testSchema(_ dir: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in dir.utf8 { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
    return "t_" + String(hash, radix: 16)
}

/// Opens (creating if needed) a store of `kind` (by default the kind `dir` was made for) in the data directory `dir`:
/// the only place the behavioural tests name an implementation. Tests of one implementation's own machinery (SQLite's
/// checkpoints, WAL, writer, schema) open that implementation directly and say so.
func makeStore(_ dir: String, log: DeliveryLogFile?, clock: any TimeSource, maskNumbers: Bool = false,
               logger: Logger = Logger(label: "loa"), kind: StoreKind? = nil) throws -> any MessageStore {
    switch kind ?? StoreKind.of(dir) {
    case .sqlite: try Store(directory: dir, log: log, clock: clock, maskNumbers: maskNumbers, logger: logger)
    case .postgresql:
        try PostgresStore(settings: testPostgresSettings(schema: testSchema(dir)), directory: dir, log: log, clock: clock, maskNumbers: maskNumbers,
                          logger: logger)
    }
}

/// A message's stored state, reason, send time and gateway id, read from the implementation behind `store`: the
/// fields the interface does not return one message at a time.
func messageRow(_ store: any MessageStore, _ id: Int64) throws -> (state: MessageState, detail: String?, sentAt: Int64?, gatewayID: String?) {
    switch store {
    case let sqlite as Store:
        return try sqlite.write { ctx in
            var out: (MessageState, String?, Int64?, String?) = (.unknown, nil, nil, nil)
            try ctx.statement("SELECT state, detail, sent_at, gateway_id FROM messages WHERE id = ?").query([.int(id)]) {
                out = (MessageState(rawValue: Int($0.int("state")))!, $0.text("detail"), $0.isNull("sent_at") ? nil : $0.int("sent_at"), $0.text("gateway_id"))
            }
            return out
        }
    case let pg as PostgresStore:
        return try pg.write { ctx in
            var out: (MessageState, String?, Int64?, String?) = (.unknown, nil, nil, nil)
            try ctx.query("SELECT state, detail, sent_at, gateway_id FROM messages WHERE id = ?", [.int(id)]) {
                out = (MessageState(rawValue: Int($0.int("state")))!, $0.text("detail"), $0.isNull("sent_at") ? nil : $0.int("sent_at"), $0.text("gateway_id"))
            }
            return out
        }
    default:
        throw StoreError.invalid("no message reader for \(type(of: store))")
    }
}
