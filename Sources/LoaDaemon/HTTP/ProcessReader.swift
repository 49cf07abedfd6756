import Foundation
import LoaCore

/// Reads the `process_*` figures from `/proc` (proc(5)) for `/metrics`; ``ProcessStats`` parses them.
enum ProcessReader {
    /// The process's figures now, or nil where `/proc` is not there (not Linux, or not mounted).
    static func read() -> ProcessStats? {
        guard let stat = text("/proc/self/stat"), let boot = text("/proc/stat").flatMap(ProcessStats.bootTime(procStat:)),
              let p = ProcessStats.parse(stat: stat, bootTime: boot, ticks: Double(sysconf(Int32(_SC_CLK_TCK))),
                                         pageSize: Int64(sysconf(Int32(_SC_PAGESIZE)))) else { return nil }
        // The directory's own descriptor, open while it is listed, is not counted.
        let fds = Int64(max(0, ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.count ?? 1) - 1))
        let maxFDs = text("/proc/self/limits").flatMap(ProcessStats.maxOpenFiles(limits:)) ?? -1
        return ProcessStats(cpuSeconds: p.cpuSeconds, residentBytes: p.residentBytes, virtualBytes: p.virtualBytes,
                            startTimeSeconds: p.startTimeSeconds, openFDs: fds, maxFDs: maxFDs)
    }

    /// A `/proc` file's text, read to its end with read(2): these files say their size is 0.
    static func text(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        // Bounded: /proc/stat on a machine with many CPUs is tens of kilobytes.
        while out.count < 1 << 20 {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
