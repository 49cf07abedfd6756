import Foundation
import LoaCore
import LoaStore
import Synchronization

/// The measured pace of every campaign that may send, sampled every two seconds on a thread of its own (and at
/// each view), so that `campaign show` has a rate over the last minute even when nobody watched before.
///
/// One read of the campaigns' counts per round (the `counts` table, a few rows per campaign): no scan of
/// messages. Campaigns that can no longer send are forgotten.
final class CampaignPaces: Sendable {
    private let paces = Mutex<[String: CampaignPace]>([:])
    private let worker = Worker(name: "loa-pace")
    static let every = 2.0

    /// Records `c`'s remaining count now and returns its pace.
    @discardableResult
    func record(_ c: CampaignRecord, now: UnixMillis) -> CampaignPace {
        let remaining = CampaignView.remaining(c)
        return paces.withLock { p in
            p[c.id, default: CampaignPace()].record(remaining: remaining, at: now)
            return p[c.id]!
        }
    }

    func start(store: any MessageStore, clock: any TimeSource) {
        worker.start { [self] w in
            while w.wait(until: .after(seconds: Self.every)) {
                guard let list = try? store.campaigns() else { continue }
                let now = clock.now()
                let live = list.filter { [.scheduled, .running, .paused].contains($0.state) }
                for c in live where c.state != .scheduled { record(c, now: now) }
                let keep = Set(live.map(\.id))
                paces.withLock { p in p = p.filter { keep.contains($0.key) } }
            }
        }
    }

    func stop() { worker.stop(by: .after(seconds: 5)) }
}

/// Why a campaign is not moving: the `stalled` object of the campaign view.
struct Stall: Encodable, Equatable {
    /// `breaker-open`, `auth-refused`, `carrier-paused`, `throttled`, `outside-send-window`, `campaign-paused`,
    /// `not-moving` (nothing left for ``CampaignView/quietMillis`` with no cause Loa knows).
    var reason: String
    /// The carrier that holds the messages, when one does.
    var carrier: String?
    /// Since when nothing has left (ms since the epoch, UTC): the last time the remaining count fell, or since
    /// this daemon began watching the campaign.
    var since: UnixMillis
    /// The cause in words: the gateway's failing answer, the refusal, when the window opens again.
    var detail: String
}

/// The measured side of the view: what is leaving now, and the end it leads to.
struct Measured: Encodable, Equatable {
    /// Messages (not SMS parts) that left per second over the last minute; nil while fewer than 10 s are sampled.
    var messagesPerSecond: Double?
    var windowSeconds = Int(CampaignPace.window / 1000)
    /// Messages queued or in flight.
    var remaining: Int64
    /// When sending ends at the measured rate within the send windows; nil when it does not before the deadline,
    /// nothing is leaving, or the rate is not measured yet.
    var eta: UnixMillis?
    /// Whether sending ends before the deadline at the measured rate; nil while not measured.
    var onTime: Bool?
    var warning: String?
}

/// The operator API's view of a campaign: the record, progress, the planned feasibility (configured rates), the
/// measured pace and, when nothing is leaving, why.
struct CampaignView: Encodable {
    var campaign: CampaignRecord
    var progress: Double
    var finalCount: Int64
    var feasibility: Feasibility
    var measured: Measured?
    var stalled: Stall?

    /// Nothing left for this long, with no cause known: `not-moving`.
    static let quietMillis: Int64 = 30_000

    static func remaining(_ c: CampaignRecord) -> Int64 { (c.states["queued"] ?? 0) + (c.states["sending"] ?? 0) }

    init(_ c: CampaignRecord, now: UnixMillis, feasibility: Feasibility, pace: CampaignPace? = nil,
         carriers: [Dispatcher.CarrierStatus] = []) {
        campaign = c
        self.feasibility = feasibility
        // Every recipient (rejected rows aside) counts; progress is the share in a final state.
        let recipients = c.states.filter { $0.key != MessageState.rejected.name }
        finalCount = recipients.filter { MessageState(name: $0.key)?.isFinal == true }.values.reduce(0, +)
        let total = recipients.values.reduce(0, +)
        progress = total == 0 ? 1 : Double(finalCount) / Double(total)
        guard let pace, [.running, .paused].contains(c.state) else { return }
        stalled = Self.stall(c, now: now, pace: pace, carriers: carriers)
        measured = Self.measure(c, now: now, pace: pace, stalled: stalled != nil)
    }

