import Foundation
import LoaCarriers
import LoaCore
import Testing

/// Honest status (issue 19, item 3): a campaign whose gateway goes down mid-way is shown as not moving, with the
/// reason, in the API, `campaign show` and `--watch`; its end is not "on time"; progress stays under 100%; times
/// are the campaign's local time to the second; `--watch` outlives a daemon restart.
@Suite(.ownThreads, .serialized) struct StatusTests {
    @Test(.timeLimit(.minutes(5))) func aGatewayThatGoesDownIsShownAsTheReasonNothingMoves() async throws {
        let work = WorkDir("status-down")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "5", "--delivered-rate", "1", "--latency-ms", "2"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(SimCarriers.jasmin("gw", sim, rate: 40, inFlight: 4))]", defaultCarrier: "gw",
                                       retry: #"{ "max_attempts": 4, "base_seconds": 0.2, "max_seconds": 1 }"#)
        let n = 600
        _ = SimCampaign.write(work, id: "it-stall", n: n)
        try await loa.start()
        defer { _ = loa.stop() }
        let submit = try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")])
        try #require(submit.status == 0, "submit: \(submit.output)")
        try await poll(60, every: 0.05, "100 messages accepted") { (try await sim.stats()["accepted"] as? Int ?? 0) >= 100 }
        sim.stop()
        let hold = try PortHold(port: sim.port)  // refused while down, and not given to another test's server

        // The API: stalled, with the reason and the carrier; no measured end; progress under 1.
        var view: [String: Any] = [:]
        do {
            try await poll(100, every: 0.2, "the campaign view to show the stall") {
                view = try await loa.campaign("it-stall")
                return (view["stalled"] as? [String: Any])?["reason"] as? String == "breaker-open"
            }
        } catch {
            throw HarnessError(message: "\(error): \(await loa.diagnosis(campaign: "it-stall"))")
        }
        let stalled = view["stalled"] as? [String: Any] ?? [:]
        #expect(stalled["carrier"] as? String == "gw" && (stalled["since"] as? Int ?? 0) > 0, "\(stalled)")
        #expect((stalled["detail"] as? String ?? "").contains("could not connect"), "the gateway's failure is the cause: \(stalled)")
        let measured = view["measured"] as? [String: Any] ?? [:]
        #expect(measured["on_time"] as? Bool == false && measured["eta"] == nil, "\(measured)")
        #expect((view["progress"] as? Double ?? 1) < 1, "\(view["progress"] ?? "")")

        // `campaign show`: the stall and its reason, no "on time", progress under 100%, local time without ms.
        let show = try loa.cli(["campaign", "show", "it-stall"])
        #expect(show.status == 0, "\(show.output)")
        #expect(show.output.contains("STALLED   breaker-open on carrier gw since "), "\(show.output)")
        #expect(show.output.contains("could not connect"), "\(show.output)")
        #expect(show.output.contains("NOT ON TIME") && !show.output.contains("on time: "), "\(show.output)")
        #expect(!show.output.contains("100.0%"), "\(show.output)")
        #expect(show.output.contains("+07:00") && show.output.contains("time zone Asia/Ho_Chi_Minh"), "\(show.output)")
        #expect(show.output.range(of: #"\d\d:\d\d:\d\d\.\d\d\d"#, options: .regularExpression) == nil, "no milliseconds in prose: \(show.output)")
        #expect(show.output.contains("requests/s started") && show.output.contains("parts/s"), "units: \(show.output)")

        // `--watch`: the stall, then the daemon restarts: a notice, and the watch goes on until it answers again.
        let watchLog = work.file("watch.log")
        let watch = try Child(Env.loaBinary, ["campaign", "show", "it-stall", "--watch", "--timeout", "60", "--config", loa.configPath],
                              env: loa.env, log: watchLog)
        defer { if watch.isRunning { watch.signal(SIGKILL); _ = watch.wait(seconds: 5) } }
        try await poll(30, every: 0.1, "--watch to show the stall") { watch.output.contains("STALLED   breaker-open") }
        #expect(loa.stop() == 0)
        try await poll(30, every: 0.1, "--watch to say the daemon is not answering") { watch.output.contains("the daemon is not answering") }
        #expect(watch.isRunning, "--watch ended when the daemon stopped: \(watch.output.suffix(1500))")
        try await loa.start()
        try await poll(30, every: 0.1, "--watch to see the daemon again") { watch.output.contains("the daemon answers again") }
        try await poll(30, every: 0.1, "--watch to redraw after the restart") { (watch.output.components(separatedBy: "the daemon answers again").last ?? "").contains("campaign  it-stall") }

        // The gateway comes back: the campaign completes and the watch ends by itself, exit 0.
        hold.release()
        try await sim.start()
        try await poll(120, every: 0.2, "the campaign to complete") { (try await loa.campaign("it-stall"))["state"] as? String == "completed" }
        #expect(watch.wait(seconds: 30) == 0, "\(watch.output.suffix(1500))")
        #expect(watch.output.contains("campaign  it-stall  (completed)"), "\(watch.output.suffix(800))")
    }
}
