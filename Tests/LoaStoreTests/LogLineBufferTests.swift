import Foundation
import LoaCore
import Testing
@testable import LoaStore

/// The writer's log-line buffer writes the very bytes ``DeliveryEvent/jsonLine()`` writes (the delivery log's
/// format is documented and read by tools), escaping included.
@Suite struct LogLineBufferTests {
    /// Strings that need each kind of escape, and strings that need none but are not ASCII.
    static let tricky = [
        "", "plain", "say \"hi\"", "back\\slash", "line\nbreak", "tab\tand\rreturn", "\u{0}nul\u{1}\u{1f}", "\u{7f}del",
        "Mời góp ý dự thảo trên VNeID", "emoji 👍🏽 and flag 🇻🇳", "\\\"\n", "a/b</script>", String(repeating: "long ", count: 200),
    ]

    func line(_ e: DeliveryEvent) -> String {
        let buffer = LogLineBuffer(capacity: 16)
        let time = Array(ISOTime.format(e.time).utf8)
        time.withUnsafeBufferPointer {
            buffer.appendLine(seq: e.seq, time: $0, campaign: e.campaign, message: e.message, recipient: e.recipient, carrier: e.carrier,
                              event: e.event, status: e.status, attempt: e.attempt, gatewayID: e.gatewayID, detail: e.detail)
        }
        #expect(buffer.lines == 1)
        return String(decoding: buffer.bytes, as: UTF8.self)
    }

    @Test(arguments: tricky)
    func sameBytesAsTheEventsOwnLine(_ s: String) {
        let e = DeliveryEvent(seq: 9_223_372_036_854_775_807, time: 1_764_633_600_123, campaign: s, message: -42, recipient: s, carrier: s,
                              event: s, status: s, attempt: 3, gatewayID: s, detail: s)
        let got = line(e)
        #expect(got == e.jsonLine() + "\n")
        // And it is JSON that reads back as the same values.
        let object = try? JSONSerialization.jsonObject(with: Data(got.utf8)) as? [String: Any]
        #expect(object?["detail"] as? String == s)
        #expect(object?["message"] as? Int == -42)
    }

    /// On PostgreSQL each line names its node, after `seq`, as the event's own line does; readers parse it as JSON.
    @Test(arguments: ["n1", "node \"two\""])
    func aNodesLineNamesItsNode(_ node: String) throws {
        let e = DeliveryEvent(seq: 7, time: 1_764_633_600_123, campaign: "c", message: 3, recipient: "+84912345678", carrier: "gw",
                              event: "accepted", status: "sent", attempt: 1, node: node)
        let buffer = LogLineBuffer(capacity: 16)
        buffer.keepsCampaigns = true
        Array(ISOTime.format(e.time).utf8).withUnsafeBufferPointer {
            buffer.appendLine(seq: e.seq, node: node, time: $0, campaign: e.campaign, message: e.message, recipient: e.recipient, carrier: e.carrier,
                              event: e.event, status: e.status, attempt: e.attempt)
        }
        let got = String(decoding: buffer.bytes, as: UTF8.self)
        #expect(got == e.jsonLine() + "\n")
        #expect(got.hasPrefix("{\"v\":1,\"seq\":7,\"node\":"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(got.utf8)) as? [String: Any])
        #expect(object["node"] as? String == node && buffer.campaigns == ["c"] && buffer.lineStarts == [0])
    }

    @Test func optionalFieldsAreLeftOutAndNumbersOfEveryWidth() {
        for n: Int64 in [0, 7, 10, 99, 100, 1_000_000, Int64.max, Int64.min + 1, -1] {
            let e = DeliveryEvent(seq: n, time: 0, campaign: "c", message: n, recipient: nil, carrier: nil, event: "sending", status: "sending",
                                  attempt: Int(n))
            #expect(line(e) == e.jsonLine() + "\n")
        }
    }

    @Test func linesFollowEachOtherAndARollBackCutsToAMark() {
        let buffer = LogLineBuffer(capacity: 16)
        let time = Array("2026-12-02T00:00:00.000Z".utf8)
        func add(_ id: Int64) {
            time.withUnsafeBufferPointer {
                buffer.appendLine(seq: id, time: $0, campaign: "c", message: id, recipient: "+84912345678", carrier: "k", event: "accepted",
                                  status: "sent", attempt: 1, gatewayID: "g\(id)")
            }
        }
        for id in Int64(1)...300 { add(id) }  // grows past its first capacity many times
        let mark = (buffer.count, buffer.lines)
        add(301)
        buffer.truncate(toCount: mark.0, lines: mark.1)
        let text = String(decoding: buffer.bytes, as: UTF8.self)
        #expect(buffer.lines == 300)
        #expect(text.split(separator: "\n").count == 300)
        #expect(text.hasSuffix("\"gateway_id\":\"g300\"}\n"))
        buffer.removeAll()
        #expect(buffer.count == 0 && buffer.lines == 0)
    }
}
