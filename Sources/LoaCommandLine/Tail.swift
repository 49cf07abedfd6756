import Foundation
import LoaDaemon
import LoaSim
import LoaCore

/// `loa tail`: prints the delivery log, optionally following it across rotation.
struct LogTailer {
    struct Filter {
        var campaign: String?
        var carrier: String?
        var event: String?
        var status: String?
        var since: UnixMillis?

        func matches(_ o: [String: Any]) -> Bool {
            if let campaign, o["campaign"] as? String != campaign { return false }
            if let carrier, o["carrier"] as? String != carrier { return false }
            if let event, o["event"] as? String != event { return false }
            if let status, o["status"] as? String != status { return false }
            if let since, let t = (o["time"] as? String).flatMap(ISOTime.parse), t < since { return false }
            return true
        }
    }

    let path: String
    let filter: Filter
    let json: Bool
    let follow: Bool
    let last: Int?
    /// Aligned columns and a color per status (a terminal).
    var color = false

    func run() -> Int32 {
        var fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 && !follow {
            LoaCLI.printError("tail: cannot open \(path): \(String(cString: strerror(errno)))")
            return 1
        }
        var pending = [UInt8]()
        var inode: ino_t = 0
        var lines = LastLines(limit: last ?? 0)  // for -n
        var first = true
        while true {
            if fd < 0 {
                fd = open(path, O_RDONLY | O_CLOEXEC)
                if fd < 0 { usleep(200_000); continue }
            }
            var st = stat()
            fstat(fd, &st)
            inode = st.st_ino
            var buf = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n = read(fd, &buf, buf.count)
                if n <= 0 { break }
                pending.append(contentsOf: buf[0..<n])
                while let nl = pending.firstIndex(of: 10) {
                    let line = String(decoding: pending[0..<nl], as: UTF8.self)
                    pending.removeSubrange(0...nl)
                    if first, last != nil {
                        guard matches(line) else { continue }
                        lines.append(line)
                    } else {
                        emit(line)
                    }
                }
            }
            if first {
                for l in lines.lines { emit(l) }
                lines = LastLines(limit: 0)
                first = false
            }
            flushOutput()
            guard follow else { break }
            // Rotation: the path now names another file (or none); finish the old one, then reopen.
            var now = stat()
            if stat(path, &now) != 0 || now.st_ino != inode {
                close(fd)
                fd = -1
                pending.removeAll()
                continue
            }
            usleep(200_000)
        }
        if fd >= 0 { close(fd) }
        flushOutput()
        return 0
    }

    private let out = OutputBuffer()

    private func flushOutput() { out.flush() }

    private func say(_ s: String) { out.append(s) }

    private func matches(_ line: String) -> Bool {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return false }
        return filter.matches(obj)
    }

    private func emit(_ line: String) {
        guard !line.isEmpty else { return }
        guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return }
        guard filter.matches(obj) else { return }
        if json { say(LoaCLI.terminalJSON(line)); return }
        say(LogTailer.readable(obj, color: color))
    }

    /// One event as a line. Every value is shown with its control characters escaped (``TerminalText``): details
    /// hold gateway answers and receipt fields, which could otherwise move the cursor, retitle the window or
    /// print a line of their own.
    static func readable(_ o: [String: Any], color: Bool = false) -> String {
        func s(_ k: String) -> String { o[k].map { TerminalText.sanitize("\($0)") } ?? "-" }
        if color {
            let status = s("status")
            let code: String
            switch status {
            case "delivered": code = "32"
            case "failed", "rejected": code = "31"
            case "expired", "unknown", "cancelled", "suppressed": code = "33"
            default: code = "36"
            }
            func col(_ v: String, _ w: Int) -> String { v.count >= w ? v + " " : v + String(repeating: " ", count: w - v.count) }
            var line = col(s("time"), 25) + col(s("campaign"), 22) + col("#" + s("message"), 10) + col(s("recipient"), 14) + col(s("carrier"), 12)
            line += "\u{1B}[\(code)m" + col(s("event") + "→" + status, 24) + "\u{1B}[0m"
            if o["detail"] != nil { line += s("detail") }
            return line
        }
        var line = "\(s("time"))  \(s("campaign"))  #\(s("message"))  \(s("recipient"))  \(s("carrier"))  \(s("event"))→\(s("status"))"
        if let a = o["attempt"] as? Int, a > 0 { line += "  try \(a)" }
        if o["gateway_id"] != nil { line += "  gw=\(s("gateway_id"))" }
        if o["detail"] != nil { line += "  \(s("detail"))" }
        return line
    }
}

/// Lines for stdout, written in large blocks (the log can be millions of lines).
final class OutputBuffer {
    private var buffer = [UInt8]()

    func append(_ line: String) {
        buffer.append(contentsOf: line.utf8)
        buffer.append(10)
        if buffer.count > 1 << 20 { flush() }
    }

    func flush() {
        guard !buffer.isEmpty else { return }
        FileHandle.standardOutput.write(Data(buffer))
        buffer.removeAll(keepingCapacity: true)
    }
}

/// The last `limit` lines seen (`loa tail -n`, `loa tail --cluster -n`), in a ring: each line costs the same however
/// large `limit` is (an array trimmed with `removeFirst` moved every kept line for each new one). It grows with the
/// lines it holds, so a large `limit` costs nothing up front.
struct LastLines {
    let limit: Int
    private var ring: [String] = []
    /// Where the oldest line is once the ring is full.
    private var head = 0

    init(limit: Int) { self.limit = max(0, limit) }

    mutating func append(_ line: String) {
        guard limit > 0 else { return }
        if ring.count < limit {
            ring.append(line)
        } else {
            ring[head] = line
            head = (head + 1) % limit
        }
    }

    /// Oldest first.
    var lines: [String] { Array(ring[head...] + ring[..<head]) }
}
