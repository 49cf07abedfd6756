import Foundation
import LoaCore
import Testing

/// The console in a real browser (issue 20): Debian's chromium driven by chromium-driver through python3-selenium
/// (`Tests/Browser/console_test.py`), against the real `loa daemon` in front of the real Kannel and the scripted
/// SMPP SMSC. Four users, one per role, act through the pages; this side then checks what the store, the API, the
/// audit trail and the SMSC hold, and that the page's preview numbers are `loa preview`'s for the same files.
/// Screenshots of every page stay in `$LOA_ARTIFACTS` (default `.build/test-artefacts/console`).
@Suite(.ownThreads, .serialized) struct ConsoleBrowserTests {
    static let artefacts = ProcessInfo.processInfo.environment["LOA_ARTIFACTS"].flatMap { $0.isEmpty ? nil : $0 }
        ?? Env.root + "/.build/test-artefacts/console"
    static let script = Env.root + "/Tests/Browser/console_test.py"
    static let password = "console horse battery"

    /// Whether chromium, chromium-driver and python3-selenium are there, after `Deploy/setup-debian.sh test` installed
    /// what was missing. Only when that install fails (no package source) is the test skipped, with the reason.
    static let browserTools: (ok: Bool, why: String) = {
        func present() -> Bool {
            FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") && FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver")
                && (try? run("/usr/bin/python3", ["-c", "import selenium"], timeout: 30).status) == 0
        }
        if present() { return (true, "") }
        let setup = try? run("/bin/bash", [Env.root + "/Deploy/setup-debian.sh", "test"], timeout: 600)
        if present() { return (true, "") }
        return (false, "chromium, chromium-driver or python3-selenium is not installed and could not be installed: \(setup?.output.suffix(500) ?? "setup did not run")")
    }()

    /// Two segments of one ward each (`phone,name,ward`): valid numbers ending in 0 (the SMSC delivers those), a few
    /// invalid rows and duplicates within and across the files.
    static func segments(_ work: WorkDir) -> (first: String, second: String) {
        var a = ["phone,name,ward"], b = ["phone,name,ward"]
        for i in 0..<34 { a.append("0912\(String(format: "%05d", i))0,Nguyễn Văn \(i),Bến Nghé") }
        a += ["12345,Sai số,Bến Nghé", "0912abc,Sai số,Bến Nghé", "0912000010,Trùng,Bến Nghé"]
        for i in 0..<26 { b.append("0983\(String(format: "%05d", i))0,Trần Thị \(i),Đa Kao") }
        b += ["0912000020,Trùng giữa hai tệp,Đa Kao", "0912000030,Trùng giữa hai tệp,Đa Kao", "+1 555 0100,Nước ngoài,Đa Kao"]
        work.write("segments/ben-nghe.csv", a.joined(separator: "\n") + "\n")
        work.write("segments/da-kao.csv", b.joined(separator: "\n") + "\n")
        return (work.file("segments/ben-nghe.csv"), work.file("segments/da-kao.csv"))
    }

    /// The figures `loa preview` prints, by its row labels (`recipients`, `rejected`, …), and its per-carrier and
    /// per-reason lists.
    static func cliPreview(_ text: String) -> (totals: [String: Int], carriers: [String: Int], reasons: [String: Int]) {
        var totals: [String: Int] = [:], carriers: [String: Int] = [:], reasons: [String: Int] = [:]
        func pairs(_ s: Substring) -> [String: Int] {
            var out: [String: Int] = [:]
            for p in s.split(separator: ",") {
                let w = p.split(separator: " ")
                if w.count == 2, let n = Int(w[1]) { out[String(w[0])] = n }
            }
            return out
        }
        for line in text.split(separator: "\n") {
            guard line.hasPrefix("  "), line.count > 24 else { continue }
            let label = line.dropFirst(2).prefix(22).trimmingCharacters(in: .whitespaces)
            let value = line.dropFirst(24)
            if label == "per carrier" { carriers = pairs(value); continue }
            if let n = Int(value.prefix { $0.isNumber }) { totals[label] = n }
            if label == "rejected", let open = value.firstIndex(of: "("), let close = value.lastIndex(of: ")") {
                reasons = pairs(value[value.index(after: open)..<close])
            }
        }
        return (totals, carriers, reasons)
    }

    @Test(.timeLimit(.minutes(8)), .enabled(if: browserTools.ok, "\(browserTools.why)"))
    func fourRolesDriveACampaignThroughTheConsoleInChromium() async throws {
        var checks = 0
        func check(_ ok: Bool, _ what: @autoclosure () -> String, sourceLocation: SourceLocation = #_sourceLocation) {
            checks += 1
            #expect(ok, "\(what())", sourceLocation: sourceLocation)
        }
        let work = WorkDir("console-browser")
        let kannel = try await KannelSMPPTests.offPool { try Kannel(dir: work.file("kannel"), smpp: Kannel.SMPP(reportDelay: 0.3)) }
        defer { kannel.stop() }
        // 2 parts a second: the campaign runs for about half a minute, long enough for the operator to pause it.
        let loa = try LoaDaemonProcess(work: work, password: kannel.password, carriers: """
            [{ "name": "kannel", "kind": "kannel", "url": "\(kannel.sendsmsURL)", "username": "\(kannel.username)",
               "password": { "env": "LOA_KANNEL_PASSWORD" }, "receipt_secret": { "env": "LOA_RECEIPT_SECRET" },
               "rate": 2, "max_in_flight": 4, "timeout_seconds": 10 }]
            """, defaultCarrier: "kannel", approval: true)
        try await loa.start()
        defer { _ = loa.stop() }
        let users = ["planner": "lan", "approver": "minh", "operator": "hung", "viewer": "vy"]
        for (role, name) in users {
            let add = try await KannelSMPPTests.offPool { try loa.cli(["users", "add", name, "--role", role], stdin: Self.password + "\n") }
            try #require(add.status == 0, "users add \(name): \(add.output)")
        }
        let (first, second) = Self.segments(work)
        let id = "gop-y-\(UUID().uuidString.prefix(6).lowercased())"
        let template = "Kính gửi {{name}} ({{ward}}): mời góp ý dự thảo trên VNeID trước 30/12."

        // `loa preview` for the same files and template: the numbers the page must show.
        work.write("preview/t.txt", template)
        work.write("preview/c.json", """
            {"id": "\(id)", "sender": "LOA", "templates": ["t.txt"], "segments": ["\(first)", "\(second)"], "windows": ["00:00-24:00"],
             "start": "2026-01-01T00:00:00+07:00", "deadline": "2099-01-01T00:00:00+07:00"}
            """)
        let preview = try await KannelSMPPTests.offPool { try loa.cli(["preview", work.file("preview/c.json")]) }
        try #require(preview.status == 0, "loa preview: \(preview.output)")
        let cli = Self.cliPreview(preview.output)
        try #require(cli.totals["recipients"] == 60, "\(preview.output)")

        try FileManager.default.createDirectory(atPath: Self.artefacts, withIntermediateDirectories: true)
        for old in (try? FileManager.default.contentsOfDirectory(atPath: Self.artefacts)) ?? [] where old.hasSuffix(".png") || old == "downloads" {
            try? FileManager.default.removeItem(atPath: Self.artefacts + "/" + old)
        }
        let env = ["LOA_CONSOLE_URL": loa.base + "/console/", "LOA_API_TOKEN": loa.token, "LOA_PASSWORD": Self.password,
                   "LOA_PLANNER": users["planner"]!, "LOA_APPROVER": users["approver"]!, "LOA_OPERATOR": users["operator"]!,
                   "LOA_VIEWER": users["viewer"]!, "LOA_CAMPAIGN": id, "LOA_TEMPLATE": template, "LOA_SEGMENTS": first + ":" + second,
                   "LOA_PROOF": "0912999990", "LOA_ARTIFACTS": Self.artefacts]
        let browser = try await KannelSMPPTests.offPool { try run("/usr/bin/python3", [Self.script], env: env, timeout: 420) }
        print(browser.output)
        let resultText = (try? String(contentsOfFile: Self.artefacts + "/result.json", encoding: .utf8)) ?? "{}"
        let result = try JSONSerialization.jsonObject(with: Data(resultText.utf8)) as? [String: Any] ?? [:]
        let diagnosis = browser.status == 0 ? "" : await loa.diagnosis(campaign: id)
        try #require(browser.status == 0 && result["ok"] as? Bool == true,
                     "the browser script failed (\(browser.status)):\n\(browser.output.suffix(4000))\n\(diagnosis)")

        // The page's preview numbers are `loa preview`'s.
        let page = result["planner_preview"] as? [String: Any] ?? [:]
        let totals = page["totals"] as? [String: Int] ?? [:]
        let tables = page["tables"] as? [String: [String: Int]] ?? [:]
        for (field, label) in [("rows", "rows read"), ("recipients", "recipients"), ("duplicates", "duplicates"), ("rejected", "rejected"),
                               ("parts", "SMS parts"), ("excluded", "excluded"), ("opted_out", "opted out")] {
            check(totals[field] != nil && totals[field] == cli.totals[label], "\(field): the page shows \(totals[field].map(String.init) ?? "nothing"), loa preview \(cli.totals[label].map(String.init) ?? "nothing")")
        }
        check(tables["per_carrier"] == cli.carriers, "per carrier: page \(tables["per_carrier"] ?? [:]), loa preview \(cli.carriers)")
        check(tables["rejected_by_reason"] == cli.reasons, "rejects by reason: page \(tables["rejected_by_reason"] ?? [:]), loa preview \(cli.reasons)")
        check(tables["per_ward"] == ["Bến Nghé": 34, "Đa Kao": 26], "per ward: \(tables["per_ward"] ?? [:])")

        // The store: sent through Kannel, every recipient delivered, who submitted and who approved.
        let c = try await loa.campaign(id)
        check(c["state"] as? String == "completed", "state \(c["state"] ?? "none")")
        check(c["states"] as? [String: Int] == ["delivered": 60, "rejected": cli.totals["rejected"] ?? -1], "states \(c["states"] ?? "none")")
        check(c["submitted_by"] as? String == users["planner"] && c["approved_by"] as? String == users["approver"], "submitted by \(c["submitted_by"] ?? "?"), approved by \(c["approved_by"] ?? "?")")
        let submits = Set(KannelSMPPTests.smscLog(kannel.smscLog).filter { $0.receipt == nil && $0.status == 0 }.map(\.to))
        check(submits.count == 61 && submits.contains("84912999990"), "the SMSC took \(submits.count) numbers (60 and the proof)")
        check((result["log_receipts"] as? Int ?? 0) > 0, "receipts in the live log: \(result["log_receipts"] ?? 0)")

        // The downloaded report has the rows `loa report --csv` writes.
        let csv = work.file("report.csv")
        let report = try await KannelSMPPTests.offPool { try loa.cli(["report", id, "--csv", csv]) }
        let cliRows = ((try? String(contentsOfFile: csv, encoding: .utf8)) ?? "").split(separator: "\n").count - 1
        check(report.status == 0 && result["report_rows"] as? Int == cliRows, "report rows: page \(result["report_rows"] ?? "none"), loa report \(cliRows)")

        // The refusals changed nothing and the audit trail has each action once, by the right user.
        check(result["planner_approve_status"] as? Int == 403 && result["viewer_pause_status"] as? Int == 403
              && result["viewer_resume_status"] as? Int == 403, "refusals: \(result)")
        let audit = try await AccessTests.audit(loa, token: loa.token)
        func rows(_ action: String) -> [String] { audit.filter { $0["action"] as? String == action && $0["campaign"] as? String == id }.compactMap { $0["user"] as? String } }
        check(rows("campaign.create") == [users["planner"]!], "create: \(rows("campaign.create"))")
        check(rows("campaign.submit") == [users["planner"]!], "submit: \(rows("campaign.submit"))")
        check(rows("campaign.approve") == [users["approver"]!], "approve: \(rows("campaign.approve"))")
        check(rows("campaign.test-send") == [users["approver"]!], "test-send: \(rows("campaign.test-send"))")
        check(rows("campaign.pause") == [users["operator"]!], "pause: \(rows("campaign.pause"))")
        check(rows("campaign.resume") == [users["operator"]!], "resume: \(rows("campaign.resume"))")
        let logins = audit.filter { $0["action"] as? String == "session.login" }.compactMap { $0["user"] as? String }
        check(Set(logins) == Set(users.values), "logins: \(logins)")
        check(audit.contains { $0["action"] as? String == "session.login_failed" && $0["user"] as? String == users["planner"] }, "the wrong password is on the record")

        let shots = result["screenshots"] as? [String] ?? []
        for s in shots {
            let size = (try? FileManager.default.attributesOfItem(atPath: s)[.size] as? Int) ?? 0
            check(size > 10_000, "\(s): \(size) bytes")
        }
        check(shots.count == 10, "\(shots.count) screenshots")
        print("console browser test: \(result["steps"] ?? 0) browser steps, \(result["assertions"] ?? 0) browser assertions, \(checks) store/API assertions; "
              + "screenshots in \(Self.artefacts): \(shots.map { ($0 as NSString).lastPathComponent }.joined(separator: " "))")
        #expect(loa.stop() == 0)
    }
}
