import Testing
@testable import LoaCore

@Suite struct CampaignWatchTests {
    /// The first look is the baseline; then a start (from scheduled, or new and already running) and an end (gone
    /// from the active set) are each reported once; the operator's pause and resume are not.
    @Test func startsAndEndsAreReportedOnce() {
        var w = CampaignWatch()
        #expect(w.look([("old", .running), ("later", .scheduled), ("held", .paused)]).isEmpty, "baseline")
        #expect(w.look([("old", .running), ("later", .scheduled), ("held", .paused)]).isEmpty, "nothing changed")
        #expect(w.look([("old", .running), ("later", .running), ("held", .paused), ("new", .running), ("queued", .scheduled)])
                == [.started("later"), .started("new")])
        #expect(w.look([("old", .running), ("later", .running), ("held", .running), ("new", .running), ("queued", .scheduled)]).isEmpty,
                "a resume is the operator's, logged where it is asked")
        #expect(w.look([("later", .paused), ("held", .running), ("queued", .scheduled)]) == [.ended("new"), .ended("old")])
        #expect(w.look([("later", .paused), ("held", .running), ("queued", .scheduled)]).isEmpty, "an end once")
    }

    @Test func anEndIsLoggedByItsFinalStateWithItsCounts() throws {
        let done = try #require(CampaignWatch.ending(.completed, counts: ["delivered": 8, "failed": 2, "queued": 0]))
        #expect(done.level == .notice && done.message.hasPrefix("campaign completed"))
        #expect(done.metadata == ["campaign.state": "completed", "messages.total": "10", "messages.delivered": "8", "messages.failed": "2"])
        let late = try #require(CampaignWatch.ending(.expired, counts: ["sent": 3, "expired": 7]))
        #expect(late.level == .warning && late.metadata["messages.expired"] == "7")
        for state in [CampaignState.cancelled, .failed, .running, .paused, .scheduled, .loading] {
            #expect(CampaignWatch.ending(state, counts: [:]) == nil, "\(state): logged elsewhere or not an end")
        }
    }
}
