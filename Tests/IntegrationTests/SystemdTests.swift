import Foundation
import LoaCore
import LoaServer
import Testing

/// A datagram socket bound where `NOTIFY_SOCKET` says, as systemd's: reads what the daemon sends.
final class NotifySocket {
    let fd: Int32
    /// As `NOTIFY_SOCKET` writes it: a path, or `@name` for an abstract name.
    let address: String

    init(abstract: Bool) throws {
        address = abstract ? "@loa-test-notify-\(UUID().uuidString.prefix(12))" : NSTemporaryDirectory() + "loa-notify-\(UUID().uuidString.prefix(12))"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array(address.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            buf.copyBytes(from: path)
            if abstract { buf[0] = 0 }
        }
        let length = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + path.count + (abstract ? 0 : 1)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(length)) } }
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
    }

    /// The next datagram, or nil when none comes within `seconds`.
    func receive(within seconds: Double) -> String? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(seconds * 1000)) == 1 else { return nil }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buf, buf.count, 0)
        return n < 0 ? nil : String(decoding: buf[..<n], as: UTF8.self)
    }

    /// Sends datagrams to this socket until its queue is full (as when nobody reads it); returns how many went.
    func fill() -> Int {
        let sender = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(sender) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array(address.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            buf.copyBytes(from: path)
            if address.hasPrefix("@") { buf[0] = 0 }
        }
        let length = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + path.count + (address.hasPrefix("@") ? 0 : 1)
        var n = 0
        while n < 100_000 {
            let sent = withUnsafePointer(to: &addr) { a in
                a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(sender, "FILLER", 6, Int32(MSG_DONTWAIT), $0, socklen_t(length)) }
            }
            guard sent == 6 else { break }
            n += 1
        }
        return n
    }

    deinit {
        close(fd)
        if !address.hasPrefix("@") { unlink(address) }
    }
}

/// The systemd side of the daemon, without systemd as PID 1 (this machine has none): the sd_notify datagrams read
/// from a socket bound as systemd binds it, the shipped unit checked by `systemd-analyze`, and the daemon's system
/// calls, traced, checked against the unit's `SystemCallFilter=`.
@Suite(.ownThreads, .serialized) struct SystemdTests {
    static func tool(_ name: String) -> String? {
        ["/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/"].map { $0 + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Under `Type=notify` with a watchdog: READY=1 once the listener answers, WATCHDOG=1 at half WATCHDOG_USEC,
    /// STOPPING=1 at SIGTERM; to a socket path and to an abstract name.
    @Test(.timeLimit(.minutes(2)), arguments: [true, false]) func readyWatchdogAndStoppingReachTheNotifySocket(abstract: Bool) async throws {
        let socket = try NotifySocket(abstract: abstract)
        let work = WorkDir("notify")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "notify-pw")
        loa.extraEnv = ["NOTIFY_SOCKET": socket.address, "WATCHDOG_USEC": "400000"]
        loa.child = try Child(Env.loaBinary, ["daemon", "--config", loa.configPath], env: loa.env, log: work.file("daemon.log"))
        defer { _ = loa.stop() }
        let ready = socket.receive(within: 30)
        #expect(ready == "READY=1\nSTATUS=listening on 127.0.0.1:\(loa.port)", "\(String(describing: ready))\n\(loa.child!.output)")
        // READY=1 comes after the listener is up: the first request is answered.
        #expect(try await loa.api("/healthz").status == 200)
        var pings = 0
        let started = Date()
        while pings < 5, let d = socket.receive(within: 5) {
            #expect(d == "WATCHDOG=1")
            pings += 1
        }
        let elapsed = Date().timeIntervalSince(started)
        #expect(pings == 5 && elapsed < 4, "5 pings at 0.2 s took \(elapsed) s")
        #expect(loa.child!.output.contains("systemd watchdog on watchdog.seconds=0.400"), "\(loa.child!.output)")
        loa.child!.signal(SIGTERM)
        var stopping: String?
        while let d = socket.receive(within: 10) {
            if d != "WATCHDOG=1" { stopping = d; break }
        }
        #expect(stopping == "STOPPING=1\nSTATUS=draining in-flight sends")
        #expect(loa.child!.wait(seconds: 30) == 0)
    }

    /// A notify socket that nobody reads (its queue full of pings) never holds the daemon: the stop still ends at once.
    @Test(.timeLimit(.minutes(2))) func aNotifySocketNobodyReadsNeverHoldsTheStop() async throws {
        let socket = try NotifySocket(abstract: true)
        let work = WorkDir("notify-full")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "notify-pw")
        loa.extraEnv = ["NOTIFY_SOCKET": socket.address, "WATCHDOG_USEC": "200000"]
        try await loa.start()
        defer { _ = loa.stop() }
        // The socket's queue (net.unix.max_dgram_qlen, 10 by default) full, as when systemd does not read it.
        _ = socket.fill()
        #expect(socket.fill() == 0, "the queue is full")
        let stopAsked = Date()
        loa.child!.signal(SIGTERM)
        #expect(loa.child!.wait(seconds: 30) == 0)
        #expect(Date().timeIntervalSince(stopAsked) < 8, "the stop took \(Date().timeIntervalSince(stopAsked)) s")
        #expect(socket.receive(within: 1)?.hasPrefix("READY=1") == true)
    }

