import Foundation
import LoaCarriers
import Testing

/// Issue 16, items 7 and 8, through the real binary: relative paths in the config resolve against the config
/// file's directory, a data directory others can read is refused (or allowed with a warning), and a start after
/// a kill reports what it recovered in its log, `/metrics` and `campaign show`.
@Suite(.ownThreads, .serialized) struct PathsAndRecoveryTests {
    /// A config in `work/conf` whose data dir, secrets and ported-numbers file are all relative paths.
    static func writeConfig(_ work: WorkDir, port: Int) {
        work.write("conf/token.txt", "it-token-" + String(UUID().uuidString.prefix(12)) + "\n")
        work.write("conf/secrets/receipt.txt", "it-receipt-" + String(UUID().uuidString.prefix(12)) + "\n")
        // Exported with a header line, as segment files are.
        work.write("conf/ported.csv", "phone,carrier\n0961234567,mobifone\n")
        work.write("conf/loa.json", """
            {
              "data_dir": "data",
              "listen": { "address": "127.0.0.1", "port": \(port) },
              "api_token": { "file": "token.txt" },
              "carriers": [{ "name": "k", "kind": "kannel", "url": "http://127.0.0.1:9/cgi-bin/sendsms", "username": "u",
                             "receipt_secret": { "file": "secrets/receipt.txt" }, "rate": 10 }],
              "routing": { "default": "k", "ported_numbers": "ported.csv" },
            }
            """)
    }

    /// Starts a daemon with `launch` and waits for its `/healthz` on `port`. If another process of the parallel run
    /// took the port that freePort() had found free ("Address already in use"), the config gets a new port and the
    /// daemon is started again, up to three times, as `LoaDaemonProcess.start` does.
    static func startDaemon(_ work: WorkDir, port: inout Int, engine: CurlEngine, launch: () throws -> Child) async throws -> Child {
        for attempt in 1... {
            let daemon = try launch()
            do {
                try await poll(20, "the daemon's /healthz") { [port] in
                    guard daemon.isRunning else { throw HarnessError(message: "loa daemon exited:\n\(daemon.output)") }
                    return (try? await engine.perform(HTTPRequest(url: "http://127.0.0.1:\(port)/healthz", timeout: 2)).status) == 200
                }
                return daemon
            } catch let e as HarnessError where e.message.contains("port \(port): Address already in use") && attempt < 3 {
                let config = work.file("conf/loa.json")
                let old = port
                port = freePort()
                let text = try String(contentsOfFile: config, encoding: .utf8)
                try text.replacingOccurrences(of: "\"port\": \(old) }", with: "\"port\": \(port) }").write(toFile: config, atomically: false, encoding: .utf8)
            }
        }
        fatalError("unreachable")
    }

    /// `loa ARGS` started in `cwd` (through sh, which changes directory and execs it).
    static func loa(in cwd: String, _ args: [String]) -> [String] {
        ["-c", "cd \"$0\" && exec \"$@\"", cwd, Env.loaBinary] + args
    }

