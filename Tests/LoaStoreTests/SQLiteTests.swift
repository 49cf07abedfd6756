import Foundation
import Testing
@testable import LoaStore

/// SQLite-specific: the statement wrapper's checks and its reads by column name.
@Suite struct SQLiteStatementTests {
    private func connection(_ dir: TempDir) throws -> Connection {
        let db = try Connection(path: dir.path + "/t.db")
        try db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, phone TEXT, attempts INTEGER, sent_at INTEGER, score REAL)")
        return db
    }

    @Test func bindingTooFewOrTooManyValuesThrowsNamingTheSQL() throws {
        let dir = TempDir()
        let db = try connection(dir)
        let insert = try db.prepare("INSERT INTO t(phone, attempts) VALUES(?, ?)")
        for values: [SQLValue] in [[.text("+84912345678")], [.text("+84912345678"), .int(1), .int(2)], []] {
            let error = #expect(throws: SQLiteError.self) { try insert.run(values) }
            #expect(error?.context.contains("INSERT INTO t(phone, attempts) VALUES(?, ?)") == true)
            #expect(error?.message == "\(values.count) values bound to 2 parameters")
        }
        let select = try db.prepare("SELECT COUNT(*) AS n FROM t")
        #expect(throws: SQLiteError.self) { try select.query([.int(1)]) { _ in } }
        var n: Int64 = -1
        try select.query { n = $0.int("n") }
        #expect(n == 0)  // nothing was inserted by the refused binds
        try insert.run([.text("+84912345678"), .int(3)])
        try select.query { n = $0.int("n") }
        #expect(n == 1)
    }

    @Test func columnsAreReadByNameWhateverTheirOrder() throws {
        let dir = TempDir()
        let db = try connection(dir)
        try db.prepare("INSERT INTO t(phone, attempts, sent_at, score) VALUES(?, ?, ?, ?)")
            .run([.text("+84912345678"), .int(3), .null, .double(0.5)])
        try db.prepare("INSERT INTO t(phone, attempts, sent_at, score) VALUES(?, ?, ?, ?)")
            .run([.text("+84987654321"), .int(1), .int(1_700_000_000_000), .double(2)])
        for sql in ["SELECT id, phone, attempts, sent_at, score FROM t ORDER BY id",
                    "SELECT score, sent_at, attempts, phone, id FROM t ORDER BY id",
                    "SELECT t.sent_at, t.phone AS phone, t.score, t.attempts, t.id FROM t ORDER BY id"] {
            let st = try db.prepare(sql)
            var rows: [String] = []
            // Twice through the same statement: the second pass reads the cached indexes.
            for _ in 0..<2 {
                rows.removeAll()
                try st.query { r in
                    rows.append("\(r.int("id")) \(r.text("phone") ?? "-") \(r.int("attempts")) "
                                + "\(r.isNull("sent_at") ? "null" : String(r.int("sent_at"))) \(r.double("score"))")
                }
                #expect(rows == ["1 +84912345678 3 null 0.5", "2 +84987654321 1 1700000000000 2.0"], "\(sql)")
            }
        }
    }
}
