/// A message's failure as a report groups it: a reason code made from the gateway's words with every id and
/// long number taken out, and a class saying where it failed. The raw text stays on the message (the CSV's
/// `reason`, the delivery log); only the code is a group key.
///
/// Why: gateways put their own message id, the number or a timestamp in their error text
/// (`rejected 7f3a9c21…: invalid destination 84901234567`), and a report grouped by the raw text showed 988
/// failures as 988 reasons of count 1 (issue 19).
///
/// | raw text                                              | code                                 |
/// |-------------------------------------------------------|--------------------------------------|
/// | `UNDELIV err 001`                                     | `UNDELIV err 001` (short codes stay) |
/// | `HTTP 400: msg 1764000123456 to +84901234567 refused` | `HTTP 400: msg # to +# refused`      |
/// | `id 7f3a9c21-0b4e-4c8e-9d2a-11aa22bb33cc rejected`    | `id # rejected`                      |
public enum FailureReason {
    /// Where a message failed.
    public enum Class: String, Sendable, CaseIterable, Codable {
        /// The gateway took it and a receipt said the network could not deliver it.
        case undelivered
        /// The gateway refused it when it was sent (a permanent answer, or retries ran out): never taken.
        case refused
        /// Its time ran out: Loa's deadline, or the network's validity period.
        case expired
        /// Never sent: a rejected row (bad number, duplicate) or a suppressed number (opted out, excluded).
        case notSent = "not sent"
    }

    /// The class of a failed or expired message: `accepted` when the gateway took it (it has a gateway id).
    public static func classify(state: String, accepted: Bool) -> Class {
        if state == "expired" { return .expired }
        return accepted ? .undelivered : .refused
    }

    /// The gateway's words with ids and numbers of 4 or more digits (and ids: tokens of 12 or more
    /// characters holding two digits) replaced by `#`, spaces collapsed, cut to 80 characters.
    public static func code(_ raw: String) -> String {
        var out = ""
        var token = ""
        func flush() {
            guard !token.isEmpty else { return }
            let digits = token.filter(\.isNumber).count
            let longDigits = token.split(whereSeparator: { !$0.isNumber }).contains { $0.count >= 4 }
            // An id: 12 or more characters with digits among them (a UUID, a hex or base-36 id). `0x…` codes
            // (SMPP's `0x0000000b`) are error codes, the same for every message: kept.
            let idLike = token.count >= 12 && digits >= 2 && !token.hasPrefix("0x")
            if (longDigits && !token.hasPrefix("0x")) || idLike {
                // Keep a leading `+` or other punctuation; the id itself becomes one `#`.
                out += "#"
            } else {
                out += token
            }
            token = ""
        }
        for ch in raw {
            if ch.isLetter || ch.isNumber || ch == "-" || ch == "_" {
                token.append(ch)
            } else {
                flush()
                if ch.isWhitespace {
                    if !out.hasSuffix(" ") && !out.isEmpty { out.append(" ") }
                } else {
                    out.append(ch)
                }
            }
        }
        flush()
        let trimmed = out.trimmingTrailingSpaces
        return trimmed.count > 80 ? String(trimmed.prefix(79)) + "…" : trimmed
    }
}

extension String {
    fileprivate var trimmingTrailingSpaces: String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}
