/// The `process_*` metrics every Prometheus client library exports, read from Linux's `/proc` (proc(5)). The
/// parsing is here, pure and tested on fixed text; the daemon reads the files.
public struct ProcessStats: Sendable, Equatable {
    /// User and system CPU time, seconds.
    public var cpuSeconds: Double
    public var residentBytes: Int64
    public var virtualBytes: Int64
    /// When the process started, seconds since the epoch.
    public var startTimeSeconds: Double
    public var openFDs: Int64
    /// The soft limit on open files (`RLIMIT_NOFILE`); -1 when unlimited.
    public var maxFDs: Int64

    public init(cpuSeconds: Double, residentBytes: Int64, virtualBytes: Int64, startTimeSeconds: Double, openFDs: Int64, maxFDs: Int64) {
        self.cpuSeconds = cpuSeconds
        self.residentBytes = residentBytes
        self.virtualBytes = virtualBytes
        self.startTimeSeconds = startTimeSeconds
        self.openFDs = openFDs
        self.maxFDs = maxFDs
    }

    /// CPU seconds, resident and virtual bytes and the start time from `/proc/self/stat`; `bootTime` is `btime`
    /// of `/proc/stat`, `ticks` is `sysconf(_SC_CLK_TCK)`, `pageSize` `sysconf(_SC_PAGESIZE)`.
    ///
    /// The command name (field 2) is in parentheses and may hold spaces and parentheses itself: the fields are
    /// counted from after its last `)`. There, field 3 (`state`) is index 0, so `utime` (14) is 11, `stime` (15)
    /// 12, `starttime` (22, ticks after boot) 19, `vsize` (23, bytes) 20 and `rss` (24, pages) 21.
    public static func parse(stat: String, bootTime: Double, ticks: Double, pageSize: Int64)
        -> (cpuSeconds: Double, residentBytes: Int64, virtualBytes: Int64, startTimeSeconds: Double)? {
        guard let close = stat.lastIndex(of: ")"), ticks > 0 else { return nil }
        let f = stat[stat.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        guard f.count > 21, let utime = Double(f[11]), let stime = Double(f[12]), let start = Double(f[19]),
              let vsize = Int64(f[20]), let rss = Int64(f[21]) else { return nil }
        return ((utime + stime) / ticks, rss * pageSize, vsize, bootTime + start / ticks)
    }

    /// `btime` (the boot time, seconds since the epoch) from `/proc/stat`.
    public static func bootTime(procStat: String) -> Double? {
        for line in procStat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: " "))
        }
        return nil
    }

    /// The soft limit of `Max open files` in `/proc/self/limits` (-1: unlimited).
    public static func maxOpenFiles(limits: String) -> Int64? {
        for line in limits.split(separator: "\n") where line.hasPrefix("Max open files") {
            let soft = line.dropFirst("Max open files".count).split(separator: " ").first
            if soft == "unlimited" { return -1 }
            return soft.flatMap { Int64($0) }
        }
        return nil
    }
}

private extension Substring {
    func trimmingCharacters(in c: Character) -> Substring {
        var s = self
        while s.first == c { s = s.dropFirst() }
        while s.last == c { s = s.dropLast() }
        return s
    }
}
