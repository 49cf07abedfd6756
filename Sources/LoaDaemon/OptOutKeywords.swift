import Foundation
import LoaCore

/// Opt-out replies: keyword matching that ignores case and Vietnamese diacritics ("Huỷ", "hủy", "HUY").
public enum OptOut {
    public static func normalize(_ s: String) -> String {
        SMSText.transliterateVietnamese(s).trimmingCharacters(in: .whitespacesAndNewlines).uppercased()
    }

    /// True when the reply's first word is one of `keywords` (already normalized).
    public static func isOptOut(_ text: String, keywords: Set<String>) -> Bool {
        let first = normalize(text).split(whereSeparator: { $0.isWhitespace || $0.isPunctuation }).first.map(String.init) ?? ""
        return keywords.contains(first)
    }
}
