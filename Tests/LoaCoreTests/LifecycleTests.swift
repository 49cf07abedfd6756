import Foundation
import Testing
@testable import LoaCore

@Suite struct MessageLifecycleTests {
    @Test func happyPath() {
        var s = MessageState.queued
        s = MessageLifecycle.next(s, on: .claim)!
        #expect(s == .sending)
        s = MessageLifecycle.next(s, on: .accepted)!
        #expect(s == .sent)
        #expect(MessageLifecycle.next(s, on: .receipt(.smscAccepted)) == nil)  // intermediate: no state change
        s = MessageLifecycle.next(s, on: .receipt(.delivered))!
        #expect(s == .delivered)
    }

    @Test func receiptsOnlyMoveForward() {
        for final in [MessageState.delivered, .failed, .rejected, .expired, .cancelled] {
            for r in ReceiptStatus.allCases {
                #expect(MessageLifecycle.next(final, on: .receipt(r)) == nil, "\(final) must ignore \(r)")
            }
            #expect(MessageLifecycle.next(final, on: .accepted) == nil)
            #expect(MessageLifecycle.next(final, on: .claim) == nil)
        }
    }

    @Test func receiptBeforeTheSendAnswer() {
        // The gateway's receipt overtakes its own HTTP answer: the message is still `sending`.
        #expect(MessageLifecycle.next(.sending, on: .receipt(.delivered)) == .delivered)
        #expect(MessageLifecycle.next(.sending, on: .receipt(.undelivered)) == .failed)
        #expect(MessageLifecycle.next(.sending, on: .receipt(.smscAccepted)) == .sent)
        // The answer arriving afterwards changes nothing.
        #expect(MessageLifecycle.next(.delivered, on: .accepted) == nil)
    }

    /// The network dropped the message at the end of its validity period: `expired`, from any state a receipt
    /// can settle, with a reason that says it was the network.
    @Test func anExpiredReceiptEndsExpired() {
        for from in [MessageState.queued, .sending, .sent, .unknown] {
            #expect(MessageLifecycle.next(from, on: .receipt(.expired)) == .expired, "\(from)")
        }
        #expect(ReceiptStatus.expired.isFinal && ReceiptStatus.expired.finalState == .expired)
        #expect(ReceiptStatus.expired.reason("EXPIRED err 000") == "expired at the network (validity ended): EXPIRED err 000")
        #expect(ReceiptStatus.undelivered.reason("UNDELIV err 001") == "UNDELIV err 001")
        #expect(ReceiptStatus.smscRejected.finalState == .failed && ReceiptStatus.buffered.finalState == nil)
    }

    /// `MessageParts`: which part a receipt speaks for, and when the parts end the message.
    @Test func partsDecideAMultiPartMessage() {
        // One part, no id, or the message's own id: the whole message.
        #expect(MessageParts.part(of: "a", segments: 1, messageGatewayID: nil, namedPart: false) == nil)
        #expect(MessageParts.part(of: nil, segments: 3, messageGatewayID: nil, namedPart: false) == nil)
        #expect(MessageParts.part(of: "", segments: 3, messageGatewayID: nil, namedPart: false) == nil)
        #expect(MessageParts.part(of: "J-1", segments: 3, messageGatewayID: "J-1", namedPart: false) == nil)
        // Another id on a multi-part message, or a part id the send answer named: that part.
        #expect(MessageParts.part(of: "p2", segments: 3, messageGatewayID: nil, namedPart: false) == "p2")
        #expect(MessageParts.part(of: "p2", segments: 3, messageGatewayID: "J-1", namedPart: false) == "p2")
        #expect(MessageParts.part(of: "J-1", segments: 1, messageGatewayID: "J-1", namedPart: true) == "J-1")
        // Delivered only when every part is; a failed or expired part ends it at once.
        #expect(MessageParts.messageStatus(after: .delivered, deliveredParts: 2, expectedParts: 3) == nil)
        #expect(MessageParts.messageStatus(after: .delivered, deliveredParts: 3, expectedParts: 3) == .delivered)
        #expect(MessageParts.messageStatus(after: .undelivered, deliveredParts: 2, expectedParts: 3) == .undelivered)
        #expect(MessageParts.messageStatus(after: .expired, deliveredParts: 0, expectedParts: 3) == .expired)
        #expect(MessageParts.messageStatus(after: .smscRejected, deliveredParts: 0, expectedParts: 2) == .smscRejected)
        #expect(MessageParts.messageStatus(after: .buffered, deliveredParts: 3, expectedParts: 3) == nil)
        #expect(MessageParts.reason("UNDELIV err 001", status: .undelivered, parts: 3) == "UNDELIV err 001 (a part of 3)")
        #expect(MessageParts.reason("UNDELIV err 001", status: .undelivered, parts: 1) == "UNDELIV err 001")
        // Parts report separately once the answer named them or two distinct ids were seen; until then one counts.
        #expect(MessageParts.expectedParts(segments: 3, knownParts: 1, namedParts: 0) == 1)
        #expect(MessageParts.expectedParts(segments: 3, knownParts: 2, namedParts: 0) == 3)
        #expect(MessageParts.expectedParts(segments: 2, knownParts: 1, namedParts: 3) == 3)
        #expect(MessageParts.expectedParts(segments: 1, knownParts: 1, namedParts: 1) == 1)
    }