    /// Why `c` is not moving, or nil when it is (or has nothing left). A cause holds the campaign only when every
    /// carrier with messages of it left is held; a campaign split over two carriers, one of them up, is moving.
    static func stall(_ c: CampaignRecord, now: UnixMillis, pace: CampaignPace, carriers: [Dispatcher.CarrierStatus]) -> Stall? {
        let left = remaining(c)
        guard left > 0 else { return nil }
        let since = pace.lastMovedAt ?? pace.watchedSince ?? now
        if c.state == .paused { return Stall(reason: "campaign-paused", carrier: nil, since: since, detail: "paused by the operator; `loa campaign resume \(c.id)` continues it") }
        let windows = c.spec?.sendWindows ?? .standard
        if !windows.isOpen(at: now) {
            let opens = windows.nextOpen(after: now)
            return Stall(reason: "outside-send-window", carrier: nil, since: since,
                         detail: "the send windows (\((c.spec?.windows ?? []).joined(separator: ", ")) \(windows.timeZone.identifier)) are closed until \(ISOTime.format(opens))")
        }
        let holding = c.carriers.filter { ($0.value["queued"] ?? 0) + ($0.value["sending"] ?? 0) > 0 }.keys.sorted()
        let causes = holding.map { name in (name, carriers.first { $0.name == name }.flatMap { held($0, now: now) }) }
        if !causes.isEmpty, causes.allSatisfy({ $0.1 != nil }), let (name, cause) = causes.first, let cause {
            return Stall(reason: cause.reason, carrier: name, since: since, detail: cause.detail)
        }
        if now - since >= quietMillis {
            let most = holding.max { (c.carriers[$0]?["queued"] ?? 0) < (c.carriers[$1]?["queued"] ?? 0) }
            return Stall(reason: "not-moving", carrier: most, since: since,
                         detail: "nothing has left for \((now - since) / 1000) s; see `loa carriers`")
        }
        return nil
    }

    /// What holds a carrier's messages now, if anything.
    static func held(_ s: Dispatcher.CarrierStatus, now: UnixMillis) -> (reason: String, detail: String)? {
        if let why = s.authRefused { return ("auth-refused", "the gateway refuses Loa's credentials: \(why)") }
        if let why = s.pausedReason { return ("carrier-paused", "paused after identical permanent answers: \(why); `loa carriers resume \(s.name)` ends it") }
        if s.breaker != .closed {
            return ("breaker-open", "the circuit breaker is \(s.breaker.rawValue)" + (s.breakerCause.map { " after: \($0)" } ?? ""))
        }
        if s.pausedUntil > now { return ("throttled", "the gateway asked Loa to wait until \(ISOTime.format(s.pausedUntil))") }
        return nil
    }

    /// The end sending reaches at the measured rate, within the campaign's windows and before its deadline.
    static func measure(_ c: CampaignRecord, now: UnixMillis, pace: CampaignPace, stalled: Bool) -> Measured {
        let left = remaining(c)
        var m = Measured(messagesPerSecond: pace.rate(at: now), remaining: left)
        let windows = c.spec?.sendWindows ?? .standard
        if left == 0 {
            m.eta = now
            m.onTime = true
        } else if stalled || m.messagesPerSecond == 0 {
            m.onTime = false
            m.warning = "nothing is leaving: no end can be estimated until messages move again"
        } else if let rate = m.messagesPerSecond {
            let needed = Double(left) / rate
            let from = max(now, c.startAt)
            m.eta = windows.advance(from: from, openSeconds: needed, limit: c.deadlineAt)
            m.onTime = m.eta != nil
            if m.eta == nil {
                let window = from >= c.deadlineAt ? 0 : windows.openSeconds(from: from, to: c.deadlineAt)
                m.warning = String(format: "at the measured %.1f messages/s sending needs %.1f h; %.1f h of window left before the deadline",
                                   rate, needed / 3600, window / 3600)
            }
        }
        return m
    }

    func encode(to encoder: any Encoder) throws {
        try campaign.encode(to: encoder)
        var c = encoder.container(keyedBy: K.self)
        try c.encode(progress, forKey: .progress)
        try c.encode(finalCount, forKey: .finalCount)
        try c.encode(feasibility, forKey: .feasibility)
        try c.encodeIfPresent(measured, forKey: .measured)
        try c.encodeIfPresent(stalled, forKey: .stalled)
    }

    enum K: String, CodingKey { case progress, feasibility, measured, stalled, finalCount = "final" }
}
