import Foundation
import LoaCore
import LoaDaemon
import LoaStore

/// The ingest benchmark behind `Tests/Benchmarks/ingest.sh`: one phase per process, so each reports its own peak RSS.
public enum IngestBenchmark {
    /// Writes `rows` segment rows the way planners' exports look: six written forms, Vietnamese names,
    /// 1% duplicates and 0.5% invalid numbers. Deterministic.
    public static func generate(path: String, rows: Int) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
              let out = FileHandle(forWritingAtPath: path) else { throw StoreError.io("cannot write \(path)") }
        defer { try? out.close() }
        let prefixes = ["091", "096", "032", "070", "083", "088", "086", "079", "056", "059"]
        let names = ["Nguyễn Thị Hà", "Trần Văn Đức", "Lê Hoàng Yến", "Phạm Quốc Việt", "Võ Minh Châu"]
        var buffer = "phone,name,ward\n"
        var state: UInt64 = 88172645463325252
        func rand() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
        for i in 0..<rows {
            let r = rand()
            var n = prefixes[Int(r % 10)] + String(format: "%07d", i % 10_000_000)
            if r % 100 == 7 && i > 0 { n = prefixes[Int((r / 10) % 10)] + String(format: "%07d", (i - 1) % 10_000_000) }  // maybe a duplicate
            if r % 200 == 13 { n = "0283" + String(format: "%06d", i % 1_000_000) }                                     // fixed line
            let written: String
            switch (r >> 8) % 6 {
            case 0: written = n
            case 1: written = "+84 " + n.dropFirst()
            case 2: written = "84" + n.dropFirst()
            case 3: written = n.prefix(4) + " " + n.dropFirst(4).prefix(3) + " " + n.suffix(3)
            case 4: written = n.prefix(4) + "." + n.dropFirst(4).prefix(3) + "." + n.suffix(3)
            default: written = "(+84) " + n.dropFirst().prefix(2) + "-" + n.dropFirst(3).prefix(3) + "-" + n.suffix(4)
            }
            buffer += "\"\(written)\",\(names[Int((r >> 16) % 5)]),Phường \((r >> 24) % 20 + 1)\n"
            if buffer.utf8.count > 1 << 20 {
                out.write(Data(buffer.utf8))
                buffer = ""
            }
        }
        out.write(Data(buffer.utf8))
    }

    public struct Result: Sendable {
        public var rows: Int
        public var seconds: Double
        public var peakRSSKiB: Int
        public var detail: String
    }

    /// Loa's path: read, normalize, route, render, encode, deduplicate and store through the writer thread.
    public static func loa(csv: String, directory: String) throws -> Result {
        let store = try Store(directory: directory, log: DeliveryLogFile(path: directory + "/delivery.log"), clock: SystemTimeSource())
        defer { store.close() }
        let template = "Kính gửi {{name|bạn}} ({{ward}}): mời góp ý dự thảo trên VNeID trước 30/11."
        let sub = CampaignSubmission(id: "bench", name: nil, sender: "LOA", templates: [.init(name: "t", text: template)],
                                     segments: [.init(name: "s.csv", phoneColumn: "phone")], start: "2026-01-01T00:00:00Z",
                                     deadline: "2099-01-01T00:00:00Z", encoding: .auto, maxSegments: nil, allowedCountryCodes: [])
        // The deadline the submission states: `.max` is no time a submitted campaign can have (the API's feasibility
        // estimate overflowed on it).
        try store.createCampaign(sub, startAt: 0, deadlineAt: ISOTime.parse("2099-01-01T00:00:00Z")!)
        var counts = IngestCounts()
        let start = Date()
        let reader = SegmentReader(source: "s.csv", campaign: sub, templates: [try Template(name: "t", source: template)],
                                   phoneColumn: "phone", router: Router(defaultCarrier: "k")) { rows in
            counts.add(try store.ingest(campaign: "bench", rows: rows))
        }
        try streamFile(csv) { try reader.feed($0) }
        try reader.finish()
        try store.commitCampaign("bench")
        let seconds = Date().timeIntervalSince(start)
        return Result(rows: Int(counts.rows), seconds: seconds, peakRSSKiB: peakRSS(),
                      detail: "\(counts.accepted) accepted, \(counts.duplicates) duplicates, \(counts.rejected) rejected")
    }

    /// The baseline: the same rows, split on commas with no normalization, inserted raw into the same
    /// messages table (same indexes) with one prepared statement, 5,000 rows per transaction.
    public static func raw(csv: String, directory: String, bare: Bool = false) throws -> Result {
        let store = try Store(directory: directory, log: nil, clock: SystemTimeSource())
        defer { store.close() }
        var rows = 0
        let start = Date()
        var batch: [(String, String)] = []
        var pending = Data()
        var header = true
        func flush() throws {
            let b = batch
            try store.rawInsert(b, bare: bare)
            batch.removeAll(keepingCapacity: true)
        }
        try streamFile(csv) { chunk in
            pending.append(contentsOf: chunk)
            while let nl = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[pending.startIndex..<nl], as: UTF8.self)
                pending.removeSubrange(pending.startIndex...nl)
                if header { header = false; continue }
                let comma = line.firstIndex(of: ",") ?? line.endIndex
                batch.append((String(line[..<comma]), String(line[comma...])))
                rows += 1
                if batch.count == 5_000 { try flush() }
            }
        }
        try flush()
        return Result(rows: rows, seconds: Date().timeIntervalSince(start), peakRSSKiB: peakRSS(), detail: bare ? "raw prepared INSERT, table without indexes" : "raw prepared INSERT, same table and indexes")
    }

    /// The store's dispatch path alone: after ``loa(csv:directory:)`` has stored a campaign, claims `batch`
    /// messages and records each as accepted (with a gateway id), one transaction each, until none is left:
    /// what the writer thread costs per message, without HTTP. Returns the messages, the claim and record seconds,
    /// and the rows and transactions the store committed meanwhile (``Store/rowsWritten``).
    public static func cycle(directory: String, batch: Int) throws -> (messages: Int, claim: Double, record: Double, rows: Int64, transactions: Int64) {
        let store = try Store(directory: directory, log: DeliveryLogFile(path: directory + "/delivery.log"), clock: SystemTimeSource())
        defer { store.close() }
        let rows0 = store.rowsWritten, transactions0 = store.transactionsCommitted
        var n = 0
        var claimSeconds = 0.0, recordSeconds = 0.0
        while true {
            let t0 = Date()
            let claimed = try store.claim(campaign: "bench", carrier: "k", limit: batch, now: .max - 1)
            let t1 = Date()
            if claimed.isEmpty { break }
            try store.record(claimed.map { SendOutcome($0, result: .accepted(gatewayID: "g\($0.id)", detail: nil)) })
            recordSeconds += Date().timeIntervalSince(t1)
            claimSeconds += t1.timeIntervalSince(t0)
            n += claimed.count
        }
        return (n, claimSeconds, recordSeconds, store.rowsWritten - rows0, store.transactionsCommitted - transactions0)
    }

    /// VmHWM: the process's peak resident set.
    public static func peakRSS() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
}

/// A file's bytes, 256 KiB at a time.
func streamFile(_ path: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
    guard let fh = FileHandle(forReadingAtPath: path) else { throw StoreError.io("\(path): cannot open") }
    defer { try? fh.close() }
    while let chunk = try fh.read(upToCount: 256 * 1024), !chunk.isEmpty {
        try chunk.withUnsafeBytes { try body($0) }
    }
}
