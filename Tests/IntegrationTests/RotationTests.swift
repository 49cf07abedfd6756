import Foundation
import LoaCore
import LoaServer
import Testing

/// The shipped `Deploy/logrotate.conf`, run by logrotate itself against a running daemon.
@Suite(.ownThreads, .serialized) struct RotationTests {
    static let logrotate = ["/usr/sbin/logrotate", "/sbin/logrotate", "/usr/bin/logrotate"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The shipped file with what only a test may change, each checked to be there once so a changed shipped file
    /// fails here instead of being tested half: the log's path (the test daemon's data directory), the new file's
    /// owner (no `loa` user here: logrotate keeps the old file's), and the postrotate command. There is no systemd
    /// here, so `systemctl kill --signal=HUP --kill-whom=main loa.service` becomes a pkill of the test daemon's pid
    /// (from a pidfile) under its name `loa`: like systemctl, it signals only that daemon and fails when it is not
    /// running (a bare `kill PID` could hit another process once the pid is reused).
    static func testConfig(log: String, pidfile: String) throws -> String {
        let shipped = try String(contentsOfFile: Env.root + "/Deploy/logrotate.conf", encoding: .utf8)
        let body = shipped.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }.joined(separator: "\n")
        #expect(!body.contains("|| true") && !body.contains("/dev/null"), "the postrotate command must not hide a failure:\n\(body)")
        var conf = body
        for (from, to) in [("/var/lib/loa/delivery.log {", "\(log) {"), ("create 0600 loa loa", "create 0600"),
                           ("systemctl kill --signal=HUP --kill-whom=main loa.service", "pkill -HUP -x -F \(pidfile) loa")] {
            #expect(conf.components(separatedBy: from).count == 2, "the shipped file has `\(from)` once:\n\(body)")
            conf = conf.replacingOccurrences(of: from, with: to)
        }
        return conf + "\n"
    }

    /// logrotate moves the delivery log and signals the daemon: the daemon confirms the reopen in its log (naming the
    /// new file's inode) and in /metrics, the next lines go to the new file and none to the rotated one. With the
    /// daemon stopped, the postrotate command fails and logrotate exits non-zero, saying so.
    @Test(.timeLimit(.minutes(3))) func theShippedFileRotatesARunningDaemonAndFailsLoudlyWithoutIt() async throws {
        let logrotate = try #require(Self.logrotate, "logrotate is not installed: Deploy/setup-debian.sh test installs it")
        let gateway = OutageGateway(outage: 0)
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: gateway)
        defer { server.stop() }
        let work = WorkDir("rotate")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:\(server.port)/cgi-bin/sendsms", username: "u", password: "rotate-pw")
        try await loa.start()
        defer { _ = loa.stop() }
        let log = work.file("data/delivery.log")
        func sent(_ id: String, in path: String) -> Int {
            ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n")
                .filter { $0.contains("\"campaign\":\"\(id)\"") && $0.contains("\"event\":\"accepted\"") }.count
        }
        SchedulingPathTests.campaign(work, id: "before", n: 20)
        try #require(try loa.cli(["campaign", "submit", work.file("before/c.json")]).status == 0)
        try await poll(30, "the first campaign's lines") { sent("before", in: log) == 20 }

        let pidfile = work.file("loa.pid")
        work.write("loa.pid", "\(loa.child!.pid)\n")
        work.write("logrotate.conf", try Self.testConfig(log: log, pidfile: pidfile))
        chmod(work.file("logrotate.conf"), 0o644)
        let state = work.file("logrotate.state")
        let rotated = try run(logrotate, ["-f", "-s", state, work.file("logrotate.conf")])
        #expect(rotated.status == 0, "\(rotated.output)")
        #expect(sent("before", in: log + ".1") == 20, "the old lines are in the rotated file")

        // The daemon confirms the reopen, idle as it is, naming the file it now writes.
        try await poll(20, "the daemon's confirmation") { loa.child!.output.contains("delivery log reopened") }
        var st = stat()
        try #require(stat(log, &st) == 0)
        let confirmation = loa.child!.output.split(separator: "\n").filter { $0.contains("delivery log reopened") }
        #expect(confirmation.count == 1 && confirmation[0].contains("notice loa: delivery log reopened")
                && confirmation[0].contains("file.inode=\(st.st_ino)") && confirmation[0].contains("path=\(log)"), "\(confirmation)")
        let metrics = try await loa.api("/metrics").bodyText
        #expect(metrics.contains("\nloa_delivery_log_reopens_total 1\n") && metrics.contains("\nloa_delivery_log_reopen_failures_total 0\n"), "\(metrics)")
        let at = metrics.split(separator: "\n").first { $0.hasPrefix("loa_delivery_log_last_reopen_timestamp_seconds ") }
        let seconds = at.flatMap { Double($0.split(separator: " ")[1]) } ?? 0
        #expect(abs(seconds - Date().timeIntervalSince1970) < 60, "\(String(describing: at))")

        SchedulingPathTests.campaign(work, id: "after", n: 10, prefix: "0983")
        try #require(try loa.cli(["campaign", "submit", work.file("after/c.json")]).status == 0)
        try await poll(30, "the second campaign's lines in the new file") { sent("after", in: log) == 10 }
        #expect(sent("after", in: log + ".1") == 0 && sent("before", in: log) == 0, "no line in the wrong file")

        // Not running: the signal cannot be delivered, and logrotate says so with its exit status.
        #expect(loa.stop() == 0)
        let failed = try run(logrotate, ["-f", "-s", state, work.file("logrotate.conf")])
        #expect(failed.status != 0, "logrotate succeeded with the daemon stopped:\n\(failed.output)")
        #expect(failed.output.contains("postrotate"), "\(failed.output)")
    }
}
