import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import LoaStore
import Synchronization

/// Streams an uploaded body through a reader (segment or exclusion file) and answers with its result.
/// The reader's own errors become 422 naming the file, line and field; store errors map as elsewhere.
final class ReaderUpload: BodySink {
    let service: DaemonService
    private let feed: (UnsafeRawBufferPointer) throws -> Void
    private let end: () throws -> [UInt8]
    private let onFailure: () -> Void
    private let code: String
    private var failure: ServerResponse?

    init(service: DaemonService, code: String, feed: @escaping (UnsafeRawBufferPointer) throws -> Void,
         end: @escaping () throws -> [UInt8], onFailure: @escaping () -> Void = {}) {
        self.service = service
        self.code = code
        self.feed = feed
        self.end = end
        self.onFailure = onFailure
    }

    func consume(_ bytes: UnsafeRawBufferPointer) -> ServerResponse? {
        guard failure == nil else { return failure }
        do { try feed(bytes) } catch { failure = fail(error) }
        return failure
    }

    func finish() -> ServerResponse {
        if let failure { return failure }
        do { return .json(200, try end()) } catch { return fail(error) }
    }

    private func fail(_ error: Error) -> ServerResponse {
        onFailure()
        if let h = error as? SegmentReader.HeaderError { return service.error(422, code, h.description) }
        return service.failure(error)
    }

    /// One segment into the store, in batches.
    static func segment(_ service: DaemonService, campaign: CampaignSubmission, generation: Int64, templates: [Template],
                        segment: CampaignSubmission.SegmentInfo) -> ReaderUpload {
        let counts = Box(IngestCounts())
        let reader = SegmentReader(source: segment.name, format: segment.format, campaign: campaign, templates: templates,
                                   phoneColumn: segment.phoneColumn, router: service.config.router) { rows in
            // Bound to the campaign it began for: once that one is discarded, the rest of the stream is refused.
            counts.value.add(try service.store.ingest(campaign: campaign.id, generation: generation, rows: rows))
        }
        return ReaderUpload(service: service, code: "invalid-segment", feed: { try reader.feed($0) },
                            end: { try reader.finish(); return Array(try JSONEncoder.api.encode(counts.value)) },
                            onFailure: { service.uploadFailed(campaign: campaign.id, generation: generation, segment: segment.name) })
    }

    /// One exclusion file into the campaign's exclusion list.
    static func exclusion(_ service: DaemonService, campaign: CampaignSubmission, generation: Int64, file: CampaignSubmission.SegmentInfo) -> ReaderUpload {
        let added = Box(0)
        let reader = ExclusionReader(source: file.name, format: file.format, phoneColumn: file.phoneColumn,
                                     allowedCountryCodes: Set(campaign.allowedCountryCodes)) { phones in
            added.value += try service.store.addExclusions(campaign: campaign.id, generation: generation, phones: phones)
        }
        return ReaderUpload(service: service, code: "invalid-exclusion", feed: { try reader.feed($0) }, end: {
            try reader.finish()
            return Array("{\"read\":\(reader.read),\"added\":\(added.value),\"invalid\":\(reader.invalid)}".utf8)
        })
    }
}

/// A mutable value shared by closures of one upload (all run on that connection's thread).
final class Box<T> {
    var value: T
    init(_ value: T) { self.value = value }
}
