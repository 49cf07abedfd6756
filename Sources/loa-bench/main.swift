import Foundation
import LoaDaemon

// loa-bench: the benchmark phases behind Tests/Benchmarks/*.sh (one phase per process, for peak RSS).
//   loa-bench generate FILE ROWS
//   loa-bench ingest-loa FILE DIR
//   loa-bench ingest-raw FILE DIR     (same table and indexes)
//   loa-bench ingest-bare FILE DIR    (a table without indexes)
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
    default:
        fail("unknown phase \(args[1])")
    }
} catch {
    fail("loa-bench: \(error)")
}
