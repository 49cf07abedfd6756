internal import CLibPQ
import Foundation
import LoaCore

/// A failed libpq call: the server's SQLSTATE (empty when the failure is the connection's), libpq's own message and
/// what Loa was doing (the statement's text, never a parameter value, never the password).
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    public var sqlState: String
    public var message: String
    public var context: String
    /// The connection is gone (the server restarted, the network failed): the next transaction reconnects.
    public var connectionLost: Bool

    public var description: String {
        "postgresql error\(sqlState.isEmpty ? "" : " \(sqlState)") (\(message)) while \(context)"
    }
}

/// Where and as whom the store connects: a `postgresql://user@host:port/db` URL without a password, and the password
/// read from a secret (never logged, never in an error).
public struct PostgresSettings: Sendable {
    public var url: String
    public var password: String?
    /// The schema the store's tables live in (`search_path`); created if missing. Tests give each test its own.
    public var schema: String
    /// This daemon's name in the database: the node a claim names (`messages.node`) and whose delivery log's
    /// position it keeps. One daemon per node at a time (an advisory lock).
    public var node: String
    /// The node's lease (``ClusterLease``): it sends only while it holds one, renewed every quarter of this.
    public var leaseMillis: Int64
    /// Whether each transaction's delivery-log lines also go into the cluster's log (`cluster_events`, read by
    /// `loa tail --cluster` and `?scope=cluster`), and for how many days they are kept there.
    public var clusterLog: Bool
    public var clusterLogDays: Int

    public init(url: String, password: String?, schema: String = "public", node: String = "local", leaseMillis: Int64 = 10_000,
                clusterLog: Bool = true, clusterLogDays: Int = 7) {
        self.url = url
        self.password = password
        self.schema = schema
        self.node = node
        self.leaseMillis = leaseMillis
        self.clusterLog = clusterLog
        self.clusterLogDays = clusterLogDays
    }

    /// The URL as it may be shown: a password written into it (which the config refuses) is replaced by `***`.
    public var redactedURL: String { Self.redact(url) }

    public static func redact(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@") else { return url }
        let userinfo = url[scheme.upperBound..<at]
        guard let colon = userinfo.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}

/// One libpq connection. Owned by exactly one thread (the store's writer), hence not Sendable. Every call blocks.
///
/// Statements are prepared once per connection (``prepare(_:)``: `PQprepare`, https://www.postgresql.org/docs/15/libpq-exec.html)
/// with the SQL written with `?` placeholders as for SQLite, turned into `$1…$n` here; parameters go as text and the
/// server infers their types from the statement (a cast such as `?::bigint[]` where it cannot).
/// After a lost connection ``reconnect()`` opens it again and forgets every prepared statement.
final class PGConnection {
    private(set) var handle: OpaquePointer
    let settings: PostgresSettings
    /// SQL text → prepared statement, valid for the current ``generation`` of the connection.
    private var statements: [String: PGStatement] = [:]
    private var nextName = 0
    /// Bumped by every reconnect: statements prepared before it are gone on the server.
    private(set) var generation = 0

    init(settings: PostgresSettings) throws {
        self.settings = settings
        handle = try Self.connect(settings)
        try setUp()
    }

    private(set) var finished = false

    deinit { if !finished { PQfinish(handle) } }

    /// Closes the connection now (the node's advisory lock goes with it). Later calls fail as on a lost connection.
    func finish() {
        guard !finished else { return }
        finished = true
        PQfinish(handle)
    }

    /// `PQconnectdbParams` with the URL expanded as `dbname` and the password as its own keyword, so it is never part of
    /// a string that could be logged. https://www.postgresql.org/docs/15/libpq-connect.html
    private static func connect(_ s: PostgresSettings) throws -> OpaquePointer {
        var keys = ["dbname", "client_encoding", "application_name", "connect_timeout"]
        var values = [s.url, "UTF8", "loa/\(s.node)", "10"]
        if let p = s.password { keys.append("password"); values.append(p) }
        let conn = withCStrings(keys) { k in withCStrings(values) { v in PQconnectdbParams(k, v, 1) } }
        guard let conn else { throw PostgresError(sqlState: "", message: "out of memory", context: "connecting", connectionLost: true) }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(conn)
            throw PostgresError(sqlState: "", message: message, context: "connecting to \(s.redactedURL)", connectionLost: true)
        }
        return conn
    }

