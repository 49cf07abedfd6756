import Foundation
import LoaCarriers
import LoaCore
import LoaDaemon

/// `loa tail --cluster`: the whole cluster's delivery log (every node's lines, each once, in cluster event order)
/// through the daemon's API, `GET /api/v1/log/stream?scope=cluster&follow=false`: answers of at most ``pageEvents``
/// events, each request resuming after the last id printed (`last_event_id`), until one comes back short; with
/// `--follow`, for ever, each request waiting up to 10 s for news (the CLI's HTTP client takes whole answers, so it
/// follows by these long polls rather than one endless stream). The other filters (`--carrier`, `--event`,
/// `--status`, `--since`) are applied here, as `loa tail` does.
struct ClusterTail {
    static let pageEvents = 10_000

    let client: APIClient
    let filter: LogTailer.Filter
    let json: Bool
    let follow: Bool
    var color = false

    func run() async -> Int32 {
        let out = OutputBuffer()
        var last: Int64 = 0
        while true {
            var path = "/api/v1/log/stream?scope=cluster&follow=false&limit=\(Self.pageEvents)&last_event_id=\(last)"
            if let c = filter.campaign { path += "&campaign=\(URLQuery.escape(c))" }
            if follow { path += "&wait=10" }
            let r: HTTPResponse
            do { r = try await client.request("GET", path, timeout: 120) } catch {
                out.flush()
                LoaCLI.printError("tail --cluster: \(error)")
                return 1
            }
            guard r.status == 200 else {
                out.flush()
                LoaCLI.printError("tail --cluster: \(APIClient.errorText(r))")
                return 1
            }
            var count = 0
            for event in Self.events(r.bodyText) {
                if event.name == "gap" {
                    out.flush()
                    LoaCLI.printWarning("tail --cluster: events skipped (\(TerminalText.sanitize(event.data)))")
                    continue
                }
                guard let id = event.id else { continue }
                count += 1
                last = max(last, id)
                guard let obj = try? JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any], filter.matches(obj) else { continue }
                out.append(json ? LoaCLI.terminalJSON(event.data) : LogTailer.readable(obj, color: color))
            }
            out.flush()
            if !follow && count < Self.pageEvents { return 0 }
        }
    }

    /// The events of a server-sent-events body: `id:`, `event:` and `data:` fields, blocks split by blank lines;
    /// comments (`: keep-alive`) are left out.
    static func events(_ body: String) -> [(id: Int64?, name: String?, data: String)] {
        var list: [(Int64?, String?, String)] = []
        for block in body.components(separatedBy: "\n\n") {
            var id: Int64?
            var name: String?
            var data: String?
            for line in block.split(separator: "\n", omittingEmptySubsequences: true) {
                if line.hasPrefix("id: ") { id = Int64(line.dropFirst(4)) }
                else if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
                else if line.hasPrefix("data: ") { data = String(line.dropFirst(6)) }
            }
            if let data { list.append((id, name, data)) }
        }
        return list
    }
}