    @Test func failuresAndRetries() {
        #expect(MessageLifecycle.next(.sending, on: .temporaryFailure(retry: true, pastDeadline: false)) == .queued)
        #expect(MessageLifecycle.next(.sending, on: .temporaryFailure(retry: false, pastDeadline: false)) == .failed)
        #expect(MessageLifecycle.next(.sending, on: .temporaryFailure(retry: false, pastDeadline: true)) == .expired)
        #expect(MessageLifecycle.next(.sending, on: .permanentFailure) == .failed)
        #expect(MessageLifecycle.next(.sending, on: .crashRecovered) == .unknown)
        #expect(MessageLifecycle.next(.unknown, on: .receipt(.delivered)) == .delivered)
        #expect(MessageLifecycle.next(.sent, on: .receiptTimeout) == .unknown)
        #expect(MessageLifecycle.next(.queued, on: .expire) == .expired)
        #expect(MessageLifecycle.next(.sending, on: .expire) == nil, "a message in flight is never expired under the request")
    }

    @Test func everyStateHasAName() {
        for s in MessageState.allCases { #expect(MessageState(name: s.name) == s) }
        #expect(MessageState.allCases.filter { !$0.isFinal } == [.queued, .sending, .sent])
    }
}

@Suite struct TokenBucketTests {
    @Test func refillsAtTheRateAndCapsAtTheBurst() {
        let clock = ManualTimeSource(0)
        var b = TokenBucket(rate: 100, burst: 10, now: clock.now())
        #expect(b.take(upTo: 50, now: clock.now()) == 10)
        #expect(b.take(upTo: 1, now: clock.now()) == 0)
        clock.advance(byMillis: 50)
        #expect(b.available(clock.now()) == 5)
        clock.advance(byMillis: 10_000)
        #expect(b.available(clock.now()) == 10)
    }

    @Test func slowRatesPolledOftenStillAccrue() {
        let clock = ManualTimeSource(0)
        var b = TokenBucket(rate: 0.5, burst: 1, now: 0)
        #expect(b.take(upTo: 1, now: 0) == 1)
        var got = 0
        for _ in 0..<2000 {  // 2 s in 1 ms steps
            clock.advance(byMillis: 1)
            got += b.take(upTo: 1, now: clock.now())
        }
        #expect(got == 1)
    }

    @Test func whenAvailable() {
        var b = TokenBucket(rate: 4, burst: 1, now: 0)
        #expect(b.whenAvailable(now: 0) == 0)
        _ = b.take(upTo: 1, now: 0)
        #expect(b.whenAvailable(now: 0) == 250)
        #expect(b.available(249) == 0)
        #expect(b.available(250) == 1)
    }

