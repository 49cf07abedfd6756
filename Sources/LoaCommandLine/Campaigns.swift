import Foundation
import LoaDaemon
import LoaSim
import LoaCore
import LoaStore

/// A campaign file read from disk, with its templates parsed and its segments located.
public struct LoadedCampaign: Sendable {
    public struct Segment: Sendable {
        /// The name the daemon knows it by (the file name, made unique).
        public var name: String
        public var path: String
        public var phoneColumn: String
        public var format: SegmentFormat
        /// A reminder wave: the daemon takes the recipients of this earlier campaign in `states`.
        public var fromCampaign: String?
        public var states: [String]?
    }

    public var path: String
    public var spec: CampaignSpec
    public var templates: [Template]
    public var segments: [Segment]
    public var exclusions: [Segment]
    public var startAt: UnixMillis
    public var deadlineAt: UnixMillis

    public var submission: CampaignSubmission {
        CampaignLoader.submission(spec, templates: templates.map { ($0.name, $0.source) }, segments: segments, exclusions: exclusions)
    }
}

/// Reads campaign files.
public enum CampaignLoader {
    /// Reads a campaign file, its templates and the places of its segments, and checks the campaign with
    /// ``CampaignRules`` (the daemon's own check), each problem placed at its line. `knownCarriers`: the
    /// configured carriers, when the config is at hand.
    public static func load(path: String, knownCarriers: [String]? = nil) -> Result<LoadedCampaign, ProblemList> {
        let spec: CampaignSpec
        let locator: JSONLocator
        switch JSON5File.decode(CampaignSpec.self, path: path) {
        case .failure(let p): return .failure(p)
        case .success(let r): (spec, locator) = r
        }
        var problems: [Problem] = []
        func line(_ field: String) -> Int {
            // A list entry's own keys (`templates.0.weight`) sit on its line or the next few; the entry's line is
            // exact for entries written as a bare path.
            let parts = field.split(separator: ".")
            if parts.count >= 3, ["templates", "segments", "exclude"].contains(parts[0]), parts[2] != "weight" {
                return locator.line(of: parts.prefix(2).joined(separator: "."))
            }
            return locator.line(of: field)
        }
        let base = PathText.directory(of: path)
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : (base.isEmpty ? p : base + "/" + p) }
        // Each template as read (nil where it cannot be read or parsed: that problem is placed in its own file).
        var templates: [Template?] = []
        for (i, t) in spec.templates.enumerated() {
            let tp = resolve(t.file)
            guard let d = FileManager.default.contents(atPath: tp) else {
                problems.append(Problem(file: path, line: line("templates.\(i)"), field: "templates.\(i)", reason: "cannot read template file \(tp)"))
                templates.append(nil)
                continue
            }
            guard let source = String(validating: d, as: UTF8.self) else {
                problems.append(Problem(file: tp, line: 1, field: "template", reason: "not valid UTF-8"))
                templates.append(nil)
                continue
            }
            do {
                templates.append(try Template(name: t.file, source: source))
            } catch {
                problems.append(Problem(file: tp, line: error.line, field: "template", reason: "\(error.message) (column \(error.column))"))
                templates.append(nil)
            }
        }
        var used = Set<String>()
        func locate(_ refs: [CampaignSpec.SegmentRef], field: String) -> [LoadedCampaign.Segment] {
            refs.enumerated().map { i, s in
                if let from = s.fromCampaign {
                    var name = "from-\(from)"
                    var n = 2
                    while !used.insert(name).inserted { name = "from-\(from)-\(n)"; n += 1 }
                    return .init(name: name, path: "", phoneColumn: "phone", format: .lines, fromCampaign: from, states: s.states)
                }
                let sp = resolve(s.file)
                if !FileManager.default.isReadableFile(atPath: sp) {
                    problems.append(Problem(file: path, line: line("\(field).\(i)"), field: "\(field).\(i)", reason: "cannot read file \(sp)"))
                }
                let base = PathText.lastComponent(of: s.file)
                var name = base
                var n = 2
                while !used.insert(name).inserted { name = "\(base)-\(n)"; n += 1 }
                return .init(name: name, path: sp, phoneColumn: s.phoneColumn, format: s.format, fromCampaign: nil, states: nil)
            }
        }
        let segments = locate(spec.segments, field: "segments")
        let exclusions = locate(spec.exclude ?? [], field: "exclude")
        // The daemon's own rules, on what it would receive (templates were parsed above, each problem placed in its file;
        // one that could not be read stands in as empty text here).
        let sub = submission(spec, templates: zip(spec.templates, templates).map { ($0.0.file, $0.1?.source ?? "") },
                             segments: segments, exclusions: exclusions)
        for issue in CampaignRules.check(sub, knownCarriers: knownCarriers, templates: false) {
            problems.append(Problem(file: path, line: line(issue.field), field: issue.field, reason: issue.reason))
        }
        guard problems.isEmpty, let start = ISOTime.parse(spec.start), let deadline = ISOTime.parse(spec.deadline) else {
            return .failure(ProblemList(problems))
        }
        return .success(LoadedCampaign(path: path, spec: spec, templates: templates.compactMap { $0 }, segments: segments,
                                        exclusions: exclusions, startAt: start, deadlineAt: deadline))
    }

    /// What `loa campaign submit` posts for a campaign file: the spec with the template texts inline.
    static func submission(_ spec: CampaignSpec, templates: [(name: String, text: String)], segments: [LoadedCampaign.Segment],
                           exclusions: [LoadedCampaign.Segment]) -> CampaignSubmission {
        var s = CampaignSubmission(
            id: spec.id, name: spec.name, sender: spec.sender,
            templates: zip(spec.templates, templates).map { .init(name: $0.1.name, text: $0.1.text, weight: $0.0.weight) },
            segments: segments.map { .init(name: $0.name, phoneColumn: $0.phoneColumn, format: $0.format, fromCampaign: $0.fromCampaign, states: $0.states) },
            exclusions: exclusions.map { .init(name: $0.name, phoneColumn: $0.phoneColumn, format: $0.format) },
            start: spec.start, deadline: spec.deadline, encoding: spec.encoding ?? .auto, maxSegments: spec.maxSegments,
            allowedCountryCodes: spec.allowedCountryCodes ?? [], windows: spec.windows ?? ["07:00-22:00"],
            timeZone: spec.timeZone ?? SendWindows.defaultZone, priority: spec.priority ?? .bulk, weight: spec.weight ?? 1,
            maxRate: spec.maxRate, advertising: spec.advertising ?? false, optOutFooter: spec.optOutFooter,
            breakdownColumn: spec.breakdownColumn ?? "ward")
        s.carriers = spec.carriers ?? []
        s.failover = spec.failover ?? false
        return s
    }
}

