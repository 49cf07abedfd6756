import Foundation
import LoaDaemon
import LoaSim
import LoaCarriers
import LoaCore

/// `loa report`: one row per recipient as CSV, and a self-contained HTML page with inline SVG charts.
enum CampaignReport {
    /// Writes the CSV page by page from the API into a new 0600 file (it holds phone numbers), under its name only
    /// when every page came (``OutputFile``). Beside the raw `reason` each row has its `reason_code` (ids and
    /// numbers out) and `reason_class` (``FailureReason``), what the report groups by.
    static func writeCSV(_ id: String, to path: String, client: APIClient) async throws -> Int {
        let out = try OutputFile(path, replace: false)
        out.write("message_id,recipient,carrier,final_state,reason,attempts,last_change,segment,line,group,gateway_id,reason_code,reason_class\n")
        var after: Int64 = 0
        var n = 0
        while true {
            let r = try await client.request("GET", "/api/v1/campaigns/\(URLQuery.escape(id))/messages?after=\(after)&limit=10000")
            guard r.status == 200, let page = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
                  let rows = page["rows"] as? [[Any]] else { throw APIClient.Failure(description: APIClient.errorText(r)) }
            var text = ""
            for row in rows where row.count == 11 {
                var fields = row.map { "\($0)" }
                fields[6] = ISOTime.format(Int64(fields[6]) ?? 0)
                let failed = ["failed", "expired"].contains(fields[3])
                fields.append(failed ? FailureReason.code(fields[4]) : fields[4])
                fields.append(failed ? FailureReason.classify(state: fields[3], accepted: !fields[10].isEmpty).rawValue
                                     : ["rejected", "suppressed"].contains(fields[3]) ? FailureReason.Class.notSent.rawValue : "")
                text += CSVWriter.record(fields)
            }
            out.write(text)
            n += rows.count
            guard let next = page["next"] as? Int else { break }
            after = Int64(next)
        }
        try out.commit()
        return n
    }
}