    /// Quiet notices (libpq prints them to stderr), the store's schema on the search path, and a plan made for each
    /// execution's own values: the prepared statements over arrays (`unnest(?::bigint[])`) otherwise fall to a generic
    /// plan after five runs that cannot know the array's length, and the 100-row acceptance UPDATE then took 47-89 ms
    /// instead of a few (the server's `log_min_duration_statement`); `Tests/Benchmarks/postgres.sh 5000 8 1` went from
    /// 9,124 to 18,727 recipients/s with it (before the acceptance UPDATE lost its join, see `recordAccepted`).
    private func setUp() throws {
        try exec("SET client_min_messages = warning")
        try exec("SET plan_cache_mode = force_custom_plan")
        // Under a transaction lock: two daemons starting at once on a new schema (`systemctl start loa@n1 loa@n2`) would
        // otherwise both try to create it, and one fail on pg_namespace's unique index. One implicit transaction.
        try exec("SELECT pg_advisory_xact_lock(hashtext('loa/create-schema')); CREATE SCHEMA IF NOT EXISTS \(Self.identifier(settings.schema))")
        try exec("SET search_path TO \(Self.identifier(settings.schema))")
    }

    /// Whether libpq considers the connection usable.
    var isOK: Bool { !finished && PQstatus(handle) == CONNECTION_OK }

    /// Opens the connection again (`PQreset`, then a new one if that fails) and forgets the prepared statements.
    func reconnect() throws {
        guard !finished else { throw PostgresError(sqlState: "", message: "the connection was closed", context: "reconnecting", connectionLost: true) }
        statements.removeAll()
        generation += 1
        PQreset(handle)
        if PQstatus(handle) != CONNECTION_OK {
            let fresh = try Self.connect(settings)
            PQfinish(handle)
            handle = fresh
        }
        try setUp()
    }

    /// A quoted identifier (a schema's name from the config or a test).
    static func identifier(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    /// Runs SQL without parameters (one or more statements: migrations, BEGIN, COMMIT). `PQexec`.
    func exec(_ sql: String) throws {
        try requireOpen()
        guard let res = PQexec(handle, sql) else { throw failure(nil, "executing \(sql.prefix(60))") }
        defer { PQclear(res) }
        try check(res, "executing \(sql.prefix(60))")
    }

    func requireOpen() throws {
        if finished { throw PostgresError(sqlState: "", message: "the connection was closed", context: "using it", connectionLost: true) }
    }

    /// The statement for `sql`, prepared on first use.
    func prepare(_ sql: String) throws -> PGStatement {
        if let s = statements[sql] { return s }
        try requireOpen()
        let (text, count) = Self.numberPlaceholders(sql)
        nextName += 1
        let name = "loa_\(nextName)"
        guard let res = PQprepare(handle, name, text, 0, nil) else { throw failure(nil, "preparing \(sql.prefix(80))") }
        defer { PQclear(res) }
        try check(res, "preparing \(sql.prefix(80))")
        let s = PGStatement(name: name, sql: sql, parameterCount: count, connection: self)
        statements[sql] = s
        return s
    }

    /// `?` → `$1…$n`, outside quoted literals and identifiers; and how many there were.
    static func numberPlaceholders(_ sql: String) -> (String, Int) {
        var out = ""
        out.reserveCapacity(sql.utf8.count + 16)
        var n = 0
        var quote: Character?
        for ch in sql {
            if let q = quote {
                if ch == q { quote = nil }
                out.append(ch)
            } else if ch == "'" || ch == "\"" {
                quote = ch
                out.append(ch)
            } else if ch == "?" {
                n += 1
                out += "$\(n)"
            } else {
                out.append(ch)
            }
        }
        return (out, n)
    }

    /// Throws unless `res` is a success; a misuse (a statement libpq cannot send) traps as SQLite's misuse does.
    func check(_ res: OpaquePointer, _ context: @autoclosure () -> String) throws {
        switch PQresultStatus(res) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY: return
        default: throw failure(res, context())
        }
    }

