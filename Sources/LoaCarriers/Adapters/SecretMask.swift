import Foundation

/// Replaces a carrier's secrets with `***` in text a gateway sent back, before that text leaves the adapter.
///
/// A gateway's answer becomes an outcome detail, which is stored with the message and reaches the delivery log,
/// the messages API, `loa tail`, the reports and the daemon's log. Some gateways echo the request in an error
/// answer (Kannel does, with the whole query string), so every adapter passes every answer through its mask.
///
/// Each secret is looked for in every form a request carries it in: as written, percent-encoded (upper- and
/// lower-case hex, and with `+` for a space as forms write it) and JSON-escaped. The secrets are the carrier's
/// password, the generic gateway's `secrets`, the receipt secret (it is in every `dlr-url`), and the password and
/// user info of its proxy URL. The username is not masked: it is not a secret, and masking a short name would
/// garble every answer that happens to contain the word. Values shorter than 3 bytes are not masked either, for
/// the same reason (the config requires longer ones).
///
/// Matching is on UTF-8 bytes, leftmost and longest first, so a secret followed by a combining mark is still found
/// (a `Character` search would not match it).
public struct SecretMask: Sendable {
    /// Every form of every secret, longest first.
    let needles: [[UInt8]]

    public init(secrets: [String], proxy: String? = nil) {
        var values = secrets
        if let proxy, let scheme = proxy.range(of: "://") {
            let authority = proxy[scheme.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            if let at = authority.lastIndex(of: "@") {
                let userInfo = authority[..<at]
                values.append(String(userInfo))
                if let colon = userInfo.firstIndex(of: ":") { values.append(String(userInfo[userInfo.index(after: colon)...])) }
            }
        }
        var forms = Set<[UInt8]>()
        for v in values {
            let decoded = v.removingPercentEncoding ?? v
            for raw in Set([v, decoded]) where raw.utf8.count >= 3 {
                let escaped = URLQuery.escape(raw)
                forms.insert(Array(raw.utf8))
                forms.insert(Array(escaped.utf8))
                forms.insert(Array(SecretMask.lowercasedHex(escaped).utf8))
                forms.insert(Array(escaped.replacingOccurrences(of: "%20", with: "+").utf8))
                forms.insert(Array(SecretMask.jsonEscaped(raw).utf8))
            }
        }
        needles = forms.sorted { $0.count != $1.count ? $0.count > $1.count : $0.lexicographicallyPrecedes($1) }
    }

    /// True when there is nothing to mask.
    public var isEmpty: Bool { needles.isEmpty }

    /// `text` with every form of every secret replaced by `***`.
    public func apply(_ text: String) -> String {
        guard !needles.isEmpty else { return text }
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        var changed = false
        outer: while i < bytes.count {
            for n in needles where bytes.count - i >= n.count && bytes[i] == n[0] {
                if bytes[i..<(i + n.count)].elementsEqual(n) {
                    if !changed { out = Array(bytes[..<i]); changed = true }
                    out += Array("***".utf8)
                    i += n.count
                    continue outer
                }
            }
            if changed { out.append(bytes[i]) }
            i += 1
        }
        return changed ? String(decoding: out, as: UTF8.self) : text
    }

    /// `outcome` with its detail masked.
    public func apply(_ outcome: GatewayOutcome) -> GatewayOutcome {
        needles.isEmpty ? outcome : outcome.mapDetail(apply)
    }

    /// `%2f` for `%2F`: some gateways echo what they decoded and encode it again their own way.
    static func lowercasedHex(_ s: String) -> String {
        var out = ""
        var hexLeft = 0
        for ch in s {
            if ch == "%" { hexLeft = 2; out.append(ch); continue }
            if hexLeft > 0 { hexLeft -= 1; out += ch.lowercased() } else { out.append(ch) }
        }
        return out
    }

    /// `s` as inside a JSON string (`"` and `\` escaped, `/` as `\/` as some encoders write it).
    static func jsonEscaped(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "/", with: "\\/")
    }
}
