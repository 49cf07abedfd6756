import Testing
@testable import LoaCore

/// The compact outstanding set behind ``HandoffWindow``: exact membership and counts whatever the order, one time
/// per chunk within its span, exact times for stragglers, and memory that follows chunks, not messages.
@Suite struct HandedOverSetTests {
    /// A million messages handed over in claims of 500 at 2,000 a second, none reported: 15,625 chunks, no
    /// stragglers, a queue entry per chunk touched (the dictionary and order list kept a million entries each).
    @Test func aMillionOutstandingCostChunksNotMessages() {
        var s = HandedOverSet()
        for claim in 0..<2_000 {
            let at = UnixMillis(claim * 250)
            for id in Int64(claim * 500 + 1)...Int64(claim * 500 + 500) { s.insert(id, at: at) }
        }
        #expect(s.count == 1_000_000)
        #expect(s.chunkCount == 15_626 && s.stragglerCount == 0, "chunks \(s.chunkCount), stragglers \(s.stragglerCount)")
        #expect(s.queueEntries <= 2 * 15_626, "queue entries \(s.queueEntries)")
        #expect(s.handedOverAt(1) == 0 && s.handedOverAt(1_000_000) == 499_750)
        // Id 500 ends the first claim (at 0); its chunk (448...511) ends in the second claim (at 250): it reads late.
        #expect(s.handedOverAt(500) == 250)
        #expect(s.handedOverAt(0) == nil && s.handedOverAt(1_000_001) == nil)
    }

    /// Ids handed over out of order: an id below one still outstanding in its chunk is a straggler with its own
    /// time, so the chunk's lowest id is still the oldest; membership and the count stay exact.
    @Test func idsOutOfOrderStayExact() {
        var s = HandedOverSet()
        s.insert(10, at: 100)
        s.insert(3, at: 120)  // lower than 10, same chunk: a straggler
        s.insert(11, at: 130)
        #expect(s.stragglerCount == 1 && s.chunkCount == 1)
        #expect(s.handedOverAt(3) == 120 && s.handedOverAt(10) == 130 && s.handedOverAt(11) == 130)
        // The chunk reads late (130): 3, handed over at 120, counts as the oldest.
        #expect(s.oldest() == 3)
        #expect(s.remove(3) == 120 && s.oldest() == 10)
        #expect(s.remove(10) == 130 && s.oldest() == 11)
        #expect(s.remove(11) == 130 && s.isEmpty && s.chunkCount == 0 && s.oldest() == nil)
        // A shuffled thousand: any removal order leaves exactly the rest.
        var t = HandedOverSet()
        var rng = SeededRandom(seed: 7)
        let ids = (Int64(1)...1_000).shuffled(using: &rng)
        for (i, id) in ids.enumerated() { t.insert(id, at: UnixMillis(i)) }
        for id in ids.prefix(600).shuffled(using: &rng) { #expect(t.remove(id) != nil) }
        #expect(t.ids == ids.suffix(400).sorted() && t.count == 400)
        #expect(t.remove(ids[0]) == nil, "a second removal finds nothing")
    }

    /// Campaigns far apart in the id range share no chunk; a retry of an old id is a straggler; a hand-over more
    /// than the span after its chunk began starts no merge.
    @Test func sparseRangesAcrossCampaigns() {
        var s = HandedOverSet(spanMillis: 1_000)
        for i in Int64(0)..<100 {
            s.insert(1 + i, at: 1_000)              // campaign A
            s.insert(5_000_001 + i, at: 1_000)      // campaign B, 5 million ids on
            s.insert(9_000_000_001 + i, at: 1_000)  // a far range
        }
        #expect(s.count == 300 && s.chunkCount == 6 && s.stragglerCount == 0, "chunks \(s.chunkCount)")
        #expect(s.ids.count == 300 && s.ids.first == 1 && s.ids.last == 9_000_000_100)
        // A retry of A's message 5 long after: its own time, not its chunk's.
        s.insert(5, at: 60_000)
        #expect(s.handedOverAt(5) == 60_000 && s.handedOverAt(6) == 1_000 && s.stragglerCount == 1 && s.count == 300)
        // B's next claim 5 s later, in a chunk B already has: beyond the span, exact times of its own.
        s.insert(5_000_101, at: 6_000)
        #expect(s.handedOverAt(5_000_101) == 6_000 && s.handedOverAt(5_000_100) == 1_000)
        // Within the span the chunk's time moves to the latest (read late, never early).
        s.insert(101, at: 1_900)
        #expect(s.handedOverAt(101) == 1_900 && s.handedOverAt(100) == 1_900 && s.handedOverAt(64) == 1_900)
        #expect(s.handedOverAt(63) == 1_000, "another chunk keeps its time")
    }

    /// Expiry walks chunks by their time, oldest first, and stops at the first one not yet due; stragglers go
    /// at their own time; restored counts follow.
    @Test func expiryByChunkTime() {
        var s = HandedOverSet()
        for id in Int64(1)...64 { s.insert(id, at: 1_000) }      // chunks 0 (1-63) and 1 (64)
        for id in Int64(65)...200 { s.insert(id, at: 5_000) }    // 65-127: beyond chunk 1's span, stragglers; chunks 2, 3
        s.insert(2, at: 7_000)                                    // straggler: a retry
        #expect(s.count == 200)
        s.removeHandedOver(before: 1_000)
        #expect(s.count == 200, "nothing handed over before 1,000")
        s.removeHandedOver(before: 1_001)
        // Chunk 0 (1, 3...63 at 1,000) and 64 (chunk 1 at 1,000) are gone; 65...127 are stragglers of chunk 1 at 5,000.
        #expect(s.count == 200 - 63 && s.handedOverAt(1) == nil && s.handedOverAt(64) == nil)
        #expect(s.handedOverAt(2) == 7_000 && s.handedOverAt(65) == 5_000)
        #expect(s.oldest() == 65)
        s.removeHandedOver(before: 5_001)
        #expect(s.ids == [2])
        s.removeHandedOver(before: 7_001)
        #expect(s.isEmpty && s.oldest() == nil)
    }

    /// A restart: the store's rows come in id order with times in any order, in several batches; the set sorts
    /// its queue by time before expiry or the oldest is read, and counts what was restored until it goes.
    @Test func restartFromTheStoresRows() {
        var s = HandedOverSet()
        var rows: [(id: Int64, at: UnixMillis)] = []
        for id in Int64(1)...1_000 { rows.append((id, 10_000 - id * 7 % 5_000)) }
        for batch in stride(from: 0, to: rows.count, by: 300) {
            for r in rows[batch..<min(batch + 300, rows.count)] { s.insert(r.id, at: r.at, restored: true) }
        }
        #expect(s.count == 1_000 && s.restoredCount == 1_000)
        let times = Set(rows.map(\.at))
        let oldest = s.oldest()
        #expect(oldest.flatMap { s.handedOverAt($0) }.map { $0 <= times.min()! + s.spanMillis } == true)
        // Expiry takes exactly those whose (chunk) time is before the cutoff, whatever their position.
        s.removeHandedOver(before: 7_500)
        #expect(s.ids.allSatisfy { s.handedOverAt($0)! >= 7_500 })
        #expect(s.restoredCount == s.count)
        let left = s.count
        #expect(left > 0 && left < 1_000)
        // New hand-overs are not restored; a restored one's receipt takes it out of both counts.
        s.insert(2_000, at: 20_000)
        let some = s.ids.first!
        s.remove(some)
        #expect(s.count == left && s.restoredCount == left - 1)
    }
}

/// A seeded generator (SplitMix64), so a failing shuffle can be replayed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}