    func failure(_ res: OpaquePointer?, _ context: String) -> PostgresError {
        var state = ""
        var message = ""
        if let res {
            if let s = PQresultErrorField(res, Int32(UInt8(ascii: "C"))) { state = String(cString: s) }
            if let m = PQresultErrorField(res, Int32(UInt8(ascii: "M"))) { message = String(cString: m) }
        }
        if message.isEmpty { message = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines) }
        // Class 08: connection exception; 57P01-57P03: the server is shutting down or not yet up.
        let lost = PQstatus(handle) != CONNECTION_OK || state.hasPrefix("08") || state.hasPrefix("57P")
        return PostgresError(sqlState: state, message: message, context: context, connectionLost: lost)
    }
}

@available(*, unavailable)
extension PGConnection: Sendable {}

/// A prepared statement of one ``PGConnection``. `bind` checks the number of values against the statement's
/// placeholders (issue 18: a missing value must not bind NULL silently), and result columns are read by name.
final class PGStatement {
    let name: String
    let sql: String
    let parameterCount: Int
    unowned let connection: PGConnection
    /// The connection generation it was prepared in.
    let generation: Int
    /// Column name (a literal's address) → index, learned from the first result.
    fileprivate var columnsByLiteral: [(name: UnsafeRawPointer, index: Int32)] = []

    init(name: String, sql: String, parameterCount: Int, connection: PGConnection) {
        self.name = name
        self.sql = sql
        self.parameterCount = parameterCount
        self.connection = connection
        generation = connection.generation
    }

    /// Binds, runs and returns the rows the command changed (`PQcmdTuples`).
    @discardableResult
    func run(_ values: [SQLValue] = []) throws -> Int {
        let res = try execute(values)
        defer { PQclear(res) }
        return Int(String(cString: PQcmdTuples(res))) ?? 0
    }

    /// Binds, runs and calls `row` for each result row.
    func query(_ values: [SQLValue] = [], _ row: (PGRow) throws -> Void) throws {
        let res = try execute(values)
        defer { PQclear(res) }
        let n = PQntuples(res)
        for i in 0..<n { try row(PGRow(statement: self, result: res, row: i)) }
    }

    /// `PQexecPrepared` with the values as text parameters (https://www.postgresql.org/docs/15/libpq-exec.html).
    private func execute(_ values: [SQLValue]) throws -> OpaquePointer {
        guard values.count == parameterCount else {
            throw PostgresError(sqlState: "", message: "\(values.count) values bound to \(parameterCount) parameters",
                                context: "binding \(sql)", connectionLost: false)
        }
        try connection.requireOpen()
        precondition(generation == connection.generation, "a statement prepared before a reconnect: \(sql)")
        // One buffer of NUL-terminated texts; a parameter's pointer is its offset in it (nil: NULL).
        var buffer: [UInt8] = []
        var offsets: [Int?] = []
        offsets.reserveCapacity(values.count)
        for v in values {
            switch v {
            case .null: offsets.append(nil); continue
            case .int(let n): offsets.append(buffer.count); buffer += Array(String(n).utf8)
            case .double(let d): offsets.append(buffer.count); buffer += Array(String(d).utf8)
            case .text(let s):
                offsets.append(buffer.count)
                // PostgreSQL text holds no NUL: a raw input value that has one keeps it visible as U+2400 (␀).
                if s.utf8.contains(0) { buffer += Array(s.replacingOccurrences(of: "\0", with: "\u{2400}").utf8) } else { buffer += Array(s.utf8) }
            }
            buffer.append(0)
        }
        let res: OpaquePointer? = buffer.withUnsafeBufferPointer { base in
            base.withMemoryRebound(to: CChar.self) { chars in
                let pointers: [UnsafePointer<CChar>?] = offsets.map { $0.map { chars.baseAddress! + $0 } }
                return PQexecPrepared(connection.handle, name, Int32(values.count), pointers, nil, nil, 0)
            }
        }
        guard let res else { throw connection.failure(nil, "running \(sql.prefix(80))") }
        do {
            try connection.check(res, "running \(sql.prefix(120))")
        } catch {
            PQclear(res)
            throw error
        }
        return res
    }

