import Foundation
import LoaDaemon
import LoaSim
import LoaCarriers
import LoaCore
import LoaStore

/// Reads a campaign's files locally, as the daemon would ingest them, without sending or touching the store:
/// the engine of `loa check` and `loa preview`.
final class CampaignScan {
    struct Sample {
        var source: String
        var line: Int
        var phone: PhoneNumber
        var carrier: String
        var text: String
        var encoding: SMSEncoding
        var segments: Int
    }

    let campaign: LoadedCampaign
    let router: Router
    let sampleCount: Int
    /// The totals the daemon keeps for an uploaded campaign too (``PreviewTotals``), counted by the same rules.
    private(set) var totals = PreviewTotals()
    /// The daemon's global opt-out list, when preview could fetch it.
    var optOuts: Set<String>?
    var rows: Int { Int(totals.rows) }
    var accepted: Int { Int(totals.recipients) }
    var duplicates: Int { Int(totals.duplicates) }
    var excluded: Int { Int(totals.excluded) }
    var optedOut: Int { Int(totals.optedOut) }
    var rejectedByReason: [String: Int] { totals.rejectedByReason.mapValues { Int($0) } }
    var perCarrier: [String: Int] { totals.perCarrier.mapValues { Int($0) } }
    var perNetwork: [String: Int] { totals.perNetwork.mapValues { Int($0) } }
    var parts: Int { Int(totals.parts) }
    var ucs2Messages: Int { Int(totals.ucs2Messages) }
    private(set) var partsIfUnicode = 0
    private(set) var partsIfASCII = 0
    private(set) var problems: [Problem] = []
    private(set) var rejectedRows = 0
    /// Carriers that cut long messages (Jasmin's `max_parts`): carrier → the most parts it takes and how it counts
    /// them (``CarrierKind/partLimit(_:)``). Set before ``run``.
    var partLimits: [String: PartLimit] = [:]
    /// Per such carrier, recipients whose message it would cut (they fail before sending) and the first one's place.
    private(set) var overPartLimit: [String: (count: Int, parts: Int, source: String, line: Int)] = [:]
    private(set) var samples: [Sample] = []
    private var seen = Set<String>()
    private var exclusions = Set<String>()
    /// Problems listed per campaign before the rest are only counted.
    let listLimit = 200

    init(campaign: LoadedCampaign, router: Router, sampleCount: Int = 0) {
        self.campaign = campaign
        self.router = router
        self.sampleCount = sampleCount
    }

    var rejected: Int { Int(totals.rejected) }

    /// Reads the exclusion files, then every segment; `progress` gets (bytes read, bytes total).
    func run(progress: ((Int64, Int64) -> Void)? = nil) {
        let total = (campaign.exclusions + campaign.segments.filter { $0.fromCampaign == nil }).reduce(Int64(0)) { sum, s in
            sum + ((try? FileManager.default.attributesOfItem(atPath: s.path)[.size] as? Int64) ?? 0)
        }
        var done: Int64 = 0
        let sub = campaign.submission
        for ex in campaign.exclusions {
            let reader = ExclusionReader(source: ex.path, format: ex.format, phoneColumn: ex.phoneColumn,
                                         allowedCountryCodes: Set(sub.allowedCountryCodes)) { [self] phones in
                exclusions.formUnion(phones)
            }
            read(ex.path, feed: { try reader.feed($0) }, finish: { try reader.finish() }, done: &done, total: total, progress: progress)
        }
        for seg in campaign.segments {
            if seg.fromCampaign != nil { continue }  // a reminder wave: resolved by the daemon at submit
            let reader = SegmentReader(source: seg.path, format: seg.format, campaign: sub, templates: campaign.templates,
                                       phoneColumn: seg.phoneColumn, router: router) { [self] batch in take(batch) }
            reader.observe = { [self] built, line in
                if samples.count < sampleCount {
                    samples.append(Sample(source: seg.path, line: line, phone: built.phone, carrier: built.carrier, text: built.text,
                                          encoding: built.encoding, segments: built.segments))
                }
            }
            read(seg.path, feed: { try reader.feed($0) }, finish: { try reader.finish() }, done: &done, total: total, progress: progress)
        }
    }

    private func read(_ path: String, feed: (UnsafeRawBufferPointer) throws -> Void, finish: () throws -> Void,
                      done: inout Int64, total: Int64, progress: ((Int64, Int64) -> Void)?) {
        do {
            var local: Int64 = 0
            try LoaCLI.streamFile(path) { chunk in
                try feed(chunk)
                local += Int64(chunk.count)
                progress?(done + local, total)
            }
            done += local
            try finish()
        } catch let e as SegmentReader.HeaderError {
            problems += e.messages.map { Problem(file: e.source, line: e.line, field: e.field, reason: $0) }
        } catch {
            problems.append(Problem(file: path, line: 0, field: "-", reason: "\(error)"))
        }
    }

    private func take(_ batch: [IngestRow]) {
        for r in batch {
            switch r {
            case .accepted(let phone, let carrier, let text, let encoding, let segments, let source, let line, _, let group, let network):
                guard seen.insert(phone).inserted else { totals.duplicate(); continue }
                // Opted out before excluded, as the store records a number that is both (``PreviewTotals``).
                if optOuts?.contains(phone) == true { totals.suppressed(.optOut); continue }
                if exclusions.contains(phone) { totals.suppressed(.excluded); continue }
                // Recipients only: duplicates, exclusions and opt-outs are not sent to any carrier or network.
                totals.recipient(carrier: carrier, network: network, ward: group, encoding: encoding, parts: segments)
                if let limit = partLimits[carrier] {
                    let sent = limit.parts(text, encoding)
                    if sent > limit.maxParts {
                        let seenBefore = overPartLimit[carrier]
                        overPartLimit[carrier] = ((seenBefore?.count ?? 0) + 1, max(seenBefore?.parts ?? 0, sent),
                                                  seenBefore?.source ?? source, seenBefore?.line ?? line)
                    }
                }
                partsIfUnicode += SMSText.prepare(text, policy: .unicode).info.segments
                partsIfASCII += SMSText.prepare(text, policy: .ascii).info.segments
            case .rejected(_, let code, let message, let source, let line):
                totals.rejected(code)
                rejectedRows += 1
                if rejectedRows <= listLimit {
                    problems.append(Problem(file: source, line: line, field: "row", reason: "\(code): \(message)"))
                }
            }
        }
    }
}

extension CampaignScan {
    /// One warning per carrier that would cut some of the campaign's messages (`loa check`, `loa preview`).
    var partLimitWarnings: [String] {
        overPartLimit.sorted { $0.key < $1.key }.map { carrier, o in
            "warning: \(o.count) recipient(s) get messages of up to \(o.parts) parts, more than carrier \(carrier)'s max_parts "
                + "\(partLimits[carrier]?.maxParts ?? 0): they will fail without being sent (first: \(PathText.lastComponent(of: o.source)):\(o.line))"
        }
    }

    /// The part limits of the configured carriers that have one (Jasmin's `max_parts`), as their kinds say.
    static func partLimits(_ config: LoaConfig) -> [String: PartLimit] {
        Dictionary(uniqueKeysWithValues: config.carriers.compactMap { c in c.carrierKind.partLimit(c.options).map { (c.name, $0) } })
    }
}

