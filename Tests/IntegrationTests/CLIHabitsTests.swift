import Foundation
import LoaCarriers
import LoaCore
import Testing

/// CLI habits (issue 19, item 7), each through the real binary: colour off by NO_COLOR, TERM=dumb and
/// --no-color; problems on stderr under one prefix, results on stdout; no half-written output files; a campaign
/// that does not exist is an error everywhere; `version --help`; plain words, one meaning each.
@Suite(.ownThreads, .serialized) struct CLIHabitsTests {
    /// A daemon whose carrier is unreachable (nothing is sent; messages wait).
    static func daemon(_ work: WorkDir) throws -> LoaDaemonProcess {
        try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "sim-password")
    }

    @Test(.timeLimit(.minutes(2))) func colourIsOffForNoColorTermDumbAndTheFlag() throws {
        let work = WorkDir("habits-color")
        let loa = try Self.daemon(work)
        work.write("data/delivery.log", #"{"time":"2026-12-02T06:00:00.000Z","campaign":"c1","message":1,"recipient":"+8491***000","carrier":"kannel","event":"receipt","status":"delivered"}"# + "\n")
        // script(1) gives the command a terminal: colour is on there unless something turns it off (NO_COLOR
        // empty: the test runner may have set it).
        func tail(_ env: [String: String], _ extra: String = "") throws -> String {
            let command = "\(Env.loaBinary) tail --config \(loa.configPath) \(extra)"
            let r = try run("/usr/bin/script", ["-qec", command, "/dev/null"], env: loa.env.merging(["TERM": "xterm", "NO_COLOR": ""]) { $1 }.merging(env) { $1 })
            #expect(r.status == 0, "\(r.output)")
            #expect(r.output.contains("c1"), "\(r.output)")
            return r.output
        }
        let plain = try tail([:])
        #expect(plain.contains("\u{1B}["), "a terminal gets colour: \(plain.debugDescription)")
        #expect(!(try tail(["NO_COLOR": "1"])).contains("\u{1B}["), "NO_COLOR")
        #expect(!(try tail(["NO_COLOR": "yes please"])).contains("\u{1B}["), "NO_COLOR, any value")
        #expect(!(try tail(["TERM": "dumb"])).contains("\u{1B}["), "TERM=dumb")
        #expect(!(try tail([:], "--no-color")).contains("\u{1B}["), "--no-color")
    }

    @Test func problemsGoToStderrUnderOnePrefixAndResultsToStdout() throws {
        let work = WorkDir("habits-stderr")
        work.write("bad.json", #"{ "data_dir": "data", "listen": { "port": "x" } }"#)
        let check = try runSplit(Env.loaBinary, ["check", "--config", work.file("bad.json")])
        #expect(check.status == 1)
        #expect(check.stdout.isEmpty, "problems are not results: \(check.stdout)")
        let lines = check.stderr.split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { $0.hasPrefix("loa: error: ") && $0.contains("bad.json:") }, "\(check.stderr)")

        work.write("campaign.json", #"{ "id": "x" }"#)
        let submit = try runSplit(Env.loaBinary, ["campaign", "submit", work.file("campaign.json"), "--config", work.file("bad.json")])
        #expect(submit.status == 1 && submit.stdout.isEmpty)
        #expect(submit.stderr.split(separator: "\n").allSatisfy { $0.hasPrefix("loa: error: ") }, "\(submit.stderr)")

        let unknown = try runSplit(Env.loaBinary, ["frobnicate"])
        #expect(unknown.status == 2 && unknown.stderr.hasPrefix("loa: error: unknown command 'frobnicate'"), "\(unknown.stderr)")

        let version = try runSplit(Env.loaBinary, ["version", "--help"])
        #expect(version.status == 0 && version.stdout.contains("usage: loa version"), "\(version)")
    }

    @Test(.timeLimit(.minutes(3))) func withADaemon() async throws {
        let work = WorkDir("habits-daemon")
        let loa = try Self.daemon(work)
        try await loa.start()
        defer { _ = loa.stop() }
        func cli(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            try runSplit(Env.loaBinary, args + ["--config", loa.configPath], env: loa.env)
        }

        // Nonexistent campaigns are errors everywhere; no output file is left behind, not even a header.
        let tail = try cli(["tail", "--campaign", "nosuch"])
        #expect(tail.status == 1 && tail.stderr.hasPrefix("loa: error: ") && tail.stderr.contains("nosuch"), "\(tail)")
        for args in [["report", "nosuch", "--csv", work.file("x.csv")], ["report", "nosuch", "--html", work.file("x.html")],
                     ["campaign", "rejects", "nosuch", "--csv", work.file("r.csv")], ["campaign", "show", "nosuch"],
                     ["campaign", "pause", "nosuch"]] {
            let r = try cli(args)
            #expect(r.status == 1 && r.stderr.hasPrefix("loa: error: ") && r.stdout.isEmpty, "\(args): \(r)")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: work.path).filter { $0.hasPrefix("x.") || $0.hasPrefix("r.") || $0.contains(".tmp-") }
        #expect(left.isEmpty, "half-written files: \(left)")

        // Plain words: the opt-out list.
        let add = try cli(["optout", "add", "+84961000007"])
        #expect(add.status == 0 && add.stdout == "1 number opted out (0 numbers already were); the opt-out list holds 1 number\n", "\(add)")

        // One meaning per word: an excluded number and an opted-out one are both suppressed, and said apart.
        _ = SimCampaign.write(work, id: "it-words", n: 20, extra: #""exclude": ["exclude.txt"]"#)
        work.write("campaign/exclude.txt", "0911000000\n")
        let submit = try cli(["campaign", "submit", work.file("campaign/campaign.json")])
        #expect(submit.status == 0, "\(submit)")
        #expect(submit.stdout.contains("exclude.txt: 1 numbers read, 1 added to the campaign's exclusion list, 0 not valid numbers"), "\(submit.stdout)")
        #expect(!submit.stdout.contains("{"), "no raw JSON: \(submit.stdout)")
        #expect(submit.stdout.contains("2 suppressed (1 opted out, 1 excluded)"), "\(submit.stdout)")
        let show = try cli(["campaign", "show", "it-words"])
        #expect(show.stdout.contains("opted out 1") && show.stdout.contains("excluded 1"), "\(show.stdout)")
        let html = work.file("words.html")
        #expect(try cli(["report", "it-words", "--html", html]).status == 0)
        #expect(try String(contentsOfFile: html, encoding: .utf8).contains("2 suppressed (1 opted out, 1 excluded)"))

        // Files holding numbers are 0600, and come whole.
        let csv = work.file("words.csv")
        let report = try cli(["report", "it-words", "--csv", csv])
        #expect(report.status == 0, "\(report)")
        let mode = (try FileManager.default.attributesOfItem(atPath: csv)[.posixPermissions] as? Int) ?? 0
        #expect(mode == 0o600, "mode \(String(mode, radix: 8))")
        #expect(try cli(["campaign", "cancel", "it-words"]).status == 0)
    }
}
