import LoaCore
import Testing

struct RecordBudgetTests {
    /// The worked example of ``RecordBudget``: two at once, then nothing until a token comes back, and the record
    /// written then carries the count let go.
    @Test func aBurstThenOneASecondAndTheCountLetGo() {
        var b = RecordBudget(perSecond: 1, burst: 2, now: 0)
        #expect(b.admit(now: 0) == 0)
        #expect(b.admit(now: 0) == 0)
        #expect(b.admit(now: 100) == nil)
        #expect(b.admit(now: 200) == nil)
        #expect(b.notKept == 2)
        #expect(b.admit(now: 1_200) == 2)
        #expect(b.notKept == 0)
        #expect(b.admit(now: 1_300) == nil)
    }

    /// A flood of 10,000 refusals over 10 s keeps the burst and one a second, and loses no count.
    @Test func aFloodIsBoundedAndCounted() {
        var b = RecordBudget(perSecond: 1, burst: 60, now: 0)
        var written = 0
        var counted = 0
        for i in 0..<10_000 {
            if let n = b.admit(now: UnixMillis(i)) {
                written += 1
                counted += n
            }
        }
        #expect(written == 60 + 9)
        #expect(written + counted + b.notKept == 10_000)
    }
}
