import Foundation
import LoaCore
import LoaStore
import Testing
@testable import LoaCommandLine
@testable import LoaDaemon
@testable import LoaSim

@Suite struct SegmentReaderTests {
    func campaign(maxSegments: Int? = nil, encoding: EncodingPolicy = .auto, template: String = "Chào {{name|bạn}}") -> (CampaignSubmission, [Template]) {
        let sub = CampaignSubmission(id: "c", name: nil, sender: "LOA", templates: [.init(name: "t", text: template)],
                                     segments: [], start: "2026-01-01T00:00:00Z", deadline: "2099-01-01T00:00:00Z",
                                     encoding: encoding, maxSegments: maxSegments, allowedCountryCodes: [])
        return (sub, [try! Template(name: "t", source: template)])
    }

    func read(_ text: String, format: SegmentFormat = .csv, maxSegments: Int? = nil, encoding: EncodingPolicy = .auto,
              template: String = "Chào {{name|bạn}}", chunk: Int = 5) throws -> [IngestRow] {
        let (sub, templates) = campaign(maxSegments: maxSegments, encoding: encoding, template: template)
        var rows: [IngestRow] = []
        let r = SegmentReader(source: "s", format: format, campaign: sub, templates: templates, phoneColumn: "phone",
                              router: Router(defaultCarrier: "k"), batchSize: 2) { rows += $0 }
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            let end = min(bytes.count, i + chunk)
            try bytes[i..<end].withUnsafeBytes { try r.feed($0) }
            i = end
        }
        try r.finish()
        return rows
    }

    @Test func messyRowsAreRejectedOneByOneAndTheRestKept() throws {
        let rows = try read("phone,name\n0912 345 678,An\n,Empty\n0283822123,Fixed\n0912345679,Ragged,extra\n\"0912.345.670\",\n")
        let summary = rows.map { r -> String in
            switch r {
            case .accepted(let p, _, let text, _, _, _, let line, _, _, _): "\(line) ok \(p) \(text)"
            case .rejected(_, let code, _, _, let line): "\(line) \(code)"
            }
        }
        #expect(summary == ["2 ok +84912345678 Chào An", "3 empty", "4 fixed-line", "5 ragged-row", "6 ok +84912345670 Chào bạn"])
    }

    @Test func oneNumberPerLine() throws {
        let rows = try read("0912345678\n\n+84 912 345 679\nxyz\n", format: .lines, template: "Xin chào")
        #expect(rows.count == 3)
        guard case .accepted(_, _, _, _, _, _, 3, let raw, _, _) = rows[1] else { Issue.record("\(rows)"); return }
        #expect(raw == "+84 912 345 679")
        guard case .rejected(_, "invalid-characters", _, _, 4) = rows[2] else { Issue.record("\(rows)"); return }
    }

    @Test func maxSegmentsFailsTheSegmentWithAnExample() {
        let long = String(repeating: "Góp ý dự thảo. ", count: 10)
        do {
            _ = try read("phone,name\n0912345678,An\n0912345679,Bình\n", maxSegments: 1, template: long + "{{name}}")
            Issue.record("expected a max_segments error")
        } catch let e as SegmentReader.HeaderError {
            #expect(e.field == "max_segments")
            #expect(e.description.contains("2 recipient(s) would need more than 1 SMS parts"), "\(e)")
            #expect(e.description.contains("line 2: +8491****678: the text needs 3 SMS parts"), "\(e)")
        } catch {
            Issue.record("\(error)")
        }
        // ascii makes the same slogan fit in fewer parts.
        #expect((try? read("phone,name\n0912345678,An\n", maxSegments: 2, encoding: .ascii, template: long + "{{name}}"))?.count == 1)
    }
}

@Suite struct SegmentReaderOutputTests {
    /// A NUL in a cell refuses the row with a reason (it used to cut the text and the number at the NUL), and a row
    /// with invalid UTF-8 keeps its phone value for the rejects export.
    @Test func badBytesRefuseTheRowAndKeepThePhone() throws {
        let (sub, templates) = SegmentReaderTests().campaign()
        var rows: [IngestRow] = []
        let r = SegmentReader(source: "s", campaign: sub, templates: templates, phoneColumn: "phone", router: Router(defaultCarrier: "k")) { rows += $0 }
        let bytes = Array("phone,name\n0912345678,An\u{0}Evil\n09123\u{0}45679,B\n".utf8) + Array("0912345670,".utf8) + [0xC3, 0x28, 0x0A]
            + Array("0912345671,Đủ\n".utf8)
        try bytes.withUnsafeBytes { try r.feed($0) }
        try r.finish()
        let summary = rows.map { row -> String in
            switch row {
            case .accepted(let p, _, let text, _, _, _, let line, _, _, _): "\(line) ok \(p) \(text)"
            case .rejected(let raw, let code, let message, _, let line): "\(line) \(code) \(raw.debugDescription) \(message)"
            }
        }
        #expect(summary == [
            "2 control-character \"0912345678\" column 'name' holds the control character U+0000; the row is refused rather than cut",
            "3 control-character \"09123\\0{45679\" column 'phone' holds the control character U+0000; the row is refused rather than cut"
                .replacingOccurrences(of: "\\0{", with: "\\0"),
            "4 malformed-row \"0912345670\" invalid UTF-8 in column 'name'",
            "5 ok +84912345671 Chào Đủ",
        ])
    }
}