    @Test func longRunRateIsExact() {
        // 500/s for 60 s on a 1 ms manual clock: exactly 30,000 plus the initial burst.
        var l = CarrierLimiter(rate: 500, maxInFlight: 10_000, now: 0)
        var sent = 0
        var maxPerSecond = 0
        var thisSecond = 0
        for ms in stride(from: Int64(0), to: 60_000, by: 1) {
            if ms % 1000 == 0 { maxPerSecond = max(maxPerSecond, thisSecond); thisSecond = 0 }
            let g = l.grant(max: 1000, now: ms)
            l.finished(g)
            sent += g
            thisSecond += g
        }
        #expect(sent >= 30_000 && sent <= 30_050)
        #expect(maxPerSecond <= 550, "largest one-second burst \(maxPerSecond)")
    }

    @Test func inFlightCap() {
        var l = CarrierLimiter(rate: 1000, maxInFlight: 3, now: 0)
        #expect(l.grant(max: 10, now: 1000) == 3)
        #expect(l.grant(max: 10, now: 2000) == 0)
        #expect(l.nextGrant(now: 2000) == nil)
        l.finished()
        #expect(l.grant(max: 10, now: 2000) == 1)
        l.unused(1)
        #expect(l.inFlight == 2)
    }
}

@Suite struct RetryPolicyTests {
    @Test func backoffGrowsAndIsCapped() {
        let p = RetryPolicy(maxAttempts: 10, baseMillis: 1000, capMillis: 8000)
        var previousCeiling: Int64 = 0
        for attempt in 1...9 {
            guard case .retry(let at) = p.decide(attempt: attempt, id: 42, now: 0, deadline: .max) else {
                Issue.record("attempt \(attempt) should retry"); return
            }
            let ceiling: Int64 = min(8000, 1000 << Int64(attempt - 1))
            #expect(at >= ceiling / 2 && at < ceiling, "attempt \(attempt): \(at) not in [\(ceiling / 2), \(ceiling))")
            #expect(ceiling >= previousCeiling)
            previousCeiling = ceiling
        }
        #expect(p.decide(attempt: 10, id: 42, now: 0, deadline: .max) == .giveUp)
    }

    @Test func neverPastTheDeadlineAndHonoursRetryAfter() {
        let p = RetryPolicy(maxAttempts: 5, baseMillis: 1000, capMillis: 60_000)
        #expect(p.decide(attempt: 1, id: 1, now: 0, deadline: 400) == .pastDeadline)
        #expect(p.decide(attempt: 1, id: 1, now: 0, deadline: 100_000, retryAfterMillis: 30_000) == .retry(at: 30_000))
        // Deterministic: the same message and attempt give the same time.
        #expect(p.decide(attempt: 2, id: 7, now: 0, deadline: .max) == p.decide(attempt: 2, id: 7, now: 0, deadline: .max))
    }
}

@Suite struct TimeTests {
    @Test func parsesOffsetsAndFormatsUTC() {
        #expect(ISOTime.parse("1970-01-01T00:00:00Z") == 0)
        #expect(ISOTime.parse("2026-11-24T07:00:00+07:00") == ISOTime.parse("2026-11-24T00:00:00Z"))
        #expect(ISOTime.parse("2026-11-24T00:00:00.250Z")! % 1000 == 250)
        #expect(ISOTime.format(ISOTime.parse("2024-02-29T23:59:59.999-01:30")!) == "2024-03-01T01:29:59.999Z")
        for bad in ["2026-11-24", "2026-11-24T07:00:00", "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2026-11-24T07:00:00+7", "x"] {
            #expect(ISOTime.parse(bad) == nil, "\(bad)")
        }
    }
}

@Suite struct LogLineTests {
    @Test func jsonLineIsValidAndOrdered() throws {
        let e = DeliveryEvent(seq: 7, time: 0, campaign: "c\"1", message: 3, recipient: "+84912345678", carrier: "k",
                              event: "receipt", status: "delivered", attempt: 1, gatewayID: nil, detail: "line\nbreak ✓")
        let line = e.jsonLine()
        #expect(!line.contains("\n"))
        #expect(line.hasPrefix("{\"v\":1,\"seq\":7,\"time\":\"1970-01-01T00:00:00.000Z\",\"campaign\":\"c\\\"1\""))
        #expect(!line.contains("gateway_id"))
        #expect(line.contains("\"detail\":\"line\\nbreak ✓\""))
    }

