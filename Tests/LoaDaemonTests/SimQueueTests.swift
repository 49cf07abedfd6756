import Foundation
import Testing
@testable import LoaCommandLine
@testable import LoaDaemon
@testable import LoaSim

/// The simulator's queue mode, without a process: the turn each message gets, and the EXPIRED receipts.
@Suite struct SimQueueTests {
    @Test func turnsAreFirstInFirstOutAtThePaceAndAnExpiryTakesNoTurn() {
        let q = SimHandsetQueue(rate: 5)
        let a = q.enqueue(ref: "a", now: 1_000, wallNow: 50_000, validForMillis: nil)
        let b = q.enqueue(ref: "b", now: 1_010, wallNow: 50_010, validForMillis: nil)
        let c = q.enqueue(ref: "c", now: 1_020, wallNow: 50_020, validForMillis: 100)  // its turn (1 400) is after 1 120
        let d = q.enqueue(ref: "d", now: 1_030, wallNow: 50_030, validForMillis: 60_000)
        #expect([a.due, b.due, d.due] == [1_000, 1_200, 1_400])
        #expect(!a.expired && !b.expired && !d.expired)
        #expect(c.due == 1_120 && c.expired)
        #expect(q.text() == "a 50000 passed\nb 50200 passed\nc 50120 expired\nd 50400 passed\n")
        let n = q.counts(wallNow: 50_250)
        #expect(n.passed == 2 && n.expired == 1 && n.queued == 1)
    }

    @Test func expiredReceiptsSayEXPIREDInEachShape() {
        let kannel = SimReceiptPlan.kannel(url: "http://127.0.0.1:9/dlr?st=%d&ans=%A&id=7", mask: 31, from: "LOA", to: "84912345678", text: "hi")
            .receipts(id: "k-00000001", number: 1, delivered: false, now: 0, intermediate: false, expired: true)
        // No smsc-accepted: only the final report, %d 34 (DLR_FAIL with Kannel's expired bit).
        #expect(kannel.count == 1)
        #expect(kannel[0].request.url.contains("st=34") && kannel[0].request.url.contains("stat%3AEXPIRED"), "\(kannel[0].request.url)")
        let jasmin = SimReceiptPlan.jasmin(url: "http://127.0.0.1:9/dlr", level: 3, post: true, text: "hi")
            .receipts(id: "j", number: 1, delivered: false, now: 0, intermediate: false, expired: true)
        #expect(jasmin.count == 1)
        #expect(String(decoding: jasmin[0].request.body, as: UTF8.self).contains("message_status=EXPIRED"))
        let generic = SimReceiptPlan.generic(url: "http://127.0.0.1:9/dlr", ref: "1", to: "84912345678")
            .receipts(id: "g", number: 1, delivered: false, now: 0, intermediate: true, expired: true)
        #expect(generic.count == 1 && String(decoding: generic[0].request.body, as: UTF8.self).contains("\"status\":\"EXPIRED\""))
    }
}
