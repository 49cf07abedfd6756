import Foundation
import LoaCarriers
import LoaCore
import LoaStore

// loa-bench: the benchmark phases behind Tests/Benchmarks/*.sh (one phase per process, for peak RSS).
//   loa-bench generate FILE ROWS
//   loa-bench ingest-loa FILE DIR
//   loa-bench ingest-raw FILE DIR     (same table and indexes)
//   loa-bench ingest-bare FILE DIR    (a table without indexes)
//   loa-bench cycle DIR BATCH         (after ingest-loa into DIR: claim + record every message, BATCH per transaction)
//   loa-bench send URL N IN_FLIGHT [GET|POST]  (the Kannel adapter and the curl engine alone: no store, no dispatcher)
let args = CommandLine.arguments
func fail(_ s: String) -> Never {
    FileHandle.standardError.write(Data((s + "\n").utf8))
    exit(2)
}
guard args.count >= 3 else { fail("usage: loa-bench generate FILE ROWS | ingest-loa FILE DIR | ingest-raw FILE DIR") }
do {
    switch args[1] {
    case "generate":
        guard args.count == 4, let n = Int(args[3]) else { fail("usage: loa-bench generate FILE ROWS") }
        try IngestBenchmark.generate(path: args[2], rows: n)
    case "ingest-loa", "ingest-raw", "ingest-bare":
        guard args.count == 4 else { fail("usage: loa-bench \(args[1]) FILE DIR") }
        let r = args[1] == "ingest-loa" ? try IngestBenchmark.loa(csv: args[2], directory: args[3])
                                        : try IngestBenchmark.raw(csv: args[2], directory: args[3], bare: args[1] == "ingest-bare")
        print("rows=\(r.rows) seconds=\(String(format: "%.3f", r.seconds)) rows_per_s=\(Int(Double(r.rows) / r.seconds)) peak_rss_kib=\(r.peakRSSKiB) detail=\"\(r.detail)\"")
    case "cycle":
        guard args.count == 4, let batch = Int(args[3]) else { fail("usage: loa-bench cycle DIR BATCH") }
        let r = try IngestBenchmark.cycle(directory: args[2], batch: batch)
        guard r.messages > 0 else { fail("loa-bench: no queued messages in \(args[2]) (a store cycles once; copy it before the run)") }
        let total = r.claim + r.record
        print("messages=\(r.messages) batch=\(batch) messages_per_s=\(Int(Double(r.messages) / total)) "
              + String(format: "claim_us_per_message=%.2f record_us_per_message=%.2f", r.claim / Double(r.messages) * 1e6, r.record / Double(r.messages) * 1e6)
              + " rows_written=\(r.rows) transactions=\(r.transactions)"
              + String(format: " rows_per_message=%.4f", Double(r.rows) / Double(r.messages)))
    case "send":
        guard args.count >= 5, let n = Int(args[3]), let inFlight = Int(args[4]) else { fail("usage: loa-bench send URL N IN_FLIGHT [GET|POST]") }
        let r = try SendBenchmark.run(url: args[2], count: n, inFlight: inFlight, post: args.count < 6 || args[5] == "POST")
        print("accepted=\(r.accepted) of=\(n) seconds=\(String(format: "%.2f", r.seconds)) messages_per_s=\(Int(Double(r.accepted) / r.seconds))")
    default:
        fail("unknown phase \(args[1])")
    }
} catch {
    fail("loa-bench: \(error)")
}
