import Foundation
import Testing

/// The CLI commands that need no daemon, run as a planner would, on the shipped sample campaign.
@Suite(.ownThreads) struct CLITests {
    let sample = Env.root + "/Config/campaigns/vneid-gopy/campaign.json"

    @Test func previewCountsTheSampleWithoutAStore() throws {
        let work = WorkDir("preview")
        let r = try run(Env.loaBinary, ["preview", sample, "--sample", "2", "--config", work.file("none.json")])
        #expect(r.status == 0, "\(r.output)")
        let out = r.output
        #expect(out.contains("rows read             301"))
        #expect(out.contains("recipients            300"))
        #expect(out.contains("duplicates            1"))
        #expect(out.contains("SMS parts             600  (300 messages in UCS-2, 0 in GSM-7)"))
        #expect(out.contains("if encoding ascii     300 parts: saves 300 parts (50%)"))
        #expect(out.contains("1. phuong-ben-nghe.csv:2  +8498****772"))
        #expect(out.contains("reading segments: 100%"), "plain progress lines when stderr is not a terminal")
        #expect(!FileManager.default.fileExists(atPath: work.file("data")))
    }

    /// Issue 16: "per network" counted every valid row, duplicates and exclusions included; it counts the
    /// recipients, as "per carrier" does.
    @Test func previewCountsRecipientsPerNetwork() throws {
        let work = WorkDir("preview-net")
        // Viettel 0961…, 0971…, 0981… and a duplicate; MobiFone 0901…, 0931… (excluded); VinaPhone 0912….
        work.write("c/s.csv", "phone\n0961234567\n0971234567\n0981234567\n+84 961 234 567\n0901234567\n0931234567\n0912345678\n")
        work.write("c/ex.txt", "0931234567\n")
        work.write("c/t.txt", "Xin chao\n")
        work.write("c/campaign.json", """
            {"id": "net", "sender": "UBND", "templates": ["t.txt"], "segments": ["s.csv"], "exclude": ["ex.txt"],
             "start": "2026-11-01T07:00:00+07:00", "deadline": "2099-01-01T00:00:00+07:00"}
            """)
        let r = try run(Env.loaBinary, ["preview", work.file("c/campaign.json"), "--sample", "0", "--config", work.file("none.json")])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("recipients            5"), "\(r.output)")
        #expect(r.output.contains("duplicates            1") && r.output.contains("excluded              1"), "\(r.output)")
        #expect(r.output.contains("per network           viettel 3, mobifone 1, vinaphone 1\n"), "\(r.output)")
    }

    @Test func checkAndHelp() throws {
        let check = try run(Env.loaBinary, ["check", sample, "--config", "/nonexistent/loa.json"])
        #expect(check.status == 1 && check.output.contains("/nonexistent/loa.json:0: -: cannot read the file"), "\(check.output)")
        let checkCampaignOnly = try run(Env.loaBinary, ["check", sample], env: ["LOA_CONFIG": ""])
        #expect(checkCampaignOnly.output.contains("300 recipients, 0 rejected, 1 duplicates, 0 excluded (opt-outs are applied by the daemon at submit), 600 SMS parts"), "\(checkCampaignOnly.output)")
        for cmd in ["daemon", "check", "campaign", "tail", "preview", "optout", "version"] {
            let h = try run(Env.loaBinary, [cmd, "--help"])
            #expect(h.status == 0 && h.output.hasPrefix("usage: loa \(cmd)"), "\(cmd): \(h.output)")
        }
        let unknown = try run(Env.loaBinary, ["frobnicate"])
        #expect(unknown.status == 2 && unknown.output.contains("unknown command 'frobnicate'"))
    }
}

/// `loa tail -f` keeps following the log across a rotation (logrotate moves it, SIGHUP makes a new one).
@Suite(.ownThreads, .serialized) struct TailFollowTests {
    @Test(.timeLimit(.minutes(1))) func followsAcrossRotation() async throws {
        let work = WorkDir("tailf")
        work.write("loa.json", """
            { "data_dir": "data", "api_token": {"env": "T"}, "carriers": [{"name": "k", "kind": "kannel",
              "url": "http://127.0.0.1:9/x", "receipt_secret": {"env": "T"}, "rate": 1}], "routing": {"default": "k"} }
            """)
        let log = work.file("data/delivery.log")
        func line(_ seq: Int, _ status: String) -> String {
            "{\"v\":1,\"seq\":\(seq),\"time\":\"2026-11-24T01:00:00.000Z\",\"campaign\":\"c\",\"message\":\(seq),\"event\":\"receipt\",\"status\":\"\(status)\",\"attempt\":1}\n"
        }
        work.write("data/delivery.log", line(1, "delivered"))
        let tail = try Child(Env.loaBinary, ["tail", "-f", "--status", "delivered", "--config", work.file("loa.json")],
                             env: ["T": "0123456789abcdef-token"], log: work.file("tail.out"))
        defer { tail.signal(SIGTERM); _ = tail.wait(seconds: 5) }
        try await poll(10, "the first line") { tail.output.contains("#1 ") }
        let fh = try #require(FileHandle(forWritingAtPath: log))
        fh.seekToEndOfFile()
        fh.write(Data((line(2, "failed") + line(3, "delivered")).utf8))
        try fh.close()
        try await poll(10, "an appended line") { tail.output.contains("#3 ") }
        try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
        try line(4, "delivered").write(toFile: log, atomically: false, encoding: .utf8)
        try await poll(10, "a line of the new file") { tail.output.contains("#4 ") }
        #expect(!tail.output.contains("#2 "), "the --status filter holds")
    }
}
