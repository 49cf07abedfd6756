import Foundation
import Testing
@testable import LoaCore

@Suite struct LoggerTests {
    @Test func aRecordCarriesLevelMessageAndMergedMetadata() {
        let handler = CollectingLogHandler()
        let logger = Logger(label: "loa", level: .info, metadata: ["carrier.name": "k", "a": "1"], handler: handler).with(["campaign.id": "c1"])
        logger.debug("not kept: below the level")
        logger.warning("carrier breaker opened", ["a": "2", "http.status": "503"])
        #expect(handler.records == [LogRecord(level: .warning, label: "loa", message: "carrier breaker opened",
                                              metadata: ["carrier.name": "k", "a": "2", "campaign.id": "c1", "http.status": "503"])])
    }

    /// Under systemd the journal stamps each line; the line then starts at the level.
    @Test func theJournalStampsTheTime() {
        let record = LogRecord(level: .notice, label: "loa", message: "loa ready", metadata: ["listen.port": "8080"])
        let clock = ManualTimeSource(ISOTime.parse("2026-12-01T10:00:00Z")!)
        let journal = StderrLogHandler(environment: ["JOURNAL_STREAM": "8:12345"], clock: clock)
        #expect(!journal.stampsTime)
        #expect(journal.line(record) == "notice loa: loa ready listen.port=8080\n")
        let terminal = StderrLogHandler(environment: [:], clock: clock)
        #expect(terminal.stampsTime)
        #expect(terminal.line(record) == "2026-12-01T10:00:00.000Z notice loa: loa ready listen.port=8080\n")
    }
}
