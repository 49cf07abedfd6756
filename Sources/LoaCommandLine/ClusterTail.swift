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
///
/// `-n N`, as `loa tail -n` on one node: the last N matching lines, then (with `--follow`) what comes. Without a
/// filter of its own here, the daemon starts there (`lines=N`); with one, the whole kept log is read and the last N
/// matching lines kept, as `loa tail -n` reads the node's whole file. Lines deleted by the retention while a follow
/// was behind (`event: pruned`) are said on stderr.
struct ClusterTail {
    static let pageEvents = 10_000

    let client: APIClient
    let filter: LogTailer.Filter
    let json: Bool
    let follow: Bool
    var lines: Int?
    var color = false

    func run() async -> Int32 {
        let out = OutputBuffer()
        var last: Int64 = 0
        let localFilter = filter.carrier != nil || filter.event != nil || filter.status != nil || filter.since != nil
        // While reading up to the end for -n: the last matching lines, printed once a page comes back short.
        var kept: LastLines? = lines.map { LastLines(limit: $0) }
        var first = true
        while true {
            var path = "/api/v1/log/stream?scope=cluster&follow=false&limit=\(Self.pageEvents)"
            if first, let lines, !localFilter { path += "&lines=\(lines)" } else { path += "&last_event_id=\(last)" }
            first = false
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
                if event.name == "pruned" {
                    out.flush()
                    LoaCLI.printWarning("tail --cluster: lines after id \(last) were deleted by the retention (store.cluster_log_days) "
                                        + "before they were read (\(TerminalText.sanitize(event.data)))")
                    continue
                }
                guard let id = event.id else { continue }
                if event.name == "place" {
                    // Where the answer ended: the next request goes on after it (ids of other campaigns, the past).
                    last = max(last, id)
                    continue
                }
                count += 1
                last = max(last, id)
                guard let obj = try? JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any], filter.matches(obj) else { continue }
                let text = json ? LoaCLI.terminalJSON(event.data) : LogTailer.readable(obj, color: color)
                if kept != nil {
                    kept!.append(text)
                } else {
                    out.append(text)
                }
            }
            if count < Self.pageEvents, let list = kept {
                for text in list.lines { out.append(text) }
                kept = nil
            }
            out.flush()
            if !follow && count < Self.pageEvents { return 0 }
        }
    }

    /// The events of a server-sent-events body: `id:`, `event:` and `data:` fields, blocks split by blank lines;
    /// comments (`: keep-alive`) are left out; a block with an `id:` alone is the place the answer ended (`place`).
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
            if let data { list.append((id, name, data)) } else if let id { list.append((id, "place", "")) }
        }
        return list
    }
}
