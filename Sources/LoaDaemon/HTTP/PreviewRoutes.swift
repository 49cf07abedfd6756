import Foundation
import LoaCore
import LoaServer
import LoaStore

/// The console's previews: a campaign's totals as `loa preview` prints them for the same files, from what the
/// daemon holds; and a template rendered while the planner types.
extension DaemonService {
    static let previewEndpoints: [Endpoint] = [
        Endpoint("GET", "/api/v1/campaigns/{id}/preview", access: .role(.viewer)) { s, r in try s.campaignPreview(r["id"]) },
        Endpoint("POST", "/api/v1/preview/template", access: .role(.planner)) { s, _ in
            .body(limit: 64 << 10) { r in try s.templatePreview(r.body) }
        },
    ]

    /// What `GET /api/v1/campaigns/{id}/preview` answers: the totals (``PreviewTotals``, flat), the samples and the
    /// feasibility as the campaign view gives it.
    struct PreviewView: Encodable {
        var id: String
        var state: CampaignState
        var totals: PreviewTotals
        var samples: [CampaignPreview.Sample]
        var feasibility: Feasibility

        func encode(to encoder: any Encoder) throws {
            try totals.encode(to: encoder)
            var c = encoder.container(keyedBy: K.self)
            try c.encode(id, forKey: .id)
            try c.encode(state, forKey: .state)
            try c.encode(samples, forKey: .samples)
            try c.encode(feasibility, forKey: .feasibility)
        }

        enum K: String, CodingKey { case id, state, samples, feasibility }
    }

    /// The totals the store counted as the campaign's segments were ingested (the same rules as `loa preview`).
    /// A campaign with rows but no totals was loaded by a version that did not count them: 409, naming the way out.
    func campaignPreview(_ id: String) throws -> Reply {
        let c = try requireCampaign(id)
        let preview = try store.preview(campaign: id)
        if preview == nil && c.rows > 0 {
            throw APIError(409, "no-preview", "campaign \(id) was loaded by a version of Loa that did not keep its preview; run `loa preview` on its files")
        }
        let p = preview ?? CampaignPreview()
        return .value(PreviewView(id: id, state: c.state, totals: p.totals, samples: p.samples, feasibility: feasibility(c)))
    }

    /// The request body of `POST /api/v1/preview/template`.
    struct TemplatePreviewRequest: Decodable {
        var template: String
        var encoding: String?
        var fields: [String: String]?
    }

    /// Renders a template with the given fields (no store write). A template the parser refuses is 400 with the
    /// line and column it gives, in the message and as fields of the error.
    func templatePreview(_ body: [UInt8]) throws -> Reply {
        let request: TemplatePreviewRequest
        do {
            request = try JSONDecoder().decode(TemplatePreviewRequest.self, from: Data(body))
        } catch let e as DecodingError {
            throw APIError(400, "bad-request", "template preview: \(DecodingProblem.text(e))")
        }
        let policy: EncodingPolicy
        switch request.encoding ?? "auto" {
        case "auto", "gsm7": policy = .auto  // GSM-7 when it fits; `unicode_characters` says what keeps it from fitting
        case "ucs2", "unicode": policy = .unicode
        case "ascii": policy = .ascii
        case let other: throw APIError(400, "bad-request", "encoding: '\(other)' is not one of auto, gsm7, ucs2, unicode, ascii")
        }
        do {
            return .value(try TemplatePreview.render(template: request.template, policy: policy, fields: request.fields ?? [:]))
        } catch {
            let at = error.line > 0 ? "template:\(error.line):\(error.column): " : "template: "
            let body = "{\"error\":{\"code\":\"invalid-template\",\"message\":\(JSONText.quoted(at + error.message)),"
                + "\"line\":\(error.line),\"column\":\(error.column)}}"
            return .json(400, Array(body.utf8))
        }
    }
}
