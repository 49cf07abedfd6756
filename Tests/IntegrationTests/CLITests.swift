import Foundation
import Testing

/// The CLI commands that need no daemon, run as a planner would, on the shipped sample campaign.
@Suite struct CLITests {
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

    @Test func checkAndHelp() throws {
        let check = try run(Env.loaBinary, ["check", sample, "--config", "/nonexistent/loa.json"])
        #expect(check.status == 1 && check.output.contains("/nonexistent/loa.json:0: -: cannot read the file"), "\(check.output)")
        let checkCampaignOnly = try run(Env.loaBinary, ["check", sample], env: ["LOA_CONFIG": ""])
        #expect(checkCampaignOnly.output.contains("300 recipients, 0 rejected, 1 duplicates, 0 excluded, 600 SMS parts"), "\(checkCampaignOnly.output)")
        for cmd in ["daemon", "check", "campaign", "tail", "preview", "optout"] {
            let h = try run(Env.loaBinary, [cmd, "--help"])
            #expect(h.status == 0 && h.output.hasPrefix("usage: loa \(cmd)"), "\(cmd): \(h.output)")
        }
        let unknown = try run(Env.loaBinary, ["frobnicate"])
        #expect(unknown.status == 2 && unknown.output.contains("unknown command 'frobnicate'"))
    }
}
