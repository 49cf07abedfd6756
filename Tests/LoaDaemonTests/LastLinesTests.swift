import Testing
@testable import LoaCommandLine

/// `loa tail -n`'s ring of the last lines: the same lines, in order, as keeping them all and taking the suffix.
@Suite struct LastLinesTests {
    @Test(arguments: [0, 1, 3, 7, 1_000_000]) func keepsTheLastLinesInOrder(limit: Int) {
        for count in [0, 1, 2, 3, 6, 7, 8, 20, 50] {
            var ring = LastLines(limit: limit)
            let all = (0..<count).map { "line \($0)" }
            for line in all { ring.append(line) }
            #expect(ring.lines == Array(all.suffix(limit)), "limit \(limit), \(count) lines")
        }
    }

    @Test func aNegativeLimitKeepsNothing() {
        var ring = LastLines(limit: -5)
        ring.append("a")
        #expect(ring.lines.isEmpty)
    }
}
