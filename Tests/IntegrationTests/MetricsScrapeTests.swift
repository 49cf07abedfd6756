import Foundation
import LoaCarriers
import Testing

/// One sample of a Prometheus text scrape.
struct MetricSample: Equatable {
    var name: String
    var labels: [String: String]
    var value: Double
}

/// A Prometheus text scrape read back: its samples and the families its `# TYPE` lines declare.
struct Scrape {
    let text: String
    var samples: [MetricSample] = []
    /// Family name → type (`counter`, `gauge`, `histogram`).
    var families: [String: String] = [:]

    init(_ text: String) {
        self.text = text
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count == 4 { families[String(parts[2])] = String(parts[3]) }
                continue
            }
            if line.hasPrefix("#") { continue }
            guard let sample = Self.sample(String(line)) else { continue }
            samples.append(sample)
        }
    }

    /// `name{a="b",c="d"} value`, with the format's escapes in label values.
    static func sample(_ line: String) -> MetricSample? {
        var chars = Array(line)
        var i = 0
        var name = ""
        while i < chars.count, chars[i] != "{", chars[i] != " " { name.append(chars[i]); i += 1 }
        var labels: [String: String] = [:]
        if i < chars.count, chars[i] == "{" {
            i += 1
            while i < chars.count, chars[i] != "}" {
                var key = ""
                while i < chars.count, chars[i] != "=" { key.append(chars[i]); i += 1 }
                i += 2  // ="
                var value = ""
                while i < chars.count, chars[i] != "\"" {
                    if chars[i] == "\\", i + 1 < chars.count {
                        i += 1
                        value.append(chars[i] == "n" ? "\n" : chars[i])
                    } else {
                        value.append(chars[i])
                    }
                    i += 1
                }
                i += 1
                if i < chars.count, chars[i] == "," { i += 1 }
                labels[key] = value
            }
            i += 1
        }
        chars = Array(chars[min(i, chars.count)...])
        let text = String(chars).trimmingCharacters(in: .whitespaces)
        let v = text == "+Inf" ? Double.infinity : Double(text)
        return v.map { MetricSample(name: name, labels: labels, value: $0) }
    }

    /// The value of the one sample with this name and exactly these labels (nil: none).
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    /// Every sample name a query may use: the families, and a histogram's `_bucket`, `_sum` and `_count`.
    var names: Set<String> {
        var out = Set(families.keys)
        for (name, type) in families where type == "histogram" { out.formUnion([name + "_bucket", name + "_sum", name + "_count"]) }
        return out
    }
}

