import Foundation
import Testing

/// Issue 16: SIGTERM during a long `loa campaign submit` left the campaign `loading` and the CLI exited 1 without
/// a word. It stops the upload, discards the campaign, says so and exits 128 + the signal.
@Suite(.ownThreads, .serialized) struct SubmitInterruptTests {
    @Test(.timeLimit(.minutes(3)), arguments: [SIGTERM, SIGINT])
    func aSignalDuringTheUploadDiscardsTheCampaign(_ sig: Int32) async throws {
        let work = WorkDir("submit-sig")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p")
        // A segment large enough that its upload is still running when the signal comes: the test checks that.
        let n = 600_000
        var csv = "phone,name\n"
        csv.reserveCapacity(n * 24)
        for i in 0..<n { csv += "09\(String(format: "%08d", 10_000_000 + i * 13 % 89_999_999)),Nguoi \(i)\n" }
        work.write("c/big.csv", csv)
        work.write("c/t.txt", "Xin chao {{name}}\n")
        work.write("c/campaign.json", """
            {"id": "big", "sender": "UBND", "templates": ["t.txt"], "segments": ["big.csv"],
             "start": "2026-11-01T07:00:00+07:00", "deadline": "2099-01-01T00:00:00+07:00"}
            """)
        try await loa.start()
        defer { _ = loa.stop() }
        let cli = try Child(Env.loaBinary, ["campaign", "submit", work.file("c/campaign.json"), "--config", loa.configPath], env: loa.env,
                            log: work.file("submit.log"))
        var rowsAtSignal = 0
        try await poll(60, every: 0.02, "the upload to be under way") {
            guard cli.isRunning else { throw HarnessError(message: "submit ended first:\n\(cli.output)") }
            let c = try await loa.campaign("big")
            rowsAtSignal = c["rows"] as? Int ?? 0
            return c["state"] as? String == "loading" && rowsAtSignal > 0
        }
        cli.signal(sig)
        let status = cli.wait(seconds: 30)
        #expect(rowsAtSignal < n, "the upload had ended before the signal: the test proves nothing")
        #expect(status == 128 + sig, "\(cli.output)")
        #expect(cli.output.contains("loa: error: \(sig == SIGINT ? "SIGINT" : "SIGTERM") while submitting: upload stopped, campaign big discarded; nothing will be sent"),
                "\(cli.output)")
        #expect(try await loa.api("/api/v1/campaigns/big").status == 404)
        let list = try await loa.api("/api/v1/campaigns")
        #expect(list.bodyText == "[]", "\(list.bodyText)")
    }
}
