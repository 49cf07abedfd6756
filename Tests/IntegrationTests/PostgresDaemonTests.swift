import Foundation
import LoaCarriers
import LoaCore
import Testing

/// Whether the PostgreSQL cases run: a server is named, or this is CI (where one must be).
let postgresWanted = ProcessInfo.processInfo.environment["LOA_PG_URL"] != nil || ProcessInfo.processInfo.environment["CI"] != nil

/// The real `loa` daemon on PostgreSQL (issue 21's first step) through the gateway simulator: a campaign delivered
/// once per recipient, and the crash test's invariants across SIGKILLs. Runs when `LOA_PG_URL` names a server
/// (Tests/run.sh starts one; in CI it is always set, and without it these tests fail rather than pass unseen).
@Suite(.ownThreads, .serialized, .enabled(if: postgresWanted)) struct PostgresDaemonTests {
    /// The `store` entry for a schema of this test's own; the password from the file Tests/pg.sh wrote.
    static func storeConfig(_ label: String) throws -> String {
        let env = ProcessInfo.processInfo.environment
        guard let url = env["LOA_PG_URL"], let passwordFile = env["LOA_PG_PASSWORD_FILE"] else {
            throw HarnessError(message: "LOA_PG_URL and LOA_PG_PASSWORD_FILE are not set: run the suite through Tests/run.sh")
        }
        let schema = "it_\(label)_\(UInt32.random(in: 0...UInt32.max))"
        return #""store": {"kind": "postgresql", "url": "\#(url)", "password": {"file": "\#(passwordFile)"}, "schema": "\#(schema)", "node": "it"}"#
    }

    static var password: String {
        (try? String(contentsOfFile: ProcessInfo.processInfo.environment["LOA_PG_PASSWORD_FILE"] ?? "", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "no-password-file"
    }

    @Test(.timeLimit(.minutes(3))) func aCampaignIsDeliveredOncePerRecipient() async throws {
        let work = WorkDir("pg-deliver")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "7", "--delivered-rate", "1"], env: ["LOA_SIM_TOKEN": "sim-password"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(SimCarriers.kannel("gw", sim))]", defaultCarrier: "gw",
                                       extraConfig: Self.storeConfig("deliver"))
        let n = 300
        let expected = SimCampaign.write(work, id: "it-pg", n: n)
        try await loa.start()
        defer { _ = loa.stop() }
        let submit = try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")])
        try #require(submit.status == 0, "submit: \(submit.output)")
        let states = try await SimCampaign.settle(loa, sim, id: "it-pg", n: n)
        #expect(states["delivered"] == n, "\(states)")
        let stats = try await sim.stats()
        #expect(stats["accepted"] as? Int == n && stats["duplicates"] as? Int == 0, "\(stats)")
        let accepted = try await sim.accepted()
        #expect(Set(accepted.keys) == Set(expected.keys.map { $0.filter(\.isNumber) }) && accepted.values.allSatisfy { $0 == 1 })
        let events = loa.logEvents()
        #expect(events.filter { $0["event"] as? String == "accepted" }.count == n)
        #expect(events.filter { $0["event"] as? String == "receipt" && $0["status"] as? String == "delivered" }.count == n)
        // The store is PostgreSQL's: no SQLite file in the data directory; the password in no log.
        #expect(!FileManager.default.fileExists(atPath: work.file("data/loa.db")))
        let daemonLog = (try? String(contentsOfFile: work.file("daemon.log"), encoding: .utf8)) ?? ""
        let deliveryLog = (try? String(contentsOfFile: work.file("data/delivery.log"), encoding: .utf8)) ?? ""
        #expect(!daemonLog.contains(Self.password) && !deliveryLog.contains(Self.password), "the database password leaked")
    }

    /// The crash test's invariants on PostgreSQL: killed with SIGKILL twice mid-campaign and restarted, every
    /// recipient ends in one final state, the simulator accepted none twice, and the delivery log agrees with the store.
    @Test(.timeLimit(.minutes(4))) func killedMidCampaignLosesNothingAndSendsNothingTwice() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["LOA_CRASH_SEED"] ?? "") ?? UInt64.random(in: 1...1_000_000)
        var rng = SeededRandom(seed: seed)
        let work = WorkDir("pg-crash")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "\(seed)", "--delivered-rate", "0.9", "--latency-ms", "1",
                                                                 "--receipt-retries", "40", "--receipt-retry-ms", "250"])
        try await sim.start()
        defer { sim.stop() }
        let n = 4_000
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(SimCarriers.kannel("kannel", sim, rate: 1000, inFlight: 32))]",
                                       defaultCarrier: "kannel", extraConfig: Self.storeConfig("crash"))
        let expected = FoundationPathTests.writeCampaign(work, id: "it-pg-crash", n: n)
        try await loa.start()
        let submit = try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")])
        try #require(submit.status == 0, "submit: \(submit.output)")
        let rounds = 2
        for round in 0..<rounds {
            let target = n * round / rounds + Int(rng.next() % UInt64(n / rounds - 200)) + 100
            do {
                try await poll(120, every: 0.02, "\(target) messages sent (seed \(seed))") {
                    guard let s = try await loa.campaign("it-pg-crash")["states"] as? [String: Int] else { return false }
                    return n - (s["queued"] ?? 0) >= target
                }
            } catch {
                Issue.record("\(error)\n\(await loa.diagnosis(campaign: "it-pg-crash"))")
                throw error
            }
            loa.child?.signal(SIGKILL)
            _ = loa.child?.wait(seconds: 10)
            try await loa.start()
        }
        let states = try await SimCampaign.settle(loa, sim, id: "it-pg-crash", n: n, seconds: 180)
        #expect(states.values.reduce(0, +) == n, "seed \(seed): \(states)")
        let stats = try await sim.stats()
        #expect(stats["duplicates"] as? Int == 0, "seed \(seed): the simulator accepted a recipient twice: \(stats)")
        let accepted = try await sim.accepted()
        #expect(accepted.values.allSatisfy { $0 == 1 } && Set(accepted.keys).isSubset(of: Set(expected.keys.map { $0.filter(\.isNumber) })))
        let settled = try await SimCampaign.numbers(loa, "it-pg-crash", in: ["delivered", "failed"])
        let unknown = try await SimCampaign.numbers(loa, "it-pg-crash", in: ["unknown"])
        #expect(settled.isSubset(of: Set(accepted.keys)) && Set(accepted.keys).subtracting(settled).isSubset(of: unknown), "seed \(seed)")
        #expect(settled.count + unknown.count == n, "seed \(seed): \(states), accepted \(accepted.count)")
        let events = loa.logEvents()
        var last: [Int: String] = [:]
        for e in events { if let m = e["message"] as? Int, let s = e["status"] as? String { last[m] = s } }
        var byState: [String: Int] = [:]
        for s in last.values { byState[s, default: 0] += 1 }
        #expect(byState == states.filter { $0.value > 0 }, "seed \(seed): log \(byState) vs store \(states)")
        let seqs = events.compactMap { $0["seq"] as? Int }
        #expect(seqs == Array(1...seqs.count), "seed \(seed): seq must stay gapless across the kills")
        #expect(loa.stop() == 0)
    }
}
