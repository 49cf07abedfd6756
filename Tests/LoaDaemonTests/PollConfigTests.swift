import Foundation
import LoaCore
import Testing
@testable import LoaCommandLine
@testable import LoaDaemon
@testable import LoaSim

/// A generic carrier's `poll` and `receipts.aggregate` in the config file: problems name file, line and field,
/// and unknown keys inside them are refused like everywhere else.
@Suite struct PollConfigTests {
    let env = ["T": "0123456789abcdef-token", "S": "receipt-secret-0123456789"]

    @Test func pollProblemsNameTheirLineAndUnknownKeysAreRefused() throws {
        let s = Scratch()
        let path = s.write("loa.json", """
            {
              "data_dir": "data", "api_token": { "env": "T" },
              "carriers": [{
                "name": "g", "kind": "generic", "url": "http://127.0.0.1:9/send", "receipt_secret": { "env": "S" }, "rate": 10,
                "body": { "format": "json", "template": { "to": "{{to}}", "type": "{{encoding|gsm7=text}}" } },
                "receipts": { "format": "json", "key": "gateway", "id": "/id", "status": "/s", "statuses": { "1": "delivered" },
                              "aggregate": { "when": "/SendSuccess", "request_id": "/SMSID", "count": [] } },
                "poll": {
                  "url": "http://127.0.0.1:9/status?id={{gateway_id}}",
                  "max_ids": 5,
                  "intervall_seconds": 10,
                  "answer": { "id": "/id", "status": "/s", "statuses": { "X": "deliverd" }, "item_pointer": "/items" },
                },
              }],
              "routing": { "default": "g" },
            }
            """)
        guard case .failure(let problems) = ConfigLoader.load(path: path, environment: env) else {
            Issue.record("a bad poll section must not load")
            return
        }
        let lines = problems.problems.map { "\($0.line): \($0.field)" }
        let text = problems.description
        #expect(lines.contains("9: carriers.0.poll.url"), "\(text)")  // {{gateway_id}} with max_ids 5
        #expect(lines.contains("11: carriers.0.poll.intervall_seconds"), "\(text)")
        #expect(lines.contains("12: carriers.0.poll.answer.item_pointer"), "\(text)")
        #expect(lines.contains("12: carriers.0.poll.answer.statuses.X"), "\(text)")
        #expect(lines.contains("7: carriers.0.receipts.aggregate.count"), "\(text)")
        #expect(lines.contains("5: carriers.0.body.template.type"), "\(text)")
        #expect(text.contains("no output for encoding ucs2"), "\(text)")
        #expect(problems.problems.allSatisfy { $0.file == path }, "\(text)")
    }
}
