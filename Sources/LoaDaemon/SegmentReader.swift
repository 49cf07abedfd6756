import Foundation
import LoaCore
import LoaStore

/// Streams one segment's bytes into ingest rows: header first (CSV), then each record normalized, routed,
/// rendered and encoded. Memory stays flat: rows leave in batches of `batchSize` through `onBatch`.
///
/// A recipient whose text would need more than the campaign's `max_segments` parts fails the whole segment at
/// ``finish()`` with a count and an example, since the planner must shorten the slogan, not lose the citizen.
public final class SegmentReader {
    public struct HeaderError: Error, CustomStringConvertible {
        public var source: String
        public var line: Int = 1
        public var field: String = "header"
        public var messages: [String]
        public var description: String { messages.map { "\(source):\(line): \(field): \($0)" }.joined(separator: "\n") }
    }

    public let source: String
    public let format: SegmentFormat
    private var parser = CSVPushParser()
    private var builder: RecipientBuilder?
    private let make: (CSVHeader) throws(RecipientBuilder.HeaderProblems) -> RecipientBuilder
    private var batch: [IngestRow] = []
    private let batchSize: Int
    private let onBatch: ([IngestRow]) throws -> Void
    public private(set) var sawHeader = false
    private var tooLong = 0
    private var tooLongExample: String?
    private let maxSegments: Int?
    /// The column whose value is kept per recipient for report breakdowns.
    public var breakdownColumn: String?
    /// Sees every accepted recipient before it is batched (preview statistics).
    public var observe: ((RecipientBuilder.Built, Int) -> Void)?

    public init(source: String, format: SegmentFormat = .csv, maxSegments: Int? = nil, batchSize: Int = 5_000, breakdownColumn: String? = nil,
         make: @escaping (CSVHeader) throws(RecipientBuilder.HeaderProblems) -> RecipientBuilder,
         onBatch: @escaping ([IngestRow]) throws -> Void) {
        self.source = source
        self.format = format
        self.maxSegments = maxSegments
        self.breakdownColumn = breakdownColumn
        self.make = make
        self.batchSize = batchSize
        self.onBatch = onBatch
        batch.reserveCapacity(batchSize)
    }

    public convenience init(source: String, format: SegmentFormat = .csv, campaign: CampaignSubmission, templates: [Template], phoneColumn: String,
                     router: Router, batchSize: Int = 5_000, onBatch: @escaping ([IngestRow]) throws -> Void) {
        let weights = campaign.templates.map(\.weight)
        self.init(source: source, format: format, maxSegments: campaign.maxParts, batchSize: batchSize, breakdownColumn: campaign.breakdownColumn,
                  make: { (header: CSVHeader) throws(RecipientBuilder.HeaderProblems) in
            try RecipientBuilder(campaignID: campaign.id, templates: templates, weights: weights,
                                 advertisingFooter: campaign.advertising ? (campaign.optOutFooter ?? "") : nil, header: header, phoneColumn: phoneColumn,
                                 policy: campaign.encoding, maxSegments: campaign.maxParts,
                                 allowedCountryCodes: Set(campaign.allowedCountryCodes), router: router.restricted(to: campaign.carriers))
        }, onBatch: onBatch)
    }

    public func feed(_ bytes: UnsafeRawBufferPointer) throws {
        try parser.feed(bytes) { try self.handle($0) }
        if batch.count >= batchSize { try flush() }
    }

    public func finish() throws {
        try parser.finish { try self.handle($0) }
        try flush()
        if !sawHeader && format == .csv {
            throw HeaderError(source: source, messages: ["the file is empty: a header row with a phone column is required"])
        }
        if tooLong > 0, let example = tooLongExample {
            throw HeaderError(source: source, line: 0, field: "max_segments",
                              messages: ["\(tooLong) recipient(s) would need more than \(maxSegments ?? 0) SMS parts; shorten the slogan or raise max_segments. First: \(example)"])
        }
    }

    private func flush() throws {
        guard !batch.isEmpty else { return }
        try onBatch(batch)
        batch.removeAll(keepingCapacity: true)
    }

    private func handle(_ row: CSVRow) throws {
        switch row {
        case .malformed(let line, let reason, let fields, let badField):
            if !sawHeader && format == .csv { throw HeaderError(source: source, messages: ["line \(line): \(reason)"]) }
            if let builder, let badField {
                let fields = format == .lines ? [fields.joined(separator: ",")] : fields
                let r = builder.invalidText(fields: fields, badField: format == .lines ? 0 : badField)
                batch.append(.rejected(raw: r.raw, code: r.code, message: r.message, source: source, line: line))
            } else {
                batch.append(.rejected(raw: "", code: "malformed-row", message: reason, source: source, line: line))
            }
        case .record(let line, let recordFields):
            if builder == nil {
                sawHeader = true
                do {
                    builder = try make(CSVHeader(fields: format == .csv ? recordFields : ["phone"]))
                } catch {
                    throw HeaderError(source: source, messages: error.messages)
                }
                if format == .csv { return }
            }
            guard let builder else { return }
            // One number per line: a comma is part of how the number was written, not a column.
            let fields = format == .lines ? [recordFields.joined(separator: ",")] : recordFields
            if fields.count == 1 && fields[0].allSatisfy(\.isWhitespace) && format == .lines { return }
            switch builder.build(fields: fields) {
            case .success(let b):
                observe?(b, line)
                batch.append(.accepted(phone: b.phone.e164, carrier: b.carrier, text: b.text, encoding: b.encoding,
                                       segments: b.segments, source: source, line: line, raw: fields[builder.phoneIndex],
                                       group: breakdownColumn.flatMap { builder.value(of: $0, in: fields) },
                                       network: builder.router.network(of: b.phone).rawValue))
            case .failure(let r) where r.code == "too-long":
                tooLong += 1
                if tooLongExample == nil { tooLongExample = "line \(line): \(r.message)" }
            case .failure(let r):
                batch.append(.rejected(raw: r.raw, code: r.code, message: r.message, source: source, line: line))
            }
        }
        if batch.count >= batchSize { try flush() }
    }
}