    /// The index of the result column `name`; a name the statement does not return is a programming error and traps.
    fileprivate func columnIndex(_ name: StaticString, _ res: OpaquePointer) -> Int32 {
        let key = UnsafeRawPointer(name.utf8Start)
        for entry in columnsByLiteral where entry.name == key { return entry.index }
        let index = PQfnumber(res, "\"\(name.description)\"")
        guard index >= 0 else {
            let names = (0..<PQnfields(res)).map { String(cString: PQfname(res, $0)) }
            fatalError("column \(name) is not among the results of \(sql) (\(names.joined(separator: ", ")))")
        }
        columnsByLiteral.append((key, index))
        return index
    }
}

@available(*, unavailable)
extension PGStatement: Sendable {}

/// One result row inside ``PGStatement/query(_:_:)``, read by column name; valid only during that call.
struct PGRow {
    let statement: PGStatement
    let result: OpaquePointer
    let row: Int32

    func isNull(_ column: StaticString) -> Bool { PQgetisnull(result, row, statement.columnIndex(column, result)) == 1 }

    func text(_ column: StaticString) -> String? {
        let c = statement.columnIndex(column, result)
        guard PQgetisnull(result, row, c) == 0, let p = PQgetvalue(result, row, c) else { return nil }
        return String(cString: p)
    }

    /// An integer column (text format); a boolean reads 1 or 0, NULL reads 0 as in SQLite.
    func int(_ column: StaticString) -> Int64 {
        let c = statement.columnIndex(column, result)
        guard PQgetisnull(result, row, c) == 0, let p = PQgetvalue(result, row, c) else { return 0 }
        return UnsafeRawPointer(p).withMemoryRebound(to: UInt8.self, capacity: Int(PQgetlength(result, row, c)) + 1) { u in
            switch u[0] {
            case UInt8(ascii: "t"): return 1
            case UInt8(ascii: "f"): return 0
            default:
                var i = 0
                var negative = false
                if u[0] == UInt8(ascii: "-") { negative = true; i = 1 }
                var v: Int64 = 0
                while u[i] >= 48 && u[i] <= 57 { v = v &* 10 &+ Int64(u[i] - 48); i += 1 }
                return negative ? -v : v
            }
        }
    }

    func double(_ column: StaticString) -> Double { Double(text(column) ?? "") ?? 0 }
}

@available(*, unavailable)
extension PGRow: Sendable {}

/// Calls `body` with a NULL-terminated array of C strings.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let dup = strings.map { strdup($0) }
    defer { dup.forEach { free($0) } }
    return body(dup.map { UnsafePointer($0) } + [nil])
}

extension PGConnection {
    /// Waits up to `timeoutMillis` for input, then returns the payloads of the notifications that came
    /// (`PQconsumeInput`, `PQnotifies`: https://www.postgresql.org/docs/15/libpq-notify.html).
    func awaitPayloads(timeoutMillis: Int32) -> [String] {
        guard isOK else { return [] }
        var p = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, timeoutMillis) > 0, PQconsumeInput(handle) == 1 else { return [] }
        var payloads: [String] = []
        while let note = PQnotifies(handle) {
            payloads.append(String(cString: note.pointee.extra))
            PQfreemem(note)
        }
        return payloads
    }

    /// `LISTEN channel` on a connection of its own, on `worker`'s thread until it stops: each wake-up's payloads go to
    /// `heard` (at most every 250 ms when none came). A lost connection is opened again every second; `connected`
    /// says whether it had failed before (`again`), `failed` whether this is the first failure of a run of them.
    static func listen(_ channel: String, settings: PostgresSettings, on worker: Worker,
                       connected: (_ again: Bool) -> Void, failed: (_ error: any Error, _ first: Bool) -> Void,
                       heard: ([String]) -> Void) {
        var db: PGConnection?
        var failing = false
        while !worker.isStopping {
            guard let conn = db, conn.isOK else {
                db?.finish()
                db = nil
                do {
                    let conn = try PGConnection(settings: settings)
                    try conn.exec("LISTEN \(channel)")
                    db = conn
                    connected(failing)
                    failing = false
                } catch {
                    failed(error, !failing)
                    failing = true
                    _ = worker.wait(until: .after(seconds: 1))
                }
                continue
            }
            heard(conn.awaitPayloads(timeoutMillis: 250))
        }
        db?.finish()
    }
}
