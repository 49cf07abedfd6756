import Foundation
import LoaCore
import LoaStore
import Testing
@testable import LoaDaemon

/// The live log's stream on a log file written by the test: events, resume, rotation, keep-alive, close, cut.
@Suite struct LiveLogStreamTests {
    final class LogFile {
        let dir = NSTemporaryDirectory() + "loa-livelog-\(getpid())-\(UUID().uuidString.prefix(8))"
        var path: String { dir + "/delivery.log" }
        init() { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: dir) }

        func line(_ seq: Int, campaign: String = "c1", status: String = "delivered") -> String {
            "{\"v\":1,\"seq\":\(seq),\"time\":\"2026-12-02T08:00:00.000Z\",\"campaign\":\"\(campaign)\",\"message\":\(seq),\"event\":\"receipt\",\"status\":\"\(status)\",\"attempt\":1}"
        }

        func append(_ seqs: ClosedRange<Int>, campaign: (Int) -> String = { _ in "c1" }) {
            let text = seqs.map { line($0, campaign: campaign($0)) + "\n" }.joined()
            if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            let h = FileHandle(forWritingAtPath: path)!
            h.seekToEndOfFile()
            h.write(Data(text.utf8))
            try? h.close()
        }
    }

    /// Reads events until `count` ids are in or `limit` calls are made; returns ids and the raw text.
    func drain(_ s: LiveLogStream, ids count: Int, limit: Int = 200) -> (ids: [Int64], text: String) {
        var ids: [Int64] = []
        var text = ""
        for _ in 0..<limit where ids.count < count {
            guard let b = s.next(max: 32 * 1024) else { break }
            let chunk = String(decoding: b, as: UTF8.self)
            text += chunk
            ids += chunk.split(separator: "\n").filter { $0.hasPrefix("id: ") }.compactMap { Int64($0.dropFirst(4)) }
        }
        return (ids, text)
    }

    @Test func followsFromNowFiltersByCampaignAndResumesWithoutGapsOrRepeats() {
        let log = LogFile()
        log.append(1...10)
        let s = LiveLogStream(path: log.path, campaign: "c1", after: nil, slot: nil)
        let head = String(decoding: s.next(max: 4096) ?? [], as: UTF8.self)
        #expect(head.hasPrefix(": loa delivery log\n"), "\(head)")
        // Only what is written from now on, and only c1's (c10 is not c1).
        log.append(11...40, campaign: { $0 % 3 == 0 ? "c10" : "c1" })
        let first = drain(s, ids: 20)
        #expect(first.ids == (11...40).filter { $0 % 3 != 0 }.map(Int64.init), "\(first.ids)")
        #expect(first.text.contains("data: " + log.line(11) + "\n\n"), "each event carries the log line whole")
        s.close()
        #expect(s.next(max: 4096) == nil)

        // Resume after the last id seen: the rest, each once.
        let resumed = LiveLogStream(path: log.path, campaign: "c1", after: 25, slot: nil)
        _ = resumed.next(max: 4096)
        let rest = drain(resumed, ids: 10)
        #expect(rest.ids == (26...40).filter { $0 % 3 != 0 }.map(Int64.init), "\(rest.ids)")
    }

    @Test func resumeFindsItsPlaceInALongLogAndFollowsRotation() {
        let log = LogFile()
        log.append(1...30_000)
        let s = LiveLogStream(path: log.path, campaign: nil, after: 29_990, slot: nil)
        _ = s.next(max: 4096)
        #expect(drain(s, ids: 10).ids == Array(29_991...30_000))
        // logrotate moves the file; the writer starts a new one.
        try? FileManager.default.moveItem(atPath: log.path, toPath: log.path + ".1")
        log.append(30_001...30_005)
        #expect(drain(s, ids: 5).ids == Array(30_001...30_005))
        // A resume from before the new file's first line says what it cannot give.
        let late = LiveLogStream(path: log.path, campaign: nil, after: 29_000, slot: nil)
        let head = String(decoding: late.next(max: 4096) ?? [], as: UTF8.self)
        #expect(head.contains("event: gap\ndata: {\"from\":29001,\"to\":30000"), "\(head)")
        #expect(drain(late, ids: 5).ids == Array(30_001...30_005))
    }

    @Test(.timeLimit(.minutes(1))) func keepsAliveAndEndsAtCloseWithoutWaiting() async throws {
        let log = LogFile()
        log.append(1...3)
        let s = LiveLogStream(path: log.path, campaign: nil, after: nil, slot: nil, keepAliveSeconds: 0.3)
        _ = s.next(max: 4096)
        #expect(s.next(max: 4096).map { String(decoding: $0, as: UTF8.self) } == ": keep-alive\n\n")
        // A next() waiting for lines returns nil soon after close() from another thread.
        let waiting = LiveLogStream(path: log.path, campaign: nil, after: nil, slot: nil, keepAliveSeconds: 60)
        _ = waiting.next(max: 4096)
        let started = Date()
        let closer = Thread { Thread.sleep(forTimeInterval: 0.3); waiting.close() }
        closer.start()
        #expect(waiting.next(max: 4096) == nil)
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test func aClientTooFarBehindIsCutAndSlotsAreBounded() {
        let log = LogFile()
        log.append(1...2)
        let s = LiveLogStream(path: log.path, campaign: nil, after: nil, slot: nil, maxLag: 10_000)
        _ = s.next(max: 4096)
        log.append(3...200)  // ~30 KB the client has not taken
        let cut = String(decoding: s.next(max: 4096) ?? [], as: UTF8.self)
        #expect(cut.hasPrefix("event: cut\n"), "\(cut)")
        #expect(s.next(max: 4096) == nil)

        let slots = LiveLogSlots()
        let a = slots.take(limit: 2), b = slots.take(limit: 2)
        #expect(a != nil && b != nil && slots.take(limit: 2) == nil)
        let stream = LiveLogStream(path: log.path, campaign: nil, after: nil, slot: a)
        stream.close()
        stream.close()
        #expect(slots.count == 1, "a closed stream gives its slot back, once")
        #expect(slots.take(limit: 2) != nil)
    }
}
