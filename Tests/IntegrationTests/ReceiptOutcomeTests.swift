import Foundation
import LoaCarriers
import LoaCore
import Testing

/// Kannel's delivery reports as Kannel 1.4.5 in front of an SMPP SMSC sends them, posted to the real daemon's
/// `/dlr/<carrier>` for messages it really sent (through the gateway simulator, which sends no receipts of its
/// own here): every outcome ends in its state, and the delivery log agrees with the store.
@Suite(.ownThreads, .serialized) struct ReceiptOutcomeTests {
    /// `%A` as Kannel's `octstr_url_encode` writes it: spaces as `+`, the rest %XX.
    static func kannelEncoded(_ s: String) -> String { URLQuery.escape(s).replacingOccurrences(of: "%20", with: "+") }

    static func smpp(_ stat: String, err: String, id: String) -> String {
        "id:\(id) sub:001 dlvrd:\(stat == "DELIVRD" ? "001" : "000") submit date:2612020101 done date:2612020102 stat:\(stat) err:\(err) text:Xin chao"
    }

    @Test(.timeLimit(.minutes(3))) func everyKannelOutcomeEndsInItsStateAndTheLogAgrees() async throws {
        let work = WorkDir("kannel-outcomes")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "3", "--no-receipts"], env: ["LOA_SIM_TOKEN": "sim-password"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(SimCarriers.kannel("kannel", sim))]", defaultCarrier: "kannel")
        let n = 5
        _ = SimCampaign.write(work, id: "outcomes", n: n)
        try await loa.start()
        defer { _ = loa.stop() }
        try #require(try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")]).status == 0)
        try await poll(60, every: 0.2, "every message sent") { try await SimCampaign.states(loa, "outcomes")["sent"] == n }

        let page = try await loa.api("/api/v1/campaigns/outcomes/messages")
        let rows = (try JSONSerialization.jsonObject(with: Data(page.body)) as? [String: Any])?["rows"] as? [[Any]] ?? []
        let ids = rows.compactMap { $0.first as? Int }
        try #require(ids.count == n, "\(page.bodyText)")
        // The standard campaign's texts are two parts each: Kannel sends each part as its own submit.
        func dlr(_ id: Int, st: Int, fc: String?, ans: String) async throws -> HTTPResponse {
            var url = loa.base + "/dlr/kannel?k=\(loa.receiptSecret)&st=\(st)&ts=1764637200"
            url += "&fc=" + (fc ?? "") + "&ans=" + Self.kannelEncoded(ans) + "&id=\(id)"
            return try await loa.engine.perform(HTTPRequest(url: url, timeout: 5))
        }
        let reports: [(Int, Int, String?, String)] = [
            // 0: the issue's case. 8 (the last part's SMSC id), ENROUTE after it, then EXPIRED as 34.
            (ids[0], 8, "0a1b2c3e", "ACK/"),
            (ids[0], 4, "0a1b2c3d", Self.smpp("ENROUTE", err: "000", id: "0a1b2c3d")),
            (ids[0], 34, "0a1b2c3d", Self.smpp("EXPIRED", err: "000", id: "0a1b2c3d")),
            // 1: each part delivered under its own id.
            (ids[1], 8, "1b000002", "ACK/"),
            (ids[1], 1, "1b000001", Self.smpp("DELIVRD", err: "000", id: "1b000001")),
            (ids[1], 1, "1b000002", Self.smpp("DELIVRD", err: "000", id: "1b000002")),
            // 2: one part undeliverable: the message fails at once.
            (ids[2], 4, "2c000002", Self.smpp("ENROUTE", err: "000", id: "2c000002")),
            (ids[2], 2, "2c000001", Self.smpp("UNDELIV", err: "001", id: "2c000001")),
            // 3: an SMSC's refusal of the submit.
            (ids[3], 16, "", "NACK/0x0000000b/Invalid Destination Address"),
            // 4: one report for the whole message: Kannel's fake SMSC gives every part the same id.
            (ids[4], 8, "3f1c2a7e-8d4b-4c1e-9a53-0b6f1d2e4c5a", "ACK/"),
            (ids[4], 1, "3f1c2a7e-8d4b-4c1e-9a53-0b6f1d2e4c5a", ""),
        ]
        for (id, st, fc, ans) in reports {
            let r = try await dlr(id, st: st, fc: fc, ans: ans)
            #expect(r.status == 200, "st=\(st) for \(id): \(r.bodyText)")
        }
        // A repeat is answered 200 and changes nothing; a garbled one is refused naming the field.
        #expect(try await dlr(ids[0], st: 34, fc: "0a1b2c3d", ans: Self.smpp("EXPIRED", err: "000", id: "0a1b2c3d")).bodyText == "OK duplicate\n")
        let bad = try await dlr(ids[1], st: 128, fc: nil, ans: "")
        #expect(bad.status == 400 && bad.bodyText.contains("st:"), "\(bad.bodyText)")

        let after = try await loa.api("/api/v1/campaigns/outcomes/messages")
        let stored = (try JSONSerialization.jsonObject(with: Data(after.body)) as? [String: Any])?["rows"] as? [[Any]] ?? []
        let state = Dictionary(uniqueKeysWithValues: stored.map { ($0[0] as? Int ?? 0, $0[3] as? String ?? "") })
        let reason = Dictionary(uniqueKeysWithValues: stored.map { ($0[0] as? Int ?? 0, $0[4] as? String ?? "") })
        #expect(state[ids[0]] == "expired")
        #expect(reason[ids[0]] == "expired at the network (validity ended): EXPIRED err 000 (a part of 2)")
        #expect(state[ids[1]] == "delivered")
        #expect(state[ids[2]] == "failed" && reason[ids[2]] == "UNDELIV err 001 (a part of 2)")
        #expect(state[ids[3]] == "failed" && reason[ids[3]] == "NACK/0x0000000b/Invalid Destination Address")
        #expect(state[ids[4]] == "delivered")
        #expect(try await SimCampaign.states(loa, "outcomes") == ["expired": 1, "delivered": 2, "failed": 2])

        // The log: ENROUTE after the SMSC's acceptance is there, the part ids (never a reason) name the parts,
        // and each message's last line says the state the store holds.
        let events = loa.logEvents()
        let first = events.filter { $0["message"] as? Int == ids[0] && $0["event"] as? String == "receipt" }
        #expect(first.map { $0["status"] as? String ?? "" } == ["sent", "sent", "expired"])
        #expect(first.map { $0["gateway_id"] as? String ?? "" } == ["0a1b2c3e", "0a1b2c3d", "0a1b2c3d"])
        #expect((first[1]["detail"] as? String ?? "").hasPrefix("buffered: ENROUTE err 000"))
        for id in ids {
            let last = events.last { $0["message"] as? Int == id }
            #expect(last?["status"] as? String == state[id], "message \(id): log \(String(describing: last)) store \(state[id] ?? "")")
        }
    }
}
