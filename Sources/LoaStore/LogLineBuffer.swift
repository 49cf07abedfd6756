import Foundation
import LoaCore

/// The delivery-log lines of the writer's current transaction, written field by field into one growing byte
/// buffer and appended to the file with one `write` before COMMIT (``DeliveryLogFile/append(_:)``).
///
/// Why not ``DeliveryEvent/appendJSONLine(to:formattedTime:)`` into a `[UInt8]`: the writer formats two lines
/// per recipient (`sending`, `accepted`), and building a `DeliveryEvent` (six strings retained and released) and
/// growing an array call by call (a uniqueness and capacity check per piece, about twenty pieces a line) cost
/// more than the SQLite UPDATE's share of the recipient (`loa-bench cycle` under callgrind: 4,200 instructions
/// a line). Here a line is the same bytes, the same field order and the same escaping (``JSONText``: values that
/// need an escape go through it; the rest are copied whole), for about a quarter of that.
/// Used only on the store's writer thread.
final class LogLineBuffer {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Bytes written.
    private(set) var count = 0
    /// Lines written.
    var lines: Int { lineStarts.count }
    /// Where each line begins in ``bytes`` (the cluster's log stores each line as a row of its own).
    private(set) var lineStarts: [Int] = []
    /// Each line's campaign, kept only when ``keepsCampaigns`` (the cluster's log has a column for it).
    private(set) var campaigns: [String] = []
    var keepsCampaigns = false

    init(capacity: Int = 64 * 1024) {
        self.capacity = max(capacity, 256)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// The bytes written so far (valid until the next change).
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Cuts back to `count` bytes and `lines` lines (a job rolled back to its savepoint).
    func truncate(toCount count: Int, lines: Int) {
        precondition(count <= self.count && lines <= self.lines)
        self.count = count
        if keepsCampaigns { campaigns.removeLast(self.lines - lines) }
        lineStarts.removeLast(self.lines - lines)
    }

    /// Empties the buffer, keeping its storage.
    func removeAll() { truncate(toCount: 0, lines: 0) }

    /// Appends one line and its newline: the same bytes as ``DeliveryEvent/jsonLine()`` of an event with these
    /// fields (schema version 1, keys in the documented order, optional fields omitted when nil); `time` is the
    /// event's time as ``ISOTime/format(_:)`` writes it; `node` the writing daemon's node (PostgreSQL's, nil on SQLite).
    func appendLine(seq: Int64, node: String? = nil, time: UnsafeBufferPointer<UInt8>, campaign: String, message: Int64, recipient: String?,
                    carrier: String?, event: String, status: String, attempt: Int, gatewayID: String? = nil, detail: String? = nil) {
        lineStarts.append(count)
        if keepsCampaigns { campaigns.append(campaign) }
        raw("{\"v\":")
        int(Int64(DeliveryEvent.schemaVersion))
        raw(",\"seq\":")
        int(seq)
        if let node { raw(",\"node\":"); string(node) }
        raw(",\"time\":\"")
        copy(UnsafeRawPointer(time.baseAddress!), time.count)
        raw("\",\"campaign\":")
        string(campaign)
        raw(",\"message\":")
        int(message)
        if let recipient { raw(",\"recipient\":"); string(recipient) }
        if let carrier { raw(",\"carrier\":"); string(carrier) }
        raw(",\"event\":")
        string(event)
        raw(",\"status\":")
        string(status)
        raw(",\"attempt\":")
        int(Int64(attempt))
        if let gatewayID { raw(",\"gateway_id\":"); string(gatewayID) }
        if let detail { raw(",\"detail\":"); string(detail) }
        raw("}\n")
    }

    /// Room for `n` more bytes.
    @inline(__always)
    private func reserve(_ n: Int) {
        guard count + n > capacity else { return }
        var grown = capacity * 2
        while grown < count + n { grown *= 2 }
        let new = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
        new.update(from: base, count: count)
        base.deallocate()
        base = new
        capacity = grown
    }

    @inline(__always)
    private func copy(_ p: UnsafeRawPointer, _ n: Int) {
        reserve(n)
        UnsafeMutableRawPointer(base + count).copyMemory(from: p, byteCount: n)
        count += n
    }

    @inline(__always)
    private func raw(_ s: StaticString) { copy(UnsafeRawPointer(s.utf8Start), s.utf8CodeUnitCount) }

    /// A decimal integer.
    private func int(_ n: Int64) {
        reserve(20)
        if n < 0 { base[count] = UInt8(ascii: "-"); count += 1 }
        var v = n.magnitude
        var digits = 1
        var p: UInt64 = 10
        while digits < 20 && v >= p { digits += 1; p = p &* 10 }
        var i = count + digits
        repeat {
            i -= 1
            base[i] = UInt8(48 + v % 10)
            v /= 10
        } while v > 0
        count += digits
    }

    /// `s` as a JSON string: copied whole between quotes when it needs no escape, else escaped by ``JSONText``.
    private func string(_ s: String) {
        let done: Bool? = s.utf8.withContiguousStorageIfAvailable { u in
            guard JSONText.isPlain(u) else { return false }
            reserve(u.count + 2)
            base[count] = UInt8(ascii: "\"")
            if u.count > 0 { (base + count + 1).update(from: u.baseAddress!, count: u.count) }
            base[count + 1 + u.count] = UInt8(ascii: "\"")
            count += u.count + 2
            return true
        }
        guard done != true else { return }
        var escaped: [UInt8] = []
        JSONText.appendString(s, to: &escaped)
        escaped.withUnsafeBytes { copy($0.baseAddress!, $0.count) }
    }
}
