import Foundation
import LoaCarriers
import Testing

/// Issue 20: the console shows a campaign's preview numbers from the daemon (`GET /api/v1/campaigns/{id}/preview`),
/// and they are the numbers `loa preview` prints for the same files.
@Suite(.ownThreads, .serialized) struct PreviewTests {
    /// Two segments with a ward column, duplicates within and across them, invalid numbers of several kinds, one
    /// opted-out number and one excluded one; two carriers by network. Uploaded through the API (`loa campaign
    /// submit`), the endpoint's totals equal `loa preview --json`'s for the same files, number by number.
    @Test(.timeLimit(.minutes(3))) func endpointEqualsLoaPreview() async throws {
        let work = WorkDir("preview-api")
        let carriers = """
            [{"name": "vt", "kind": "kannel", "url": "http://127.0.0.1:9/cgi-bin/sendsms", "username": "u",
              "password": {"env": "LOA_KANNEL_PASSWORD"}, "receipt_secret": {"env": "LOA_RECEIPT_SECRET"}, "rate": 10},
             {"name": "other", "kind": "kannel", "url": "http://127.0.0.1:9/cgi-bin/sendsms", "username": "u",
              "password": {"env": "LOA_KANNEL_PASSWORD"}, "receipt_secret": {"env": "LOA_RECEIPT_SECRET"}, "rate": 10}]
            """
        let loa = try LoaDaemonProcess(work: work, carriers: carriers, defaultCarrier: "other", networks: #"{"viettel": "vt"}"#)
        // Viettel 096…/097…, MobiFone 090…, VinaPhone 091…; Vietnamese names make some messages UCS-2, long ones 2 parts.
        work.write("c/a.csv", """
            phone,name,ward
            0961000001,An,Phường Bến Nghé
            0971000002,Binh,Phường Bến Nghé
            0901000003,Chi,Phường Sài Gòn
            0912000004,Dũng,Xã Cần Giờ
            +84 961 000 001,An again,Phường Bến Nghé
            12345,Short,Phường Sài Gòn
            0283822123,Landline,Xã Cần Giờ
            0961000009,Opted,Phường Sài Gòn
            0901000010,Excluded,Xã Cần Giờ
            09x1000011,Letters,Xã Cần Giờ

            """)
        work.write("c/b.csv", """
            phone,name,ward
            0912000004,Dũng again,Xã Cần Giờ
            0971000012,Giang,Phường Sài Gòn
            0901000013,Hà Nguyễn Thị Thu Hương Phương Thảo Ngọc Ánh,Phường Bến Nghé
            1234,Short again,Phường Bến Nghé
            0961000014,Khoa,Phường Bến Nghé

            """)
        work.write("c/ex.txt", "0901000010\n")
        work.write("c/t.txt", "Kính gửi {{name}} ({{ward}}): mời góp ý dự thảo quy hoạch trên VNeID trước ngày 30/11.\n")
        work.write("c/campaign.json", """
            {"id": "pv", "sender": "UBND", "templates": ["t.txt"], "segments": ["a.csv", "b.csv"], "exclude": ["ex.txt"],
             "start": "2098-01-01T07:00:00+07:00", "deadline": "2099-01-01T00:00:00+07:00"}
            """)
        try await loa.start()
        defer { _ = loa.stop() }
        #expect(try loa.cli(["optout", "add", "0961000009"]).status == 0)

        // The local count (it fetches the daemon's opt-out list), then the same files through the API.
        let local = try loa.cli(["preview", work.file("c/campaign.json"), "--json"])
        try #require(local.status == 0, "\(local.output)")
        let localJSON = try #require(local.output.split(separator: "\n").first { $0.hasPrefix("{") })
        let expected = try #require(try JSONSerialization.jsonObject(with: Data(localJSON.utf8)) as? [String: Any])
        let submit = try loa.cli(["campaign", "submit", work.file("c/campaign.json")])
        try #require(submit.status == 0, "\(submit.output)")
        let r = try await loa.api("/api/v1/campaigns/pv/preview")
        try #require(r.status == 200, "\(r.bodyText)")
        let got = try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])

        let counts = ["rows", "recipients", "duplicates", "excluded", "opted_out", "suppressed", "rejected", "parts", "ucs2_messages", "gsm7_messages"]
        for key in counts {
            #expect(got[key] as? Int != nil && got[key] as? Int == expected[key] as? Int, "\(key): API \(got[key] ?? "-"), loa preview \(expected[key] ?? "-")")
        }
        for key in ["rejected_by_reason", "per_carrier", "per_network", "per_ward"] {
            let a = got[key] as? [String: Int] ?? [:], b = expected[key] as? [String: Int] ?? [:]
            #expect(!a.isEmpty && a == b, "\(key): API \(a), loa preview \(b)")
        }
        // And the numbers are the ones the files hold, not merely equal.
        #expect(got["rows"] as? Int == 15 && got["recipients"] as? Int == 7, "\(got)")
        #expect(got["duplicates"] as? Int == 2 && got["opted_out"] as? Int == 1 && got["excluded"] as? Int == 1, "\(got)")
        #expect((got["rejected_by_reason"] as? [String: Int])?.values.reduce(0, +) == 4, "\(got)")
        #expect((got["rejected_by_reason"] as? [String: Int])?.count ?? 0 >= 2, "several reasons: \(got)")
        #expect(got["per_carrier"] as? [String: Int] == ["vt": 4, "other": 3], "\(got)")
        #expect(got["per_ward"] as? [String: Int] == ["Phường Bến Nghé": 4, "Phường Sài Gòn": 2, "Xã Cần Giờ": 1], "\(got)")
        #expect(got["ucs2_messages"] as? Int == 7 && (got["parts"] as? Int ?? 0) >= 14, "\(got)")
        #expect((got["samples"] as? [[String: Any]])?.first?["phone"] as? String == "+8496****001", "\(got["samples"] ?? "")")
        #expect((got["feasibility"] as? [String: Any])?["on_time"] as? Bool == true, "\(got["feasibility"] ?? "")")

        // The CLI reads it back as `loa preview` prints its totals.
        let show = try loa.cli(["campaign", "preview", "pv"])
        #expect(show.status == 0 && show.output.contains("recipients            7") && show.output.contains("duplicates            2"), "\(show.output)")
        #expect(show.output.contains("per carrier           other 3, vt 4"), "\(show.output)")
        let missing = try await loa.api("/api/v1/campaigns/nosuch/preview")
        #expect(missing.status == 404, "\(missing.bodyText)")
    }
}
