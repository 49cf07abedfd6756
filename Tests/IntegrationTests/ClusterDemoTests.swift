import Foundation
import Testing

/// Issue 21's set-up: `Deploy/cluster-demo.sh` run whole (its own PostgreSQL 15, a real Kannel with Kannel's fake SMSC,
/// three `loa` daemons n1, n2, n3 from `Config/cluster/` on one schema, the sample campaign submitted on n1), and the
/// template unit `Deploy/loa@.service` its README section installs. What the demo leaves in its directory is read here
/// on its own terms: what the SMSC received per recipient, the report's final states and each node's delivery log.
@Suite(.ownThreads, .serialized, .enabled(if: postgresWanted)) struct ClusterDemoTests {
    /// fakesmsc's log: SMS messages received per recipient (digits), each concatenated part counted as 1/total
    /// (its UDH is 05 00 03 ref total seq, URL-encoded with + for 0x20).
    static func smscMessages(_ path: String) throws -> [String: Double] {
        var out: [String: Double] = [:]
        let re = try NSRegularExpression(pattern: #"Got message \d+: <\S+ \+?(\d+) (\S+) (\S*)"#)
        for line in try String(contentsOfFile: path, encoding: .isoLatin1).split(separator: "\n") {
            let s = String(line)
            guard let m = re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) else { continue }
            func group(_ i: Int) -> String { String(s[Range(m.range(at: i), in: s)!]) }
            var total = 1.0
            if group(2) == "udh", case let udh = percentDecoded(group(3)), udh.count >= 6 { total = Double(udh[4]) }
            out[group(1), default: 0] += 1 / total
        }
        return out
    }

    /// URL-decoded bytes (`+` is 0x20): a UDH is bytes, not UTF-8, so Foundation's `removingPercentEncoding` refuses it.
    static func percentDecoded(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.utf8.startIndex
        let u = s.utf8
        while i < u.endIndex {
            let c = u[i]
            if c == UInt8(ascii: "%"), let end = u.index(i, offsetBy: 3, limitedBy: u.endIndex),
               let b = UInt8(String(decoding: u[u.index(after: i)..<end], as: UTF8.self), radix: 16) {
                out.append(b)
                i = end
            } else {
                out.append(c == UInt8(ascii: "+") ? 0x20 : c)
                i = u.index(after: i)
            }
        }
        return out
    }

    @Test(.timeLimit(.minutes(5))) func threeNodesSendOneCampaignThroughKannelOncePerRecipient() async throws {
        let work = WorkDir("cluster-demo")
        let r = try await KannelSMPPTests.offPool {
            try run("/bin/bash", [Env.root + "/Deploy/cluster-demo.sh"], env: ["LOA_BIN": Env.loaBinary, "LOA_DEMO_DIR": work.path], timeout: 270)
        }
        try #require(r.status == 0, "cluster-demo.sh exited \(r.status):\n\(r.output)")

        // The report (read on n3): one row per recipient, each in a final state.
        let rows = try String(contentsOfFile: work.file("report.csv"), encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let recipients = rows.map { $0[1].filter(\.isNumber) }
        #expect(rows.count == 300 && Set(recipients).count == 300, "\(rows.count) rows, \(Set(recipients).count) recipients\n\(r.output)")
        let finalStates: Set<String> = ["delivered", "failed", "expired", "unknown", "cancelled"]
        #expect(rows.allSatisfy { finalStates.contains($0[3]) }, "\(Set(rows.map { $0[3] }))")

        // The SMSC behind Kannel: every recipient of the report, each exactly once, and no one else.
        let smsc = try Self.smscMessages(work.file("kannel/smsc-received.log"))
        #expect(Set(smsc.keys) == Set(recipients), "\(smsc.count) recipients at the SMSC")
        let notOnce = smsc.filter { $0.value != 1 }
        #expect(notOnce.isEmpty, "recipients not received exactly once at the SMSC: \(notOnce.count)\n\(r.output)")

        // Each node's delivery log: the accepted recipients, none on two nodes, all of them in sum; more than one node sent.
        var byNode: [String: Set<String>] = [:]
        for node in ["n1", "n2", "n3"] {
            let text = (try? String(contentsOfFile: work.file("\(node)/delivery.log"), encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                guard let e = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], e["event"] as? String == "accepted",
                      let to = e["recipient"] as? String else { continue }
                byNode[node, default: []].insert(to.filter(\.isNumber))
            }
        }
        let counts = byNode.mapValues(\.count)
        #expect(counts.values.reduce(0, +) == 300 && byNode.values.reduce(Set<String>()) { $0.union($1) } == Set(recipients), "\(counts)")
        #expect(counts.values.filter { $0 > 0 }.count >= 2, "only one node sent: \(counts)")
        // Everything the demo started is gone: no daemon of this directory still runs.
        let left = try run("/usr/bin/pgrep", ["-f", work.path + "/n[123].json"])
        #expect(left.status == 1, "processes left: \(left.output)")
    }

    /// The template unit: clean `systemd-analyze verify` for an instance (with ExecStart pointing at the binary under
    /// test), exposure under 2.0 as the single unit's, and the node's name in its config path and state directory.
    @Test func theTemplateUnitVerifiesForAnInstance() throws {
        guard let analyze = SystemdTests.tool("systemd-analyze") else {
            Issue.record("systemd-analyze is missing: Deploy/setup-debian.sh test installs systemd"); return
        }
        let unit = try String(contentsOfFile: Env.root + "/Deploy/loa@.service", encoding: .utf8)
        for line in ["ExecStart=/usr/local/bin/loa daemon --config /etc/loa/cluster/%i.json", "StateDirectory=loa/%i",
                     "LoadCredential=pg_password:", "Type=notify", "IPAddressDeny=any"] {
            #expect(unit.contains("\n" + line), "\(line)")
        }
        let work = WorkDir("unit-template")
        work.write("loa@.service", unit.replacingOccurrences(of: "ExecStart=/usr/local/bin/loa ", with: "ExecStart=\(Env.loaBinary) "))
        let verify = try run(analyze, ["verify", work.file("loa@n1.service")])
        #expect(verify.status == 0 && verify.output.isEmpty, "\(verify.output)")
        let security = try run(analyze, ["security", "--offline=yes", work.file("loa@n1.service")])
        let overall = security.output.split(separator: "\n").first { $0.contains("Overall exposure level for loa@n1.service:") }
        let score = overall.flatMap { $0.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) } }
        #expect(score != nil && score! < 2.0, "\(security.output)")
    }
}