    /// The shipped unit: `systemd-analyze verify` finds nothing (with ExecStart pointing at the binary under test, as
    /// verify checks that it exists), and `security --offline=yes` rates its exposure under 2.0.
    @Test func theShippedUnitVerifiesAndItsExposureIsUnderTwo() throws {
        guard let analyze = Self.tool("systemd-analyze") else {
            Issue.record("systemd-analyze is missing: Deploy/setup-debian.sh test installs systemd"); return
        }
        let shipped = Env.root + "/Deploy/loa.service"
        let security = try run(analyze, ["security", "--offline=yes", shipped])
        #expect(security.status == 0, "\(security.output)")
        let overall = security.output.split(separator: "\n").first { $0.contains("Overall exposure level for loa.service:") }
        let score = overall.flatMap { $0.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) } }
        #expect(score != nil && score! < 2.0, "\(security.output)")
        for setting in ["Type=notify", "WatchdogSec=", "LoadCredential=", "SystemCallFilter=@system-service", "ProtectProc=invisible", "ProcSubset=pid",
                        "PrivateUsers=yes", "RemoveIPC=yes", "IPAddressDeny=any", "IPAddressAllow=localhost", "DevicePolicy=closed"] {
            #expect(try String(contentsOfFile: shipped, encoding: .utf8).contains("\n" + setting), "\(setting)")
        }
        #expect(!(try String(contentsOfFile: shipped, encoding: .utf8)).contains("EnvironmentFile="), "secrets come as credentials")

        let work = WorkDir("unit")
        let unit = try String(contentsOfFile: shipped, encoding: .utf8)
        #expect(unit.components(separatedBy: "ExecStart=/usr/local/bin/loa ").count == 2)
        work.write("loa.service", unit.replacingOccurrences(of: "ExecStart=/usr/local/bin/loa ", with: "ExecStart=\(Env.loaBinary) "))
        let verify = try run(analyze, ["verify", work.file("loa.service")])
        #expect(verify.status == 0 && verify.output.isEmpty, "\(verify.output)")
    }

    /// Every system call the daemon makes in a run through its paths (start, sending with retries through an outage,
    /// the API, /metrics, a SIGHUP reopen, the watchdog's datagrams, a drained stop), traced with strace, is one the
    /// unit's filter allows: systemd's `@system-service` without `@privileged` and `@resources`, as
    /// `systemd-analyze syscall-filter` lists them on this machine. Running the daemon under the real filter needs
    /// systemd as PID 1 (`systemd-run`), which this machine does not have; this is the same set, checked without seccomp.
    @Test(.timeLimit(.minutes(4))) func everySystemCallTheDaemonMakesIsInTheUnitsFilter() async throws {
        guard let analyze = Self.tool("systemd-analyze") else {
            Issue.record("systemd-analyze is missing: Deploy/setup-debian.sh test installs systemd"); return
        }
        let strace = try #require(Self.tool("strace"), "strace is missing: Deploy/setup-debian.sh test installs it")
        let unit = try String(contentsOfFile: Env.root + "/Deploy/loa.service", encoding: .utf8)
        let filters = unit.split(separator: "\n").filter { $0.hasPrefix("SystemCallFilter=") }.map { String($0.dropFirst("SystemCallFilter=".count)) }
        #expect(filters == ["@system-service", "~@privileged @resources"], "the filter this test models: \(filters)")
        let groups = try Self.syscallGroups(analyze)
        let allowed = Self.expand(["@system-service"], groups).subtracting(Self.expand(["@privileged", "@resources"], groups))
        #expect(allowed.contains("read") && !allowed.contains("setuid") && !allowed.contains("setrlimit"), "\(allowed.count) allowed")

        let gateway = OutageGateway(outage: 1.5)
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: gateway)
        defer { server.stop() }
        let socket = try NotifySocket(abstract: true)
        let work = WorkDir("syscalls")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:\(server.port)/cgi-bin/sendsms", username: "u", password: "syscall-pw")
        // A watchdog period long enough that the pings never fill the socket's queue (nobody reads them here).
        loa.extraEnv = ["NOTIFY_SOCKET": socket.address, "WATCHDOG_USEC": "4000000"]
        let trace = work.file("strace.out")
        let tracer = try Child(strace, ["-f", "-qq", "-o", trace, "--", Env.loaBinary, "daemon", "--config", loa.configPath], env: loa.env,
                               log: work.file("daemon.log"))
        defer { if tracer.isRunning { tracer.signal(SIGKILL); _ = tracer.wait(seconds: 5) } }
        #expect(socket.receive(within: 60)?.hasPrefix("READY=1") == true, "\(tracer.output)")
        SchedulingPathTests.campaign(work, id: "traced", n: 40)
        try #require(try loa.cli(["campaign", "submit", work.file("traced/c.json")]).status == 0)
        try await poll(60, "the campaign completed") { try await loa.campaign("traced")["state"] as? String == "completed" }
        _ = try await loa.api("/metrics")
        _ = try await loa.api("/readyz")
        _ = try await loa.api("/api/v1/carriers")
        // The daemon is strace's child: signal it, not strace.
        let children = (try? String(contentsOfFile: "/proc/\(tracer.pid)/task/\(tracer.pid)/children", encoding: .utf8)) ?? ""
        let daemon = try #require(children.split(separator: " ").first.flatMap { pid_t($0) }, "the daemon under strace")
        let log = work.file("data/delivery.log")
        try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
        kill(daemon, SIGHUP)
        try await poll(20, "the reopen") { tracer.output.contains("delivery log reopened") }
        kill(daemon, SIGTERM)
        #expect(tracer.wait(seconds: 60) == 0, "\(tracer.output)")

        // Lines look like `PID name(args…) = result`; resumed and signal lines name no new call.
        let text = try String(contentsOfFile: trace, encoding: .utf8)
        var used = Set<String>()
        for line in text.split(separator: "\n") {
            let afterPID = line.drop { $0.isNumber }.drop { $0 == " " }
            guard let paren = afterPID.firstIndex(of: "("), !afterPID.hasPrefix("<...") else { continue }
            let name = afterPID[..<paren]
            if !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) { used.insert(String(name)) }
        }
        #expect(used.count > 20 && used.contains("sendto") && used.contains("openat"), "\(used.sorted())")
        // execve is the exec of loa itself, which systemd makes before the filter applies. fchown: SQLite gives a new
        // -wal or -shm file its database's owner only when running as root (os_unix.c, robustFchown: `osGeteuid() ? 0
        // : osFchown(…)`); under the unit Loa runs as User=loa and never calls it.
        let outside = used.subtracting(allowed).subtracting(["execve"]).subtracting(geteuid() == 0 ? ["fchown"] : [])
        #expect(outside.isEmpty, "system calls the unit's filter would refuse (EPERM): \(outside.sorted())")
    }

    /// The daemon runs under the unit's system-call filter, enforced: a launcher loads a seccomp filter that allows
    /// exactly the set `SystemCallFilter=@system-service` + `~@privileged @resources` allows and fails every other call
    /// with EPERM (`SystemCallErrorNumber=EPERM`), as systemd would, then execs loa. A campaign goes through an outage
    /// and completes, SIGHUP reopens the log, /metrics answers, and the stop is clean. The launcher is python3 calling
    /// libseccomp (which systemd itself links) through ctypes; a control run shows the filter bites (`chroot`, in
    /// `@privileged`, is refused).
    @Test(.timeLimit(.minutes(4))) func theDaemonRunsUnderTheUnitsFilterEnforcedWithSeccomp() async throws {
        guard let analyze = Self.tool("systemd-analyze") else {
            Issue.record("systemd-analyze is missing: Deploy/setup-debian.sh test installs systemd"); return
        }
        let python = try #require(Self.tool("python3"), "python3 is missing: Deploy/setup-debian.sh test installs it")
        let groups = try Self.syscallGroups(analyze)
        let allowed = Self.expand(["@system-service"], groups).subtracting(Self.expand(["@privileged", "@resources"], groups))
        let work = WorkDir("seccomp")
        work.write("allowed.txt", allowed.sorted().joined(separator: "\n") + "\n")
        work.write("launch.py", Self.seccompLauncher)
        let launch = [work.file("launch.py"), work.file("allowed.txt")]
        let control = try run(python, launch + ["/usr/sbin/chroot", "/", "/bin/true"])
        #expect(control.status != 0 && control.output.contains("Operation not permitted"), "the filter refuses chroot: \(control)")

        let gateway = OutageGateway(outage: 1.5)
        let server = try HTTPServer(address: "127.0.0.1", port: 0, service: gateway)
        defer { server.stop() }
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:\(server.port)/cgi-bin/sendsms", username: "u", password: "seccomp-pw")
        loa.child = try Child(python, launch + [Env.loaBinary, "daemon", "--config", loa.configPath], env: loa.env, log: work.file("daemon.log"))
        defer { _ = loa.stop() }
        try await poll(60, "the daemon's /healthz under the filter") {
            guard loa.child?.isRunning == true else { throw HarnessError(message: "loa exited under the filter:\n\(loa.child?.output ?? "")") }
            return (try? await loa.api("/healthz").status) == 200
        }
        let status = (try? String(contentsOfFile: "/proc/\(loa.child!.pid)/status", encoding: .utf8)) ?? ""
        #expect(status.contains("Seccomp:\t2") && status.contains("NoNewPrivs:\t1"), "the daemon runs filtered:\n\(status)")
        SchedulingPathTests.campaign(work, id: "filtered", n: 40)
        let submit = try loa.cli(["campaign", "submit", work.file("filtered/c.json")])
        try #require(submit.status == 0, "\(submit.output)")
        try await poll(60, "the campaign completed under the filter") { try await loa.campaign("filtered")["state"] as? String == "completed" }
        #expect(try await loa.api("/metrics").status == 200)
        let log = work.file("data/delivery.log")
        try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
        loa.child!.signal(SIGHUP)
        try await poll(20, "the reopen under the filter") { loa.child!.output.contains("delivery log reopened") }
        #expect(loa.stop() == 0, "\(loa.child!.output)")
        #expect(!loa.child!.output.contains("Operation not permitted"), "\(loa.child!.output)")
    }

    /// `launch.py ALLOWED-FILE PROGRAM ARGS…`: loads a seccomp filter allowing the listed system calls (EPERM for
    /// every other) and execs PROGRAM. libseccomp sets no_new_privs, as NoNewPrivileges=yes does.
    static let seccompLauncher = """
        import ctypes, errno, os, sys
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        ctx = lib.seccomp_init(0x00050000 | errno.EPERM)  # SCMP_ACT_ERRNO(EPERM)
        for name in open(sys.argv[1]).read().split():
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr >= 0 and lib.seccomp_rule_add(ctx, 0x7fff0000, nr, 0) != 0:  # SCMP_ACT_ALLOW
                sys.exit("cannot allow " + name)
        if lib.seccomp_load(ctx) != 0:
            sys.exit("seccomp_load failed")
        os.execv(sys.argv[2], sys.argv[2:])

        """

    /// `systemd-analyze syscall-filter`: every group with its members (names and `@groups`).
    static func syscallGroups(_ analyze: String) throws -> [String: [String]] {
        let out = try run(analyze, ["syscall-filter"])
        var groups: [String: [String]] = [:]
        var current: String?
        for raw in out.output.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if raw.hasPrefix("@") { current = line; groups[line] = []; continue }
            if let current { groups[current]?.append(line) }
        }
        return groups
    }

    static func expand(_ names: [String], _ groups: [String: [String]]) -> Set<String> {
        var out = Set<String>()
        for n in names {
            if n.hasPrefix("@") { out.formUnion(expand(groups[n] ?? [], groups)) } else { out.insert(n) }
        }
        return out
    }
}
