import Foundation
import LoaCore
import LoaStore

/// A campaign file read from disk, with its templates parsed and its segments located.
public struct LoadedCampaign: Sendable {
    public struct Segment: Sendable {
        /// The name the daemon knows it by (the file name, made unique).
        public var name: String
        public var path: String
        public var phoneColumn: String
    }

    public var path: String
    public var spec: CampaignSpec
    public var templates: [Template]
    public var segments: [Segment]
    public var startAt: UnixMillis
    public var deadlineAt: UnixMillis

    public var submission: CampaignSubmission {
        CampaignSubmission(
            id: spec.id, name: spec.name, sender: spec.sender,
            templates: zip(spec.templates, templates).map { .init(name: $0.0, text: $0.1.source) },
            segments: segments.map { .init(name: $0.name, phoneColumn: $0.phoneColumn) },
            start: spec.start, deadline: spec.deadline, encoding: spec.encoding ?? .auto, maxSegments: spec.maxSegments,
            allowedCountryCodes: spec.allowedCountryCodes ?? [])
    }
}

/// Reads campaign files.
public enum CampaignLoader {
    public static func load(path: String) -> Result<LoadedCampaign, ProblemList> {
        let spec: CampaignSpec
        let locator: JSONLocator
        switch JSON5File.decode(CampaignSpec.self, path: path) {
        case .failure(let p): return .failure(p)
        case .success(let r): (spec, locator) = r
        }
        var problems = spec.validate(file: path, locator: locator)
        let base = (path as NSString).deletingLastPathComponent
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : (base.isEmpty ? p : base + "/" + p) }
        var templates: [Template] = []
        for (i, t) in spec.templates.enumerated() {
            let tp = resolve(t)
            guard let d = FileManager.default.contents(atPath: tp) else {
                problems.append(Problem(file: path, line: locator.line(of: "templates.\(i)"), field: "templates.\(i)", reason: "cannot read template file \(tp)"))
                continue
            }
            guard let source = String(validating: d, as: UTF8.self) else {
                problems.append(Problem(file: tp, line: 1, field: "template", reason: "not valid UTF-8"))
                continue
            }
            do {
                templates.append(try Template(name: t, source: source))
            } catch {
                problems.append(Problem(file: tp, line: error.line, field: "template", reason: "\(error.message) (column \(error.column))"))
            }
        }
        var segments: [LoadedCampaign.Segment] = []
        var used = Set<String>()
        for (i, s) in spec.segments.enumerated() {
            let sp = resolve(s.file)
            if !FileManager.default.isReadableFile(atPath: sp) {
                problems.append(Problem(file: path, line: locator.line(of: "segments.\(i)"), field: "segments.\(i)", reason: "cannot read segment file \(sp)"))
            }
            var name = (s.file as NSString).lastPathComponent
            var n = 2
            while !used.insert(name).inserted { name = "\((s.file as NSString).lastPathComponent)-\(n)"; n += 1 }
            segments.append(.init(name: name, path: sp, phoneColumn: s.phoneColumn))
        }
        guard problems.isEmpty, let start = ISOTime.parse(spec.start), let deadline = ISOTime.parse(spec.deadline) else {
            return .failure(ProblemList(problems))
        }
        return .success(LoadedCampaign(path: path, spec: spec, templates: templates, segments: segments, startAt: start, deadlineAt: deadline))
    }
}

/// Streams one segment's CSV bytes into ingest rows: header first, then each record normalized, routed and rendered.
///
/// Memory stays flat: rows leave in batches of `batchSize` through `onBatch`.
final class SegmentReader {
    struct HeaderError: Error, CustomStringConvertible {
        var source: String
        var messages: [String]
        var description: String { messages.map { "\(source):1: header: \($0)" }.joined(separator: "\n") }
    }

    let source: String
    private var parser = CSVPushParser()
    private var builder: RecipientBuilder?
    private let make: (CSVHeader) throws(RecipientBuilder.HeaderProblems) -> RecipientBuilder
    private var batch: [IngestRow] = []
    private let batchSize: Int
    private let onBatch: ([IngestRow]) throws -> Void
    private(set) var sawHeader = false

    init(source: String, batchSize: Int = 5_000, make: @escaping (CSVHeader) throws(RecipientBuilder.HeaderProblems) -> RecipientBuilder,
         onBatch: @escaping ([IngestRow]) throws -> Void) {
        self.source = source
        self.make = make
        self.batchSize = batchSize
        self.onBatch = onBatch
        batch.reserveCapacity(batchSize)
    }

    convenience init(source: String, campaign: CampaignSubmission, templates: [Template], phoneColumn: String, router: Router,
                     batchSize: Int = 5_000, onBatch: @escaping ([IngestRow]) throws -> Void) {
        self.init(source: source, batchSize: batchSize, make: { (header: CSVHeader) throws(RecipientBuilder.HeaderProblems) in
            try RecipientBuilder(campaignID: campaign.id, templates: templates, header: header, phoneColumn: phoneColumn,
                                 policy: campaign.encoding, maxSegments: campaign.maxSegments,
                                 allowedCountryCodes: Set(campaign.allowedCountryCodes), router: router)
        }, onBatch: onBatch)
    }

    func feed(_ bytes: UnsafeRawBufferPointer) throws {
        try parser.feed(bytes) { try self.handle($0) }
        if batch.count >= batchSize { try flush() }
    }

    func finish() throws {
        try parser.finish { try self.handle($0) }
        try flush()
        if !sawHeader { throw HeaderError(source: source, messages: ["the file is empty: a header row with a phone column is required"]) }
    }

    private func flush() throws {
        guard !batch.isEmpty else { return }
        try onBatch(batch)
        batch.removeAll(keepingCapacity: true)
    }

    private func handle(_ row: CSVRow) throws {
        switch row {
        case .malformed(let line, let reason):
            if !sawHeader { throw HeaderError(source: source, messages: ["line \(line): \(reason)"]) }
            batch.append(.rejected(raw: "", code: "malformed-row", message: reason, source: source, line: line))
        case .record(let line, let fields):
            guard let builder else {
                sawHeader = true
                do {
                    builder = try make(CSVHeader(fields: fields))
                } catch {
                    throw HeaderError(source: source, messages: error.messages)
                }
                return
            }
            if fields.count == 1 && fields[0].isEmpty { return }  // a blank line
            switch builder.build(fields: fields) {
            case .success(let b):
                batch.append(.accepted(phone: b.phone.e164, carrier: b.carrier, text: b.text, encoding: b.encoding,
                                       segments: b.segments, source: source, line: line))
            case .failure(let r):
                batch.append(.rejected(raw: r.raw, code: r.code, message: r.message, source: source, line: line))
            }
        }
        if batch.count >= batchSize { try flush() }
    }
}
