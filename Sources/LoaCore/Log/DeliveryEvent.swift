/// One line of the delivery log: a state change (or a receipt) of one message.
///
/// Schema version 1, one JSON object per line, keys always in this order:
/// `v, seq, node, time, campaign, message, recipient, carrier, event, status, attempt, gateway_id, detail`.
/// `seq` increases by one per line across the whole log and restarts never reuse it, so a reader can
/// tell a gap or a repeat. Optional fields are omitted rather than null. `node` is the daemon that wrote the line,
/// on the PostgreSQL store only (several daemons, each with its own log and its own `seq`: issue 21); on SQLite a
/// daemon is a cluster of one and the line has none.
public struct DeliveryEvent: Sendable, Equatable {
    public static let schemaVersion = 1

    public var seq: Int64
    /// The writing daemon's node (PostgreSQL), nil on SQLite.
    public var node: String?
    public var time: UnixMillis
    public var campaign: String
    public var message: Int64
    public var recipient: String?
    public var carrier: String?
    /// What happened: `queued`, `rejected`, `duplicate`, `sending`, `accepted`, `retry`, `failed`, `receipt`, `expired`, `unknown`, `cancelled`;
    /// `request-receipt` for an aggregate callback about a whole send request (`message` 0, no recipient).
    public var event: String
    /// The message's state after the event (``MessageState/name``).
    public var status: String
    public var attempt: Int
    public var gatewayID: String?
    public var detail: String?

    public init(seq: Int64 = 0, time: UnixMillis, campaign: String, message: Int64, recipient: String?, carrier: String?,
                event: String, status: String, attempt: Int, gatewayID: String? = nil, detail: String? = nil, node: String? = nil) {
        self.seq = seq
        self.node = node
        self.time = time
        self.campaign = campaign
        self.message = message
        self.recipient = recipient
        self.carrier = carrier
        self.event = event
        self.status = status
        self.attempt = attempt
        self.gatewayID = gatewayID
        self.detail = detail
    }

    /// The JSON line, without the trailing newline.
    public func jsonLine() -> String {
        var bytes: [UInt8] = []
        appendJSONLine(to: &bytes, formattedTime: Array(ISOTime.format(time).utf8))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the JSON line (without its newline) to `out`, with `time` already formatted by
    /// ``ISOTime/format(_:)``: the store's writer builds every line of a transaction this way, into one buffer.
    public func appendJSONLine(to out: inout [UInt8], formattedTime: [UInt8]) {
        func raw(_ s: StaticString) { out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)) }
        raw("{\"v\":")
        JSONText.appendInt(Int64(DeliveryEvent.schemaVersion), to: &out)
        raw(",\"seq\":")
        JSONText.appendInt(seq, to: &out)
        if let node { raw(",\"node\":"); JSONText.appendString(node, to: &out) }
        raw(",\"time\":\"")
        out.append(contentsOf: formattedTime)
        raw("\",\"campaign\":")
        JSONText.appendString(campaign, to: &out)
        raw(",\"message\":")
        JSONText.appendInt(message, to: &out)
        if let recipient { raw(",\"recipient\":"); JSONText.appendString(recipient, to: &out) }
        if let carrier { raw(",\"carrier\":"); JSONText.appendString(carrier, to: &out) }
        raw(",\"event\":")
        JSONText.appendString(event, to: &out)
        raw(",\"status\":")
        JSONText.appendString(status, to: &out)
        raw(",\"attempt\":")
        JSONText.appendInt(Int64(attempt), to: &out)
        if let gatewayID { raw(",\"gateway_id\":"); JSONText.appendString(gatewayID, to: &out) }
        if let detail { raw(",\"detail\":"); JSONText.appendString(detail, to: &out) }
        raw("}")
    }
}

/// Minimal JSON string escaping for hand-built lines on hot paths.
public enum JSONText {
    /// `s` as a JSON string (quotes, escapes), appended as UTF-8 bytes.
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Native strings are contiguous UTF-8: no copy of `s` (a `var` and `withUTF8` cost a retain and a release).
        if s.utf8.withContiguousStorageIfAvailable({ appendEscaped($0, to: &out) }) == nil {
            var s = s
            s.withUTF8 { appendEscaped($0, to: &out) }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Whether `u` goes into a JSON string as it is (no control character, quote or backslash): most values
    /// (ids, numbers, states, texts) do, and hot paths copy them whole.
    @inlinable
    public static func isPlain(_ u: UnsafeBufferPointer<UInt8>) -> Bool {
        !u.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") })
    }

    private static func appendEscaped(_ u: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        if isPlain(u) {
            out.append(contentsOf: u)
            return
        }
        for b in u {
            switch b {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(b)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(b)
            case 10: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 13: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 9: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
    }

    /// A decimal integer, appended as ASCII bytes.
    public static func appendInt(_ n: Int64, to out: inout [UInt8]) {
        if n < 0 { out.append(UInt8(ascii: "-")) }
        var v = n.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                      UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { d in
            var i = 20
            repeat {
                i -= 1
                d[i] = UInt8(48 + v % 10)
                v /= 10
            } while v > 0
            out.append(contentsOf: d[i...])
        }
    }

    public static func quoted(_ s: String) -> String {
        var out: [UInt8] = []
        appendString(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
