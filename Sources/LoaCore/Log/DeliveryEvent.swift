/// One line of the delivery log: a state change (or a receipt) of one message.
///
/// Schema version 1, one JSON object per line, keys always in this order:
/// `v, seq, time, campaign, message, recipient, carrier, event, status, attempt, gateway_id, detail`.
/// `seq` increases by one per line across the whole log and restarts never reuse it, so a reader can
/// tell a gap or a repeat. Optional fields are omitted rather than null.
public struct DeliveryEvent: Sendable, Equatable {
    public static let schemaVersion = 1

    public var seq: Int64
    public var time: UnixMillis
    public var campaign: String
    public var message: Int64
    public var recipient: String?
    public var carrier: String?
    /// What happened: `queued`, `rejected`, `duplicate`, `sending`, `accepted`, `retry`, `failed`, `receipt`, `expired`, `unknown`, `cancelled`.
    public var event: String
    /// The message's state after the event (``MessageState/name``).
    public var status: String
    public var attempt: Int
    public var gatewayID: String?
    public var detail: String?

    public init(seq: Int64 = 0, time: UnixMillis, campaign: String, message: Int64, recipient: String?, carrier: String?,
                event: String, status: String, attempt: Int, gatewayID: String? = nil, detail: String? = nil) {
        self.seq = seq
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
        var out = "{\"v\":\(DeliveryEvent.schemaVersion),\"seq\":\(seq),\"time\":\"\(ISOTime.format(time))\""
        out += ",\"campaign\":"
        JSONText.appendString(campaign, to: &out)
        out += ",\"message\":\(message)"
        if let recipient { out += ",\"recipient\":"; JSONText.appendString(recipient, to: &out) }
        if let carrier { out += ",\"carrier\":"; JSONText.appendString(carrier, to: &out) }
        out += ",\"event\":"
        JSONText.appendString(event, to: &out)
        out += ",\"status\":"
        JSONText.appendString(status, to: &out)
        out += ",\"attempt\":\(attempt)"
        if let gatewayID { out += ",\"gateway_id\":"; JSONText.appendString(gatewayID, to: &out) }
        if let detail { out += ",\"detail\":"; JSONText.appendString(detail, to: &out) }
        out += "}"
        return out
    }
}

/// Minimal JSON string escaping for hand-built lines on hot paths.
public enum JSONText {
    public static func appendString(_ s: String, to out: inout String) {
        out.append("\"")
        // Most values (ids, numbers, states) need no escape: append them whole.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out.append(s)
            out.append("\"")
            return
        }
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out.append("\\\"")
            case "\\": out.append("\\\\")
            case "\n": out.append("\\n")
            case "\r": out.append("\\r")
            case "\t": out.append("\\t")
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out.append("\"")
    }

    public static func quoted(_ s: String) -> String {
        var out = ""
        appendString(s, to: &out)
        return out
    }
}
