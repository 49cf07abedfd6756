import CSQLite
import Foundation

/// A failed SQLite call: the result code, SQLite's own message and what Loa was doing.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    public var code: Int32
    public var message: String
    public var context: String
    public var description: String { "sqlite error \(code) (\(message)) while \(context)" }
}

/// An open SQLite connection. Owned by exactly one thread at a time (the store's writer), hence not Sendable.
///
/// See https://www.sqlite.org/c3ref/open.html. Opened with `SQLITE_OPEN_NOMUTEX`: Loa never shares a
/// connection between threads, so SQLite's own per-connection mutex is pure cost.
final class Connection {
    let handle: OpaquePointer
    let path: String

    init(path: String, readOnly: Bool = false) throws {
        var db: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: rc, message: msg, context: "opening \(path)")
        }
        handle = db
        self.path = path
        sqlite3_busy_timeout(db, 5000)
        sqlite3_extended_result_codes(db, 1)
    }

    deinit { sqlite3_close_v2(handle) }

    /// Maps a result code to a thrown error; `SQLITE_MISUSE` is a programming error and traps.
    @discardableResult
    func check(_ rc: Int32, _ context: @autoclosure () -> String) throws -> Int32 {
        switch rc & 0xff {
        case SQLITE_OK, SQLITE_ROW, SQLITE_DONE: return rc
        case SQLITE_MISUSE: fatalError("SQLite misuse while \(context())")
        default: throw SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(handle)), context: context())
        }
    }

    /// Runs one or more statements without results.
    func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(err)
            throw SQLiteError(code: rc, message: msg, context: "executing \(sql.prefix(60))")
        }
    }

    func prepare(_ sql: String) throws -> Statement {
        var stmt: OpaquePointer?
        try check(sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil), "preparing \(sql.prefix(60))")
        return Statement(handle: stmt!, connection: self)
    }

    var changes: Int { Int(sqlite3_changes(handle)) }
    /// Rows inserted, updated or deleted since the connection opened. https://www.sqlite.org/c3ref/total_changes.html
    var totalChanges: Int64 { sqlite3_total_changes64(handle) }
    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// The closure behind the WAL hook, kept alive by this connection for as long as the hook is set.
    private var walCommit: WALCommit?

    /// After each commit, `body` gets the pages the write-ahead log holds; true has this connection checkpoint
    /// (PASSIVE) at once, as SQLite's automatic checkpoint would. Replaces that automatic checkpoint; nil removes
    /// the hook (and leaves no automatic checkpoint either). https://www.sqlite.org/c3ref/wal_hook.html
    func onWALCommit(_ body: ((Int32) -> Bool)?) {
        walCommit = body.map(WALCommit.init)
        if let walCommit {
            sqlite3_wal_hook(handle, walCommitHook, Unmanaged.passUnretained(walCommit).toOpaque())
        } else {
            sqlite3_wal_hook(handle, nil, nil)
        }
    }

    /// A PASSIVE checkpoint: copies what it can of the write-ahead log without waiting for anyone; `SQLITE_BUSY`
    /// at once while another connection runs one. https://www.sqlite.org/c3ref/wal_checkpoint_v2.html
    @discardableResult
    func checkpointPassive() -> Int32 {
        sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
    }
}

private final class WALCommit {
    let body: (Int32) -> Bool
    init(_ body: @escaping (Int32) -> Bool) { self.body = body }
}

private func walCommitHook(_ context: UnsafeMutableRawPointer?, _ db: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ pages: Int32) -> Int32 {
    guard let context, let db else { return SQLITE_OK }
    if Unmanaged<WALCommit>.fromOpaque(context).takeUnretainedValue().body(pages) {
        _ = sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
    }
    return SQLITE_OK
}

@available(*, unavailable)
extension Connection: Sendable {}

/// A prepared statement, reset after each use so it can be cached. See https://www.sqlite.org/c3ref/stmt.html.
///
/// Binding checks the number of values against the statement's parameters (a missing value would otherwise
/// bind NULL silently, an extra one fail with a bare `SQLITE_RANGE`), and result columns are read by name
/// through ``Row`` (GRDB's `Statement.swift` checks the same).
final class Statement {
    let handle: OpaquePointer
    unowned let connection: Connection
    /// The number of `?` parameters, from `sqlite3_bind_parameter_count`.
    let parameterCount: Int
    /// Column name → index, built on the first read by name (``columnIndex(_:)``): the literal's address and the
    /// index, searched by address (a handful of entries, no hashing per row).
    private var columnsByLiteral: [(name: UnsafeRawPointer, index: Int32)] = []
    /// The result columns' names, read once from `sqlite3_column_name`.
    private lazy var columnNames: [String] = (0..<sqlite3_column_count(handle)).map { String(cString: sqlite3_column_name(handle, $0)) }