    @Test func jsonLineEscapesEveryControlCharacterAndRoundTrips() throws {
        var detail = "tab\there \\ back \"q\" Góp ý dự thảo 🇻🇳 "
        for c in 0..<0x20 { detail.unicodeScalars.append(Unicode.Scalar(UInt8(c))) }
        let e = DeliveryEvent(seq: 1_234_567_890_123, time: 1_764_547_200_123, campaign: "c", message: -5, recipient: nil, carrier: nil,
                              event: "failed", status: "failed", attempt: 0, gatewayID: "g\r1", detail: detail)
        let line = e.jsonLine()
        #expect(!line.utf8.contains { $0 < 0x20 }, "no raw control byte may reach the log: \(line)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["detail"] as? String == detail)
        #expect(object["gateway_id"] as? String == "g\r1")
        #expect(object["seq"] as? Int == 1_234_567_890_123 && object["message"] as? Int == -5 && object["attempt"] as? Int == 0)
        #expect(object["time"] as? String == "2025-12-01T00:00:00.123Z")
        #expect(object["recipient"] == nil && object["carrier"] == nil)
    }

    @Test func locatorFindsNestedFields() {
        let text = """
            {
              "data_dir": "x",
              "carriers": [
                { "name": "a", "password": {"env": "P"} },
                {
                  "name": "b",
                  "rate": -1
                }
              ]
            }
            """
        let l = JSONLocator(text)
        #expect(l.line(of: "data_dir") == 2)
        #expect(l.line(of: "carriers.0") == 4)
        #expect(l.line(of: "carriers.1.rate") == 7)
        #expect(l.line(of: "carriers.1.name") == 6)
    }
}

@Suite struct SegmentRateTests {
    @Test func chargingExtraPartsKeepsTheLongRunRateInParts() {
        // 100 parts/s; every message has 3 parts: 33.3 messages/s in the long run.
        var l = CarrierLimiter(rate: 100, maxInFlight: 10_000, now: 0)
        var messages = 0
        for ms in stride(from: Int64(0), to: 30_000, by: 5) {
            let g = l.grant(max: 1000, now: ms)
            if g > 0 { l.bucket.charge(g * 2, now: ms) }
            l.finished(g)
            messages += g
        }
        #expect(messages >= 990 && messages <= 1010, "\(messages) messages of 3 parts in 30 s at 100 parts/s")
    }
}

/// Roles and approval in the campaign lifecycle (issue 20).
@Suite struct AccessLifecycleTests {
    /// The role matrix of ``Role/includes(_:)``, row by row: who passes an endpoint that needs each role.
    @Test func theRoleMatrix() {
        let passes: [Role: Set<Role>] = [
            .viewer: [.viewer, .operator, .planner, .approver, .admin],
            .operator: [.operator, .approver, .admin],
            .planner: [.planner, .admin],
            .approver: [.approver, .admin],
            .admin: [.admin],
        ]
        for needed in Role.allCases {
            for caller in Role.allCases {
                #expect(caller.includes(needed) == passes[needed]!.contains(caller), "\(caller) for \(needed)")
            }
        }
    }

    @Test func approvalStates() {
        #expect(CampaignLifecycle.next(.loading, on: .submit) == .pendingApproval)
        #expect(CampaignLifecycle.next(.pendingApproval, on: .approve) == .scheduled)
        #expect(CampaignLifecycle.next(.pendingApproval, on: .reject) == .rejected)
        #expect(CampaignLifecycle.next(.pendingApproval, on: .deadline) == .expired)
        // Pending sends nothing: it cannot start, be resumed or paused; a decision needs it pending.
        for e in [CampaignEvent.start, .pause, .resume(started: true), .drained] { #expect(CampaignLifecycle.next(.pendingApproval, on: e) == nil) }
        for s in [CampaignState.scheduled, .running, .rejected, .loading] { #expect(CampaignLifecycle.next(s, on: .approve) == nil) }
        #expect(!CampaignState.pendingApproval.isActive && CampaignState.rejected.isFinal)
    }
}
