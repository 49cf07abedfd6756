/// A slogan template rendered with given field values, and what it costs on the air: the console's live preview
/// while a planner types (`POST /api/v1/preview/template`). The same steps as a segment row takes
/// (``Template/render(_:)``, then ``SMSText/prepare(_:policy:)``), so the preview shows what would be sent.
///
/// | template | policy | text | encoding | parts | unicode characters |
/// |---|---|---|---|---|---|
/// | `Hello {{name}}` with name `An` | auto | `Hello An` | gsm7 | 1 | none |
/// | `Kính gửi {{name}}` with name `An` | auto | `Kính gửi An` | ucs2 | 1 | `í`, `ử` |
/// | `Kính gửi {{name}}` with name `An` | ascii | `Kinh gui An` | gsm7 | 1 | none |
public struct TemplatePreview: Sendable, Equatable, Encodable {
    /// The text as it would be sent (NFC; transliterated under the `ascii` policy).
    public var text: String
    public var encoding: SMSEncoding
    public var parts: Int
    /// What the text counts against the parts: GSM-7 septets (an extension character counts 2) or UTF-16 units.
    public var characters: Int
    /// The capacity of one part in those units: 160 or 153 (GSM-7), 70 or 67 (UCS-2).
    public var charactersPerPart: Int
    /// The characters of the text outside the GSM-7 alphabet, each once, in order of first appearance: the ones
    /// that force UCS-2 (under `auto`), or would (under `unicode`).
    public var unicodeCharacters: [String]

    /// Renders `template` with `fields` (names case-insensitive; a blank value takes the placeholder's default).
    /// Throws the template's error with its line and column, or the missing value's.
    public static func render(template: String, policy: EncodingPolicy, fields: [String: String]) throws(TemplateError) -> TemplatePreview {
        let parsed = try Template(name: "preview", source: template)
        let values = Dictionary(fields.map { ($0.key.trimmingSpaces().lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        let rendered = try parsed.render { values[$0] }
        let prepared = SMSText.prepare(rendered, policy: policy)
        return TemplatePreview(text: prepared.text, encoding: prepared.info.encoding, parts: prepared.info.segments,
                               characters: prepared.info.units, charactersPerPart: prepared.info.charactersPerSegment,
                               unicodeCharacters: unicodeCharacters(in: prepared.text))
    }

    /// The characters (whole, with their combining marks) holding a scalar outside GSM 03.38, each once.
    public static func unicodeCharacters(in text: String) -> [String] {
        var seen = Set<String>()
        var out: [String] = []
        for c in text where c.unicodeScalars.contains(where: { GSM7.cost($0) == nil }) {
            let s = String(c)
            if seen.insert(s).inserted { out.append(s) }
        }
        return out
    }
}