    /// Every value of `key=` in the daemon's log lines (metadata values hold no spaces here).
    static func field(_ log: String, _ key: String) -> [String] {
        log.split(whereSeparator: { $0 == " " || $0 == "\n" }).filter { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
    }

    static func mode(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions]) as? Int) ?? -1
    }

    @Test(.timeLimit(.minutes(2))) func relativePathsResolveAgainstTheConfigFile() async throws {
        let work = WorkDir("paths")
        var port = freePort()
        Self.writeConfig(work, port: port)
        try FileManager.default.createDirectory(atPath: work.file("other"), withIntermediateDirectories: true)
        let dataDir = work.file("conf/data")

        // A bare file name: its directory part is empty, which once put the store at /data and the secrets at /token.txt.
        let check = try run("/bin/sh", Self.loa(in: work.file("conf"), ["check", "--config", "loa.json"]))
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output.contains("loa.json: data_dir \(dataDir)\n"), "\(check.output)")

        // The daemon, started elsewhere with a relative config path, puts its store next to the config.
        let engine = try CurlEngine(maxConnectionsPerHost: 2)
        defer { engine.shutdown() }
        let daemon = try await Self.startDaemon(work, port: &port, engine: engine) {
            try Child("/bin/sh", Self.loa(in: work.file("other"), ["daemon", "--config", "../conf/loa.json"]), log: work.file("daemon.log"))
        }
        defer { daemon.stop() }
        #expect(FileManager.default.fileExists(atPath: dataDir + "/loa.db") && FileManager.default.fileExists(atPath: dataDir + "/delivery.log"))
        #expect(!FileManager.default.fileExists(atPath: work.file("other/data")))
        #expect(daemon.output.contains("data_dir=\(dataDir)"), "\(daemon.output)")
        // What Loa creates only its own user can read, whatever the umask it was started with.
        #expect(Self.mode(dataDir) == 0o700 && Self.mode(dataDir + "/delivery.log") == 0o600 && Self.mode(dataDir + "/loa.db") == 0o600)
        // The token came from conf/token.txt.
        let token = try String(contentsOfFile: work.file("conf/token.txt"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let r = try await engine.perform(HTTPRequest(url: "http://127.0.0.1:\(port)/api/v1/campaigns", headers: [HTTPHeader("Authorization", "Bearer \(token)")]))
        #expect(r.status == 200)
    }

    @Test(.timeLimit(.minutes(2))) func aDataDirOthersMayReadIsRefusedUnlessAllowed() async throws {
        let work = WorkDir("modes")
        var port = freePort()
        Self.writeConfig(work, port: port)
        let config = work.file("conf/loa.json")
        let dataDir = work.file("conf/data")
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        chmod(dataDir, 0o755)

        let refused = try run(Env.loaBinary, ["daemon", "--config", config], timeout: 30)
        #expect(refused.status == 1, "\(refused.output)")
        #expect(refused.output.contains("refusing to start") && Self.field(refused.output, "path") == [dataDir]
                && Self.field(refused.output, "mode") == ["0755"], "\(refused.output)")
        #expect(!FileManager.default.fileExists(atPath: dataDir + "/loa.db"), "nothing is opened before the refusal")
        let check = try run(Env.loaBinary, ["check", "--config", config])
        #expect(check.status == 1 && check.output.contains("data_dir: \(dataDir) has mode 0755"), "\(check.output)")
        let allowedCheck = try run(Env.loaBinary, ["check", "--config", config, "--allow-shared-data-dir"])
        #expect(allowedCheck.status == 0 && allowedCheck.output.contains("warning: \(dataDir) has mode 0755"), "\(allowedCheck.output)")

        // Allowed: it starts, with a warning.
        let engine = try CurlEngine(maxConnectionsPerHost: 2)
        defer { engine.shutdown() }
        func start(_ extra: [String]) async throws -> Child {
            try await Self.startDaemon(work, port: &port, engine: engine) {
                try Child(Env.loaBinary, ["daemon", "--config", config] + extra, log: work.file("daemon.log"))
            }
        }
        let allowed = try await start(["--allow-shared-data-dir"])
        #expect(allowed.output.contains("warning loa: group or others may read") && Self.field(allowed.output, "path") == [dataDir], "\(allowed.output)")
        allowed.stop()

        // A log others may read is refused the same way, by name.
        chmod(dataDir, 0o700)
        chmod(dataDir + "/delivery.log", 0o644)
        let log = try run(Env.loaBinary, ["daemon", "--config", config], timeout: 30)
        #expect(log.status == 1 && Self.field(log.output, "path") == [dataDir + "/delivery.log"] && Self.field(log.output, "mode") == ["0644"],
                "\(log.output)")
        chmod(dataDir + "/delivery.log", 0o600)
        let fine = try await start([])
        #expect(!fine.output.contains("group or others"), "\(fine.output)")
        fine.stop()
    }

    /// The crash test's set-up, smaller: a slow gateway keeps messages in flight, the daemon is killed with
    /// SIGKILL (and a torn line left at the end of its log, as a kill in the middle of an append would), and
    /// the next start reports exactly what it recovered.
    @Test(.timeLimit(.minutes(3))) func aStartAfterAKillReportsWhatItRecovered() async throws {
        let work = WorkDir("recovery")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "16", "--latency-ms", "2000", "--no-receipts"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(SimCarriers.kannel("kannel", sim, rate: 1000, inFlight: 12))]",
                                       defaultCarrier: "kannel")
        _ = FoundationPathTests.writeCampaign(work, id: "it-recover", n: 200)
        try await loa.start()
        // A clean first start: nothing to recover, and it says so.
        #expect(loa.child?.output.contains("store opened: nothing to recover") == true, "\(loa.child?.output ?? "")")
        #expect(Self.field(loa.child?.output ?? "", "recovery.unknown_messages") == ["0"])
        let submit = try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")])
        try #require(submit.status == 0, "submit: \(submit.output)")
        try await poll(60, every: 0.05, "messages in flight") {
            ((try await loa.campaign("it-recover")["states"] as? [String: Int])?["sending"] ?? 0) >= 6
        }
        loa.child?.signal(SIGKILL)
        _ = loa.child?.wait(seconds: 10)
        let fh = try #require(FileHandle(forWritingAtPath: work.file("data/delivery.log")))
        fh.seekToEndOfFile()
        fh.write(Data("{\"v\":1,\"seq\":999999,\"time\":\"2026-11-2".utf8))
        try fh.close()

        try await loa.start()
        let campaign = try await loa.campaign("it-recover")
        let unknown = try #require((campaign["states"] as? [String: Int])?["unknown"])
        #expect(unknown >= 1 && unknown <= 12, "at most max_in_flight: \(unknown)")
        #expect(campaign["recovered_unknown"] as? Int == unknown)
        let log = loa.child?.output ?? ""
        #expect(log.contains("warning loa: recovered after an unclean stop"), "\(log)")
        #expect(Self.field(log, "recovery.unknown_messages") == ["\(unknown)"], "\(log)")
        #expect(Self.field(log, "recovery.unknown_by_campaign") == ["it-recover:\(unknown)"], "\(log)")
        // The torn line is cut; the kill may also have fallen between a transaction's append and its COMMIT.
        #expect(Self.field(log, "recovery.log_torn_lines_cut") == ["1"], "\(log)")
        let uncommitted = Int(Self.field(log, "recovery.log_uncommitted_lines_cut").first ?? "") ?? -1
        let repaired = 1 + uncommitted
        #expect(uncommitted >= 0 && Self.field(log, "recovery.log_lines_repaired") == ["\(repaired)"], "\(log)")
        #expect(Double(Self.field(log, "recovery.seconds").first ?? "") != nil, "\(log)")
        let metrics = try await loa.api("/metrics").bodyText
        #expect(metrics.contains("\nloa_recovery_unknown_messages \(unknown)\n"), "\(metrics)")
        #expect(metrics.contains("\nloa_recovery_log_lines_repaired \(repaired)\n"), "\(metrics)")
        #expect(metrics.contains("\nloa_recovery_seconds "), "\(metrics)")
        // The recovery's own writes (each unknown message's row) are rows the store wrote since this start.
        let rowsWritten = metrics.split(separator: "\n").first { $0.hasPrefix("loa_store_rows_written_total ") }.flatMap { Int($0.split(separator: " ")[1]) }
        #expect((rowsWritten ?? -1) >= unknown, "\(metrics)")
        #expect(metrics.contains("\nloa_campaign_recovered_unknown{campaign=\"it-recover\"} \(unknown)\n"), "\(metrics)")
        let show = try loa.cli(["campaign", "show", "it-recover"])
        #expect(show.output.contains("recovery  \(unknown) in flight at an unclean stop"), "\(show.output)")
        // The delivery log says the same: one `unknown` event per message, after the repaired tail.
        #expect(loa.logEvents().filter { $0["event"] as? String == "unknown" }.count == unknown)

        // A clean stop drains; the start after it recovers nothing, and the campaign keeps its count.
        #expect(loa.stop() == 0)
        try await loa.start()
        #expect(Self.field(loa.child?.output ?? "", "recovery.unknown_messages") == ["0"], "\(loa.child?.output ?? "")")
        let metricsAfter = try await loa.api("/metrics").bodyText
        #expect(metricsAfter.contains("\nloa_recovery_unknown_messages 0\n"))
        #expect(try await loa.campaign("it-recover")["recovered_unknown"] as? Int == unknown)
        #expect(loa.stop() == 0)
    }
}
