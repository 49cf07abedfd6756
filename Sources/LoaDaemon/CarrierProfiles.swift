import Foundation
import LoaCarriers
import LoaCore

/// Carrier entries that start from a shipped profile: `{"profile": "carriers/twilio.json5", "url": "…", "rate": 5}`.
///
/// The profile file (one carrier entry, as shipped in `Config/carriers/`, relative to the config file) gives every
/// key; the entry's own keys replace the profile's whole (a shallow merge: `"url"` replaces the URL, `"response"`
/// would replace all of the answer rules). So an operator keeps the verified profile as it is and writes only what
/// differs: the name, the account's URL or rate, the secrets' sources.
enum CarrierProfiles {
    /// The config's text with every `profile` entry completed, as JSON; nil when no entry names a profile (the
    /// file is then decoded as it is, unchanged). A profile that cannot be read or is not one JSON object is a
    /// problem naming the entry's `profile` field (or the profile file's own line, for its syntax).
    static func expand(path: String, baseDir: String) -> Result<Data?, ProblemList> {
        guard let data = FileManager.default.contents(atPath: path),
              JSON5File.firstInvalidUTF8Line(data) == nil, JSON5File.exponentWithoutDigitsLine([UInt8](data)) == nil else {
            return .success(nil)  // JSON5File.decode reports these
        }
        let decoder = JSONDecoder()
        decoder.allowsJSON5 = true
        guard case .object(var root)? = try? decoder.decode(JSONValue.self, from: data),
              let ci = root.firstIndex(where: { $0.0 == "carriers" }), case .array(var entries) = root[ci].1,
              entries.contains(where: { $0["profile"] != nil }) else {
            return .success(nil)
        }
        let locator = JSONLocator(String(decoding: data, as: UTF8.self))
        var problems: [Problem] = []
        for (i, entry) in entries.enumerated() {
            guard case .object(let own) = entry, let ref = entry["profile"] else { continue }
            let field = "carriers.\(i).profile"
            guard case .string(let rel) = ref, !rel.isEmpty else {
                problems.append(Problem(file: path, line: locator.line(of: field), field: field, reason: "must be a file name (carriers/twilio.json5)"))
                continue
            }
            let profilePath = ConfigLoader.resolvePath(rel, against: baseDir)
            switch JSON5File.decode(JSONValue.self, path: profilePath) {
            case .failure(let p):
                problems.append(Problem(file: path, line: locator.line(of: field), field: field, reason: "cannot use profile \(profilePath)"))
                problems += p.problems
            case .success(let (value, _)):
                guard case .object(let base) = value else {
                    problems.append(Problem(file: path, line: locator.line(of: field), field: field, reason: "\(profilePath) is not one carrier entry (a JSON object)"))
                    continue
                }
                var merged = base.filter { key, _ in !own.contains { $0.0 == key } }
                merged += own.filter { $0.0 != "profile" }
                entries[i] = .object(merged.sorted { $0.0 < $1.0 })
            }
        }
        if !problems.isEmpty { return .failure(ProblemList(problems)) }
        root[ci].1 = .array(entries)
        return .success(Data(JSONValue.object(root).jsonText.utf8))
    }
}
