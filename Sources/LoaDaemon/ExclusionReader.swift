import Foundation
import LoaCore

/// Reads an exclusion file (one number per line, or CSV with a phone column) into normalized numbers.
public final class ExclusionReader {
    public let source: String
    public let format: SegmentFormat
    public let phoneColumn: String
    public let allowedCountryCodes: Set<String>
    private var parser = CSVPushParser()
    private var phoneIndex: Int?
    private var sawHeader = false
    private var batch: [String] = []
    private let onBatch: ([String]) throws -> Void
    public private(set) var invalid = 0
    public private(set) var read = 0

    public init(source: String, format: SegmentFormat, phoneColumn: String, allowedCountryCodes: Set<String>, onBatch: @escaping ([String]) throws -> Void) {
        self.source = source
        self.format = format
        self.phoneColumn = phoneColumn
        self.allowedCountryCodes = allowedCountryCodes
        self.onBatch = onBatch
    }

    public func feed(_ bytes: UnsafeRawBufferPointer) throws {
        try parser.feed(bytes) { try self.handle($0) }
        if batch.count >= 5_000 { try flush() }
    }

    public func finish() throws {
        try parser.finish { try self.handle($0) }
        try flush()
    }

    private func flush() throws {
        guard !batch.isEmpty else { return }
        try onBatch(batch)
        batch.removeAll(keepingCapacity: true)
    }

    private func handle(_ row: CSVRow) throws {
        guard case .record(_, let fields) = row else { invalid += 1; return }
        if format == .csv && !sawHeader {
            sawHeader = true
            phoneIndex = CSVHeader(fields: fields).index(of: phoneColumn)
            if phoneIndex == nil {
                throw SegmentReader.HeaderError(source: source, messages: ["no column named '\(phoneColumn)' (columns: \(fields.joined(separator: ", ")))"])
            }
            return
        }
        let raw = format == .lines ? fields.joined(separator: ",") : (phoneIndex.flatMap { $0 < fields.count ? fields[$0] : nil } ?? "")
        if raw.allSatisfy(\.isWhitespace) { return }
        read += 1
        switch PhoneNormalizer.normalize(raw, allowedCountryCodes: allowedCountryCodes) {
        case .success(let p): batch.append(p.e164)
        case .failure: invalid += 1
        }
        if batch.count >= 5_000 { try flush() }
    }
}
