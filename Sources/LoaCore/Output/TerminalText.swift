/// Text from outside (segment cells, campaign names, senders, gateway answers, receipt fields) made safe to
/// print on a terminal.
///
/// A terminal obeys what it is sent: ESC starts a control sequence (colors, cursor moves, `ESC ] 0 ; … BEL`
/// retitles the window), CR returns to the start of the line so later text overprints earlier text, LF starts
/// a new line that can pass for one Loa printed, BS erases. So every C0 control (U+0000–U+001F), DEL (U+007F),
/// C1 control (U+0080–U+009F, where U+009B is a one-character CSI for some terminals), the Unicode line and
/// paragraph separators and the bidirectional overrides and isolates (which reorder what follows them on the
/// line) are shown as visible escapes instead. Everything else, Vietnamese included, is kept.
///
/// | character | shown as |
/// |---|---|
/// | LF, CR, TAB | `\n`, `\r`, `\t` |
/// | ESC | `\x1b` |
/// | NUL, BEL, DEL, U+009B | `\x00`, `\x07`, `\x7f`, `\x9b` |
/// | U+2028, U+202E | `\u{2028}`, `\u{202e}` |
public enum TerminalText {
    /// `s` with every control character replaced by its visible escape.
    public static func sanitize(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: isControl) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count + 8)
        for u in s.unicodeScalars {
            if isControl(u) { out += escape(u) } else { out.unicodeScalars.append(u) }
        }
        return out
    }

    /// Multi-line text Loa composes itself, one line at a time: the line breaks are kept, everything else as ``sanitize(_:)``.
    public static func sanitizeLines(_ s: String) -> String {
        s.split(separator: "\n", omittingEmptySubsequences: false).map { sanitize(String($0)) }.joined(separator: "\n")
    }

    /// True for the scalars ``sanitize(_:)`` escapes.
    public static func isControl(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    /// The visible form of one control scalar.
    public static func escape(_ u: Unicode.Scalar) -> String {
        switch u {
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        default:
            let hex = String(u.value, radix: 16)
            return u.value < 0x100 ? "\\x" + (hex.count < 2 ? "0" + hex : hex) : "\\u{" + hex + "}"
        }
    }
}