    init(handle: OpaquePointer, connection: Connection) {
        self.handle = handle
        self.connection = connection
        parameterCount = Int(sqlite3_bind_parameter_count(handle))
    }

    deinit { sqlite3_finalize(handle) }

    /// The statement's SQL text, for errors.
    var sql: String { String(cString: sqlite3_sql(handle)) }

    /// Binds parameters by position (1-based); nil binds NULL. Throws, naming the SQL, when the number of values
    /// differs from the statement's parameters.
    func bind(_ values: [SQLValue]) throws {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        guard values.count == parameterCount else {
            throw SQLiteError(code: SQLITE_RANGE, message: "\(values.count) values bound to \(parameterCount) parameters",
                              context: "binding \(sql)")
        }
        for (i, v) in values.enumerated() {
            let idx = Int32(i + 1)
            let rc: Int32
            switch v {
            case .null: rc = sqlite3_bind_null(handle, idx)
            case .int(let n): rc = sqlite3_bind_int64(handle, idx, n)
            case .double(let d): rc = sqlite3_bind_double(handle, idx, d)
            // The length in bytes, not -1: with -1 SQLite stops at the first NUL and the rest of the value is lost.
            case .text(let s): rc = sqlite3_bind_text(handle, idx, s, Int32(clamping: s.utf8.count), csqlite_transient())
            }
            try connection.check(rc, "binding parameter \(idx)")
        }
    }

    /// Steps once; true while a row is available.
    func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        sqlite3_reset(handle)
        try connection.check(rc, "stepping \(sql.prefix(60))")
        return false
    }

    /// Binds, runs to completion and resets.
    func run(_ values: [SQLValue] = []) throws {
        try bind(values)
        while try step() {}
        sqlite3_reset(handle)
    }

    /// Binds and calls `row` for each result row.
    func query(_ values: [SQLValue] = [], _ row: (Row) throws -> Void) throws {
        try bind(values)
        defer { sqlite3_reset(handle) }
        let current = Row(statement: self)
        while try step() { try row(current) }
    }

    /// The index of the result column named `name` (its `AS` alias, or the column's own name), looked up once per
    /// statement and call site. A name the statement does not return, or returns twice, is a programming error
    /// and traps, naming the SQL.
    func columnIndex(_ name: StaticString) -> Int32 {
        let key: UnsafeRawPointer? = name.hasPointerRepresentation ? UnsafeRawPointer(name.utf8Start) : nil
        if let key { for entry in columnsByLiteral where entry.name == key { return entry.index } }
        let text = name.description
        let matches = columnNames.indices.filter { columnNames[$0] == text }
        guard matches.count == 1 else {
            fatalError("column \(text) is \(matches.isEmpty ? "not among" : "twice in") the results of \(sql) (\(columnNames.joined(separator: ", ")))")
        }
        let index = Int32(matches[0])
        if let key { columnsByLiteral.append((key, index)) }
        return index
    }
}

/// The current result row of a ``Statement`` inside ``Statement/query(_:_:)``: valid only during that call.
///
/// Columns are read by name (`row.int("attempts")`, `row.text("phone")`, `row.isNull("sent_at")`): the name
/// is the column's `AS` alias or its own name, so a reordered SELECT cannot shift a value into the wrong field.
/// Positional reads remain for single-value results of aggregates (`SELECT COUNT(*) ...`).
struct Row {
    let statement: Statement
    private var handle: OpaquePointer { statement.handle }

    func int(_ column: StaticString) -> Int64 { sqlite3_column_int64(handle, statement.columnIndex(column)) }
    func double(_ column: StaticString) -> Double { sqlite3_column_double(handle, statement.columnIndex(column)) }
    func isNull(_ column: StaticString) -> Bool { sqlite3_column_type(handle, statement.columnIndex(column)) == SQLITE_NULL }
    func text(_ column: StaticString) -> String? { text(at: statement.columnIndex(column)) }

    func int(_ col: Int32) -> Int64 { sqlite3_column_int64(handle, col) }
    func double(_ col: Int32) -> Double { sqlite3_column_double(handle, col) }
    func isNull(_ col: Int32) -> Bool { sqlite3_column_type(handle, col) == SQLITE_NULL }
    func text(_ col: Int32) -> String? { text(at: col) }

    private func text(at col: Int32) -> String? {
        guard let p = sqlite3_column_text(handle, col) else { return nil }
        // By its length, as bound: a value may hold a NUL (a refused row's raw phone value keeps it).
        return String(decoding: UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(handle, col))), as: UTF8.self)
    }
}

@available(*, unavailable)
extension Row: Sendable {}

@available(*, unavailable)
extension Statement: Sendable {}

/// A value to bind.
enum SQLValue {
    case null
    case int(Int64)
    case double(Double)
    case text(String)

    static func opt(_ s: String?) -> SQLValue { s.map { .text($0) } ?? .null }
    static func opt(_ n: Int64?) -> SQLValue { n.map { .int($0) } ?? .null }
}