/// `/metrics` of the real daemon, checked with `promtool`, and the shipped Grafana dashboard and alert rules.
@Suite(.ownThreads, .serialized) struct MetricsScrapeTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let metricsToken = "it-metrics-" + String(UUID().uuidString.prefix(12))

    /// `promtool` with `args` (stdin from `input` when given); (status, output).
    static func promtool(_ args: [String], input: String? = nil) throws -> (status: Int32, output: String) {
        guard let input else { return try run("/usr/bin/env", ["promtool"] + args) }
        return try run("/bin/sh", ["-c", "promtool \(args.joined(separator: " ")) < '\(input)'"])
    }

    /// A campaign through the gateway simulator, 20 % of its requests answered 500: every new series is there with
    /// its labels, `promtool check metrics` finds nothing wrong, and the numbers agree with what the simulator
    /// and the delivery log saw. The read-only token reads `/metrics` and nothing else.
    @Test(.timeLimit(.minutes(4))) func aCampaignThroughTheSimulatorShowsInEveryFamily() async throws {
        let started = Date().timeIntervalSince1970
        let work = WorkDir("metrics-scrape")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "19", "--delivered-rate", "1", "--error-rate", "0.2"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(SimCarriers.kannel("gw", sim))]", defaultCarrier: "gw",
                                       extraConfig: #""metrics_token": { "env": "LOA_METRICS_TOKEN" }"#,
                                       retry: #"{ "max_attempts": 12, "base_seconds": 0.05, "max_seconds": 0.3 }"#)
        loa.extraEnv = ["LOA_METRICS_TOKEN": Self.metricsToken]
        let n = 200
        _ = SimCampaign.write(work, id: "it-metrics", n: n)
        try await loa.start()
        defer { _ = loa.stop() }
        try #require(try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")]).status == 0)
        let states = try await SimCampaign.settle(loa, sim, id: "it-metrics", n: n)
        #expect(states["delivered"] == n, "\(states)")

        // The scrape token reads /metrics; the operator API refuses it (403: known, not allowed there).
        let scraped = try await loa.api("/metrics", token: Self.metricsToken)
        #expect(scraped.status == 200)
        for (path, method) in [("/api/v1/campaigns", "GET"), ("/api/v1/campaigns/it-metrics/cancel", "POST"), ("/api/v1/carriers", "GET")] {
            let r = try await loa.api(path, method: method, token: Self.metricsToken)
            #expect(r.status == 403, "\(method) \(path) with the metrics token: \(r.status) \(r.bodyText)")
        }
        #expect(try await loa.api("/metrics").status == 200, "the operator token still reads /metrics")
        #expect(try await loa.api("/metrics", token: "not-the-token-at-all").status == 401)

        let file = work.file("scrape.txt")
        work.write("scrape.txt", scraped.bodyText)
        let check = try Self.promtool(["check", "metrics"], input: file)
        #expect(check.status == 0, "promtool check metrics:\n\(check.output)")
        let m = Scrape(scraped.bodyText)
        let stats = try await sim.stats()
        let events = loa.logEvents()
        let gw = ["carrier": "gw"]

        // Outcomes per class: accepted = the messages the gateway took = the log's `accepted` lines; temporary = its 500s
        // = the retries (each spent an attempt) = the log's `retry` lines.
        let accepted = events.filter { $0["event"] as? String == "accepted" }.count
        #expect(m.value("loa_carrier_answers_total", ["carrier": "gw", "class": "accepted"]) == Double(n))
        #expect(accepted == n && stats["accepted"] as? Int == n, "log \(accepted), simulator \(stats)")
        let errors = try #require(stats["errors"] as? Int)
        #expect(errors > 10, "the simulator failed too few requests to count: \(stats)")
        #expect(m.value("loa_carrier_answers_total", ["carrier": "gw", "class": "temporary"]) == Double(errors))
        #expect(m.value("loa_message_retries_total", gw) == Double(errors))
        #expect(events.filter { $0["event"] as? String == "retry" }.count == errors)
        #expect(m.value("loa_message_requeues_total", gw) == 0)
        for cls in ["throttled", "permanent", "unavailable", "ambiguous", "unauthorized"] {
            #expect(m.value("loa_carrier_answers_total", ["carrier": "gw", "class": cls]) == 0, "\(cls)")
        }

        // The request histogram: one observation per request, as many as started and as the simulator answered.
        let requests = try #require(stats["requests"] as? Int)
        #expect(m.value("loa_carrier_request_duration_seconds_count", gw) == Double(requests))
        #expect(m.value("loa_carrier_requests_total", gw) == Double(requests))
        expectHistogram(m, "loa_carrier_request_duration_seconds", gw, count: requests, meanBelow: 5)

        // Receipts: every message delivered by a receipt, with its latency, per carrier; none overdue.
        #expect(m.value("loa_receipts_final_total", ["carrier": "gw", "state": "delivered"]) == Double(n))
        for st in ["failed", "rejected", "expired"] { #expect(m.value("loa_receipts_final_total", ["carrier": "gw", "state": st]) == 0) }
        expectHistogram(m, "loa_receipt_latency_seconds", gw, count: n, meanBelow: 60)
        #expect(m.value("loa_receipts_overdue_total", gw) == 0)

        // The queue is empty once the campaign completed; the finished campaign keeps its series (it just finished).
        #expect(m.value("loa_queue_depth", gw) == 0 && m.value("loa_queue_due", gw) == 0 && m.value("loa_queue_oldest_age_seconds", gw) == 0)
        #expect(m.value("loa_messages", ["campaign": "it-metrics", "carrier": "gw", "state": "delivered"]) == Double(n))
        #expect(m.text.contains("# HELP loa_messages Messages by campaign, carrier and state. Per-campaign series are kept for campaigns not finished, and finished ones for an hour"))
        #expect(m.value("loa_campaigns", ["state": "completed"]) == 1 && m.value("loa_campaigns", ["state": "running"]) == 0)
        #expect(m.value("loa_carrier_breaker", ["carrier": "gw", "state": "closed"]) == 1)

        // The process and the build.
        #expect(m.value("loa_build_info", ["version": "0.1.0"]) == 1)
        let cpu = m.value("process_cpu_seconds_total") ?? -1
        let rss = m.value("process_resident_memory_bytes") ?? -1
        let vm = m.value("process_virtual_memory_bytes") ?? -1
        let fds = m.value("process_open_fds") ?? -1
        let maxFDs = m.value("process_max_fds") ?? -1
        let start = m.value("process_start_time_seconds") ?? -1
        #expect(cpu > 0 && cpu < Date().timeIntervalSince1970 - started + 60, "cpu \(cpu)")
        #expect(rss > 1_000_000 && vm >= rss, "rss \(rss), vm \(vm)")
        #expect(fds >= 3 && (maxFDs == -1 || maxFDs >= fds), "fds \(fds) of \(maxFDs)")
        #expect(start >= started - 5 && start <= Date().timeIntervalSince1970, "start \(start), test started \(started)")
        #expect(m.families["process_cpu_seconds_total"] == "counter" && m.families["loa_carrier_request_duration_seconds"] == "histogram")
    }

    /// A running campaign outside its send window: everything queued and nothing due, the queue's age counting,
    /// and what the deadline alert weighs (the window closed, the window time left before the deadline, the deadline).
    @Test(.timeLimit(.minutes(2))) func aRunningCampaignOutsideItsWindowIsQueuedNotDue() async throws {
        let work = WorkDir("metrics-window")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p")
        try await loa.start()
        defer { _ = loa.stop() }
        // A half-hour window twelve hours from now (UTC), and a deadline two days out: two windows fit before it.
        let now = Date()
        let hour = (Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: now).hour! + 12) % 24
        let window = String(format: "%02d:00-%02d:30", hour, hour)
        let deadline = floor(now.timeIntervalSince1970) + 2 * 86_400
        let iso = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: deadline))
        SchedulingPathTests.campaign(work, id: "closed", n: 30, extra: #", "windows": ["\#(window)"], "time_zone": "UTC""#, deadline: iso)
        let submit = try loa.cli(["campaign", "submit", work.file("closed/c.json")])
        try #require(submit.status == 0, "\(submit.output)")
        try await poll(20, "the campaign to run") { try await loa.campaign("closed")["state"] as? String == "running" }
        let m = Scrape(try await loa.api("/metrics").bodyText)
        let kannel = ["carrier": "kannel"]
        #expect(m.value("loa_queue_depth", kannel) == 30 && m.value("loa_queue_due", kannel) == 0, "\(m.text)")
        let age = m.value("loa_queue_oldest_age_seconds", kannel) ?? -1
        #expect(age > 0 && age < 120, "oldest queued age \(age)")
        #expect(m.value("loa_campaigns", ["state": "running"]) == 1)
        #expect(m.value("loa_campaign_send_window_open", ["campaign": "closed"]) == 0)
        #expect(m.value("loa_campaign_window_seconds_left", ["campaign": "closed"]) == 3600)
        #expect(m.value("loa_campaign_deadline_timestamp_seconds", ["campaign": "closed"]) == deadline)
        #expect(m.value("loa_messages", ["campaign": "closed", "carrier": "kannel", "state": "queued"]) == 30)
        #expect(m.value("loa_carrier_requests_total", kannel) == 0 && m.value("loa_carrier_request_duration_seconds_count", kannel) == 0)
    }

    /// A histogram's series: buckets cumulative and ending in `+Inf` = `_count` = `count`, and a plausible mean.
    func expectHistogram(_ m: Scrape, _ name: String, _ labels: [String: String], count: Int, meanBelow: Double,
                         sourceLocation: SourceLocation = #_sourceLocation) {
        let buckets = m.samples.filter { $0.name == name + "_bucket" && $0.labels.filter { $0.key != "le" } == labels }
        #expect(buckets.count >= 2 && buckets.last?.labels["le"] == "+Inf", "\(name) buckets", sourceLocation: sourceLocation)
        #expect(zip(buckets, buckets.dropFirst()).allSatisfy { $0.value <= $1.value }, "\(name) not cumulative", sourceLocation: sourceLocation)
        #expect(buckets.last?.value == Double(count) && m.value(name + "_count", labels) == Double(count), "\(name) count", sourceLocation: sourceLocation)
        let sum = m.value(name + "_sum", labels) ?? -1
        #expect(sum > 0 && sum / Double(count) < meanBelow, "\(name) mean \(sum / Double(count))", sourceLocation: sourceLocation)
    }

    /// The shipped alert rules pass `promtool check rules` and their own unit tests (each alert fires on its
    /// situation); the dashboard is JSON whose queries parse; every metric either names is one the daemon exports.
    @Test(.timeLimit(.minutes(2))) func theShippedAlertsAndDashboardUseWhatTheDaemonExports() async throws {
        let deploy = Self.root.appendingPathComponent("Deploy").path
        let rules = try Self.promtool(["check", "rules", deploy + "/prometheus-alerts.yml"])
        #expect(rules.status == 0 && rules.output.contains("SUCCESS: 5 rules found"), "\(rules.output)")
        let unit = try Self.promtool(["test", "rules", deploy + "/prometheus-alerts.test.yml"])
        #expect(unit.status == 0 && unit.output.contains("SUCCESS"), "\(unit.output)")

        let dashboard = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: deploy + "/grafana-dashboard.json"))) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        let queries = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        #expect(queries.count >= 20 && (dashboard["title"] as? String) == "Loa")
        // The queries parse: promtool checks them as recording rules (Grafana's variables given values).
        let work = WorkDir("metrics-deploy")
        var asRules = "groups:\n  - name: dashboard\n    rules:\n"
        for (i, q) in queries.enumerated() {
            let e = q.replacingOccurrences(of: "$__rate_interval", with: "5m").replacingOccurrences(of: "$instance", with: ".*")
            let quoted = String(decoding: try JSONSerialization.data(withJSONObject: [e], options: [.withoutEscapingSlashes]), as: UTF8.self).dropFirst().dropLast()
            asRules += "      - record: dashboard_query_\(i)\n        expr: \(quoted)\n"
        }
        work.write("dashboard-rules.yml", asRules)
        let parsed = try Self.promtool(["check", "rules", work.file("dashboard-rules.yml")])
        #expect(parsed.status == 0, "the dashboard's queries:\n\(parsed.output)")

        // Every metric they name is exported: read from a scrape of the real daemon (families are declared even
        // before any sample).
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p")
        try await loa.start()
        defer { _ = loa.stop() }
        let exported = Scrape(try await loa.api("/metrics").bodyText).names
        let alertsText = try String(contentsOfFile: deploy + "/prometheus-alerts.yml", encoding: .utf8)
        for (what, text) in [("dashboard", queries.joined(separator: "\n")), ("alerts", alertsText)] {
            let used = Set(text.matches(of: /\b(?:loa|process)_[a-z0-9_]+/).map { String($0.output) })
            #expect(used.count >= (what == "alerts" ? 8 : 20), "\(what) uses \(used.sorted())")
            #expect(used.subtracting(exported).isEmpty, "\(what) uses what the daemon does not export: \(used.subtracting(exported).sorted())")
        }
    }
}
