import Foundation

/// Reads the delivery log as it is written, from a place given by a line's `seq`, following it across rotation
/// (the path names a new file: the old one is read to its end first, then the new one from its start): the
/// engine of the live log (`GET /api/v1/log/stream`).
///
/// Memory is bounded by what one ``read(limit:)`` asks for: the backlog of a reader that falls behind stays in
/// the file, and ``lag`` says how far behind it is. Not thread-safe: one reader at a time.
///
/// Finding a `seq` costs a binary search over the file (`seq` grows with every line), a few reads of 64 KiB,
/// however long the file.
public final class DeliveryLogCursor {
    public let path: String
    private var fd: Int32 = -1
    private var inode: ino_t = 0
    private var offset: Int64 = 0
    private var partial: [UInt8] = []
    /// When the reader asked to resume after a `seq` the current file no longer holds (rotated away): the seqs
    /// between, which this file cannot give. Set by the initializer.
    public private(set) var gap: ClosedRange<Int64>?

    /// Opens the log at its end (`after` nil: only lines written from now on), or just after the line whose
    /// `seq` is `after`. A log that does not exist yet is waited for: its lines are read from its start.
    public init(path: String, after seq: Int64?) {
        self.path = path
        guard open(at: 0) else { return }
        let size = fileSize()
        if let seq {
            let (at, first) = offset(after: seq, size: size)
            offset = at
            if let first, first > seq + 1 { gap = (seq + 1)...(first - 1) }
        } else {
            offset = lineStart(atOrAfter: size, size: size)
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Bytes written to the current file that this cursor has not read yet.
    public var lag: Int64 { fd < 0 ? 0 : max(0, fileSize() - offset) }

    /// The whole lines written since the last read, up to about `limit` bytes (at least one line), each without
    /// its newline; empty when there are none now. At the end of a file that the path no longer names, moves
    /// on to the new file.
    public func read(limit: Int) -> [[UInt8]] {
        if fd < 0 && !open(at: 0) { return [] }
        var lines: [[UInt8]] = []
        var taken = 0
        var buffer = [UInt8](repeating: 0, count: min(max(limit, 4096), 256 * 1024))
        while taken < limit {
            let size = fileSize()
            if size < offset {
                // Cut back (the lines of a transaction that did not commit): go on from the new end.
                offset = size
                partial.removeAll()
            }
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            if n <= 0 {
                if lines.isEmpty && partial.isEmpty && rotated() { continue }
                break
            }
            offset += Int64(n)
            var start = 0
            for i in 0..<n where buffer[i] == 10 {
                var line = partial
                line.append(contentsOf: buffer[start..<i])
                partial.removeAll(keepingCapacity: true)
                if !line.isEmpty { lines.append(line); taken += line.count + 1 }
                start = i + 1
            }
            partial.append(contentsOf: buffer[start..<n])
        }
        return lines
    }

    /// The `seq` of a line, read without a full JSON parse.
    public static func seq(of line: some Collection<UInt8>) -> Int64? { DeliveryLogFile.seq(in: line) }

    // MARK: - Files

    /// True when the path names another file than the one open (rotation); that one is then open at its start.
    private func rotated() -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, st.st_ino != inode else { return false }
        close(fd)
        fd = -1
        partial.removeAll()
        return open(at: 0)
    }

    private func open(at position: Int64) -> Bool {
        let newFD = Foundation.open(path, O_RDONLY | O_CLOEXEC)
        guard newFD >= 0 else { return false }
        var st = stat()
        fstat(newFD, &st)
        fd = newFD
        inode = st.st_ino
        offset = position
        return true
    }

    private func fileSize() -> Int64 {
        var st = stat()
        return fstat(fd, &st) == 0 ? Int64(st.st_size) : 0
    }

    /// The start of the first line at or after `position` (the file's size when none begins there).
    private func lineStart(atOrAfter position: Int64, size: Int64) -> Int64 {
        if position <= 0 { return 0 }
        var at = position - 1  // a line starts at `position` when the byte before it ends one
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while at < size {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(at)) }
            guard n > 0 else { break }
            if let nl = buffer[0..<n].firstIndex(of: 10) { return at + Int64(nl) + 1 }
            at += Int64(n)
        }
        return size
    }

    /// The whole line starting at `start` (nil at the end), read in windows of 64 KiB.
    private func line(at start: Int64, size: Int64) -> [UInt8]? {
        var out: [UInt8] = []
        var at = start
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while at < size {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(at)) }
            guard n > 0 else { break }
            if let nl = buffer[0..<n].firstIndex(of: 10) { out.append(contentsOf: buffer[0..<nl]); return out }
            out.append(contentsOf: buffer[0..<n])
            at += Int64(n)
        }
        return nil  // no newline: not a whole line yet
    }

    /// Where the first line with a `seq` above `seq` starts (the file's size when there is none yet), and the
    /// file's first `seq`. Binary search over line starts: `seq` grows line by line.
    private func offset(after seq: Int64, size: Int64) -> (Int64, Int64?) {
        let first = line(at: 0, size: size).flatMap(Self.seq(of:))
        var lo: Int64 = 0  // a line start whose seq is <= `seq` (or the file's start)
        var hi = size      // a line start whose seq is > `seq` (or the end)
        while hi - lo > 64 * 1024 {
            let mid = lineStart(atOrAfter: lo + (hi - lo) / 2, size: size)
            if mid >= hi { break }  // no line starts in the upper half: the scan below walks it
            guard let l = line(at: mid, size: size), let s = Self.seq(of: l) else { hi = mid; continue }
            if s <= seq { lo = mid } else { hi = mid }
        }
        var at = lo
        while at < hi, let l = line(at: at, size: size) {
            if let s = Self.seq(of: l), s > seq { return (at, first) }
            at += Int64(l.count) + 1
        }
        return (hi, first)
    }
}
