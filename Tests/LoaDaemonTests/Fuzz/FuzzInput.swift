/// A fuzz input read front to back: selector bytes first, then parts split at a separator.
///
/// Compiled into the test suite (``FuzzTests``) and into the libFuzzer build (Tests/Fuzz/run.sh).
struct FuzzInput {
    var bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The next byte, or 0 once the input is used up (so a short input still selects something).
    mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    /// Everything not yet taken.
    mutating func rest() -> [UInt8] {
        defer { position = bytes.count }
        return Array(bytes[min(position, bytes.count)...])
    }

    /// The bytes up to (not including) the next `separator`, which is consumed; the rest when there is none.
    mutating func upTo(_ separator: UInt8) -> [UInt8] {
        let start = min(position, bytes.count)
        if let end = bytes[start...].firstIndex(of: separator) {
            position = end + 1
            return Array(bytes[start..<end])
        }
        return rest()
    }
}

/// Bytes as text the way Loa's readers see untrusted bytes: invalid UTF-8 replaced.
func fuzzText(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
