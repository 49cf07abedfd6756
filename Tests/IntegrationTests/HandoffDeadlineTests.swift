import Foundation
import LoaCarriers
import LoaCore
import Testing

/// The deadline held at the handset: Loa at 50/s into a gateway that queues and passes on 5/s (the simulator's
/// queue mode, like Kannel's store in front of a slow SMSC link). Loa learns the pace from the smsc-accepted
/// receipts and hands over no more than can be passed on before the deadline; the rest ends `expired`.
@Suite(.ownThreads, .serialized) struct HandoffDeadlineTests {
    @Test(.timeLimit(.minutes(3))) func nothingReachesAHandsetAfterTheDeadline() async throws {
        let work = WorkDir("handoff-deadline")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "5", "--delivered-rate", "1", "--pass-on-rate", "5"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(SimCarriers.kannel("gw", sim, rate: 50, inFlight: 8))]", defaultCarrier: "gw")
        let n = 300
        let id = "it-handoff"
        _ = SimCampaign.write(work, id: id, n: n)
        // A deadline 30 s out, in whole seconds.
        let deadline = (SystemTimeSource().now() / 1000 + 31) * 1000
        let path = work.file("campaign/campaign.json")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let iso = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(deadline) / 1000))
        work.write("campaign/campaign.json", text.replacingOccurrences(of: "\"deadline\": \"2099-01-01T22:00:00+07:00\"", with: "\"deadline\": \"\(iso)\""))
        try await loa.start()
        defer { _ = loa.stop() }
        let submit = try loa.cli(["campaign", "submit", path])
        try #require(submit.status == 0, "submit: \(submit.output)")

        // While it runs the carrier shows what the gateway holds of ours and, soon, the pace it passes on at.
        var sawOutstanding = 0
        var pace = 0.0
        try await poll(60, every: 0.5, "the deadline to pass") {
            let r = try await loa.api("/api/v1/carriers")
            let list = (try JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]]) ?? []
            if let c = list.first {
                sawOutstanding = max(sawOutstanding, c["handoff_outstanding"] as? Int ?? 0)
                pace = c["pass_on_rate"] as? Double ?? pace
            }
            return SystemTimeSource().now() > deadline + 1000
        }
        try await poll(60, every: 0.3, "every recipient final") {
            let s = try await SimCampaign.states(loa, id)
            return s.filter { SimCampaign.finalStates.contains($0.key) }.values.reduce(0, +) == n
        }
        let states = try await SimCampaign.states(loa, id)
        let stats = try await sim.stats()
        let handed = stats["accepted"] as? Int ?? -1
        let records = try await sim.engine.perform(HTTPRequest(url: sim.base + "/sim/passed-on", timeout: 5)).bodyText
            .split(separator: "\n").map { $0.split(separator: " ") }
        let passed = records.filter { $0.count == 3 && $0[2] == "passed" }.compactMap { Int64($0[1]) }
        let late = passed.filter { $0 > deadline }
        let metrics = try await loa.api("/metrics").bodyText
        let carriers = try loa.cli(["carriers"]).output
        print("handoff deadline run: handed over \(handed), passed on \(passed.count) (\(passed.count - late.count) before the deadline, "
              + "\(late.count) after; the last \(deadline - (passed.max() ?? deadline)) ms before it), states \(states), pace learned \(pace)/s, outstanding at most \(sawOutstanding)")

        // The property: nothing passed on after the deadline.
        #expect(late.count == 0, "\(late.count) of \(handed) passed on after the deadline (up to \((late.max() ?? deadline) - deadline) ms)")
        // The gateway was kept busy (5/s for about 25 s, loosely: a loaded machine), and not flooded.
        #expect(handed >= 50 && handed < n, "handed over \(handed)")
        // What was handed over was delivered; the rest expired at the deadline; the counts add up.
        #expect(states["delivered"] == handed, "\(states)")
        #expect(states["expired"] == n - handed, "\(states)")
        #expect(states.values.reduce(0, +) == n, "\(states)")
        #expect(stats["duplicates"] as? Int == 0)
        #expect(pace > 2 && pace < 10, "pass-on pace learned \(pace)")
        #expect(sawOutstanding > 0)
        #expect(carriers.contains("AT GATEWAY") && carriers.contains(" @"), "\(carriers)")
        #expect(metrics.contains("loa_carrier_handoff_outstanding{carrier=\"gw\"}") && metrics.contains("loa_carrier_passon_rate{carrier=\"gw\"}"))
    }

    /// After a restart the window starts from the store: what the gateway still holds of ours (`sent`, no receipt)
    /// counts at once, so a restart does not hand a queueing gateway a second window's worth.
    @Test(.timeLimit(.minutes(2))) func aRestartRemembersWhatTheGatewayHolds() async throws {
        let work = WorkDir("handoff-restart")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "6", "--delivered-rate", "1", "--pass-on-rate", "2"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(SimCarriers.kannel("gw", sim, rate: 50, inFlight: 8))]", defaultCarrier: "gw")
        let n = 80
        _ = SimCampaign.write(work, id: "it-restart", n: n)
        try await loa.start()
        let submit = try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")])
        try #require(submit.status == 0, "submit: \(submit.output)")
        try await poll(30, every: 0.2, "the gateway to hold most of the campaign") {
            (try await sim.stats()["queued"] as? Int ?? 0) >= 60
        }
        _ = loa.stop()
        try await loa.start()
        defer { _ = loa.stop() }
        let r = try await loa.api("/api/v1/carriers")
        let list = (try JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]]) ?? []
        let outstanding = list.first?["handoff_outstanding"] as? Int ?? -1
        let queued = try await sim.stats()["queued"] as? Int ?? -1
        print("handoff restart: outstanding \(outstanding) after the restart, the gateway's queue \(queued)")
        #expect(outstanding >= 30 && outstanding <= n, "outstanding after the restart: \(outstanding) (the gateway holds \(queued))")
    }
}
