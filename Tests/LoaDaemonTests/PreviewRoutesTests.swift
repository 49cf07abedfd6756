import Foundation
import LoaCore
import LoaServer
import Testing
@testable import LoaDaemon

/// `POST /api/v1/preview/template`, in-process: the console's live preview while a planner types.
@Suite struct PreviewRoutesTests {
    func post(_ body: String) -> (status: Int, json: [String: Any]) {
        let head = RequestHead(method: "POST", path: "/api/v1/preview/template",
                               headers: ["authorization": "Bearer " + FuzzService.apiToken, "content-type": "application/json"],
                               remoteAddress: "127.0.0.1")
        let r = FuzzService.shared.handle(head, body: Array(body.utf8))
        return (r.status, (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]) ?? [:])
    }

    @Test func rendersWithFieldsAndSaysWhatForcesUCS2() {
        let r = post(#"{"template": "Kính gửi {{Name}} ({{ward|phường}})", "fields": {"name": "An"}}"#)
        #expect(r.status == 200, "\(r.json)")
        #expect(r.json["text"] as? String == "Kính gửi An (phường)")
        #expect(r.json["encoding"] as? String == "ucs2" && r.json["parts"] as? Int == 1)
        #expect(r.json["characters"] as? Int == 20 && r.json["characters_per_part"] as? Int == 70, "\(r.json)")
        #expect(r.json["unicode_characters"] as? [String] == ["í", "ử", "ư", "ờ"], "\(r.json)")

        let ascii = post(#"{"template": "Kính gửi {{name}}", "encoding": "ascii", "fields": {"name": "An"}}"#)
        #expect(ascii.json["text"] as? String == "Kinh gui An" && ascii.json["encoding"] as? String == "gsm7", "\(ascii.json)")
        #expect(ascii.json["unicode_characters"] as? [String] == [], "\(ascii.json)")

        let long = post(#"{"template": "{{x}}", "encoding": "gsm7", "fields": {"x": "\#(String(repeating: "a", count: 161))"}}"#)
        #expect(long.json["parts"] as? Int == 2 && long.json["characters"] as? Int == 161 && long.json["characters_per_part"] as? Int == 153, "\(long.json)")
    }

    @Test func aBadTemplateIs400WithItsLineAndColumn() {
        let r = post(#"{"template": "Xin chào\nmời {{name góp ý", "fields": {}}"#)
        #expect(r.status == 400)
        let error = r.json["error"] as? [String: Any] ?? [:]
        #expect(error["code"] as? String == "invalid-template" && error["line"] as? Int == 2 && error["column"] as? Int == 5, "\(r.json)")
        #expect((error["message"] as? String ?? "").hasPrefix("template:2:5: unclosed '{{'"), "\(r.json)")

        let missing = post(#"{"template": "Chào {{name}}"}"#)
        #expect(missing.status == 400 && ((missing.json["error"] as? [String: Any])?["message"] as? String ?? "").contains("no value for {{name}}"), "\(missing.json)")
        #expect(post(#"{"template": "x", "encoding": "ebcdic"}"#).status == 400)
        #expect(post(#"{"fields": {}}"#).status == 400)
    }
}
