import Foundation
import Testing
@testable import LoaCore

@Suite struct SendWindowsTests {
    /// Local time in Ho Chi Minh City (UTC+7, no DST) as UnixMillis.
    func vn(_ s: String) -> UnixMillis { ISOTime.parse(s + "+07:00")! }

    @Test func windowEdges() throws {
        let w = SendWindows.standard
        #expect(w.isOpen(at: vn("2026-11-24T07:00:00")))
        #expect(w.isOpen(at: vn("2026-11-24T21:59:59")))
        #expect(!w.isOpen(at: vn("2026-11-24T22:00:00")))
        #expect(!w.isOpen(at: vn("2026-11-24T06:59:59")))
        #expect(w.nextOpen(after: vn("2026-11-24T21:59:59")) == vn("2026-11-24T21:59:59"))
        #expect(w.nextOpen(after: vn("2026-11-24T22:00:00")) == vn("2026-11-25T07:00:00"))
        #expect(w.nextOpen(after: vn("2026-11-25T03:00:00")) == vn("2026-11-25T07:00:00"))
        #expect(w.closes(after: vn("2026-11-24T21:00:00")) == vn("2026-11-24T22:00:00"))
        #expect(w.closes(after: vn("2026-11-24T23:00:00")) == nil)
    }

    @Test func severalWindowsWrappingAndZones() throws {
        let split = try SendWindows(["07:00-11:30", "13:30-21:00"], timeZone: "Asia/Ho_Chi_Minh")
        #expect(!split.isOpen(at: vn("2026-11-24T12:00:00")))
        #expect(split.nextOpen(after: vn("2026-11-24T12:00:00")) == vn("2026-11-24T13:30:00"))
        let night = try SendWindows(["22:00-06:00"], timeZone: "Asia/Ho_Chi_Minh")
        #expect(night.isOpen(at: vn("2026-11-24T02:00:00")) && night.isOpen(at: vn("2026-11-24T23:00:00")))
        #expect(!night.isOpen(at: vn("2026-11-24T12:00:00")))
        #expect(night.closes(after: vn("2026-11-24T23:00:00")) == vn("2026-11-25T06:00:00"))
        // The same UTC instant is inside the window in Hanoi and outside it in Paris.
        let paris = try SendWindows(["07:00-22:00"], timeZone: "Europe/Paris")
        let t = ISOTime.parse("2026-11-24T02:00:00Z")!  // 09:00 in Vietnam, 03:00 in Paris
        #expect(SendWindows.standard.isOpen(at: t) && !paris.isOpen(at: t))
        #expect(paris.nextOpen(after: t) == ISOTime.parse("2026-11-24T06:00:00Z"))
        // Seconds precision.
        let s = try SendWindows(["07:00:30-07:00:45"], timeZone: "Asia/Ho_Chi_Minh")
        #expect(!s.isOpen(at: vn("2026-11-24T07:00:29")) && s.isOpen(at: vn("2026-11-24T07:00:30")) && !s.isOpen(at: vn("2026-11-24T07:00:45")))
    }

    @Test func badWindows() {
        #expect(throws: SendWindows.Invalid.self) { try SendWindows(["7-22"], timeZone: "Asia/Ho_Chi_Minh") }
        #expect(throws: SendWindows.Invalid.self) { try SendWindows(["07:00-22:00"], timeZone: "Mars/Olympus") }
        #expect(throws: SendWindows.Invalid.self) { try SendWindows(["25:00-26:00"], timeZone: "UTC") }
        #expect(throws: SendWindows.Invalid.self) { try SendWindows([], timeZone: "UTC") }
    }

    @Test func openSecondsBeforeADeadline() throws {
        // From 21:00 today to 09:00 tomorrow: one hour tonight, two tomorrow morning.
        let w = SendWindows.standard
        #expect(w.openSeconds(from: vn("2026-11-24T21:00:00"), to: vn("2026-11-25T09:00:00")) == 3 * 3600)
    }
}

@Suite struct CampaignLifecycleTests {
    @Test func transitions() {
        #expect(CampaignLifecycle.next(.loading, on: .commit) == .scheduled)
        #expect(CampaignLifecycle.next(.scheduled, on: .start) == .running)
        #expect(CampaignLifecycle.next(.running, on: .pause) == .paused)
        #expect(CampaignLifecycle.next(.paused, on: .resume(started: true)) == .running)
        #expect(CampaignLifecycle.next(.paused, on: .resume(started: false)) == .scheduled)
        #expect(CampaignLifecycle.next(.paused, on: .deadline) == .expired)
        #expect(CampaignLifecycle.next(.paused, on: .cancel) == .cancelled)
        #expect(CampaignLifecycle.next(.running, on: .drained) == .completed)
        for final in [CampaignState.completed, .cancelled, .expired] {
            for e in [CampaignEvent.pause, .resume(started: true), .cancel, .start, .deadline] {
                #expect(CampaignLifecycle.next(final, on: e) == nil, "\(final) must ignore \(e)")
            }
        }
        #expect(CampaignLifecycle.next(.loading, on: .pause) == nil)
    }
}
