import Foundation
import LoaCarriers
import LoaCore

// `loa users …`, `loa tokens …`, `loa audit`, and `loa campaign approve|reject|test-send`: all through the operator
// API (the daemon holds the store's lock), as the admin for users and tokens, so each change is in the audit trail.
extension LoaCLI {
    static func users(_ opts: Options) async -> Int32 {
        guard let sub = opts.positional.first else { printError(help["users"]!); return 2 }
        let name = opts.positional.dropFirst().first
        return await withClient(opts) { client in
            switch sub {
            case "list":
                let r = try await client.request("GET", "/api/v1/users")
                guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
                if opts.json { print(terminalJSON(r.bodyText)); return 0 }
                let list = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]]) ?? []
                print(pad("NAME", 24) + pad("ROLE", 10) + pad("TOKENS", 8) + "CREATED")
                for u in list {
                    printLine(pad("\(u["name"] ?? "")", 24) + pad("\(u["role"] ?? "")", 10) + pad("\(u["tokens"] ?? 0)", 8)
                              + ISOTime.format(Int64("\(u["created_at"] ?? 0)") ?? 0))
                }
                return 0
            case "add", "passwd":
                guard let name else { printError(help["users"]!); return 2 }
                if sub == "add" && opts.role == nil { printError("loa users add: --role is required (\(Role.allCases.map(\.rawValue).joined(separator: ", ")))"); return 2 }
                let password: String
                do { password = try readPassword(file: opts.passwordFile, confirm: true) } catch { printError("loa users \(sub): \(error)"); return 1 }
                var body: [String: String] = ["password": password]
                if sub == "add" { body["name"] = name; body["role"] = opts.role }
                let r = sub == "add" ? try await client.request("POST", "/api/v1/users", body: Array(try JSONEncoder().encode(body)))
                                     : try await client.request("PUT", "/api/v1/users/\(URLQuery.escape(name))/password", body: Array(try JSONEncoder().encode(body)))
                guard r.status == 200 || r.status == 201 else { printError(APIClient.errorText(r)); return 1 }
                printLine(sub == "add" ? "user \(name) added (\(opts.role ?? ""))" : "user \(name): password changed")
                return 0
            case "unlock":
                guard let name else { printError(help["users"]!); return 2 }
                let r = try await client.request("POST", "/api/v1/users/\(URLQuery.escape(name))/unlock")
                guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
                let was = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["unlocked"] as? String == "true"
                printLine(was ? "user \(name): unlocked" : "user \(name) was not locked")
                return 0
            case "remove":
                guard let name else { printError(help["users"]!); return 2 }
                let r = try await client.request("DELETE", "/api/v1/users/\(URLQuery.escape(name))")
                guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
                printLine("user \(name) removed; their tokens are revoked")
                return 0
            default:
                printError(help["users"]!)
                return 2
            }
        }
    }

    static func tokens(_ opts: Options) async -> Int32 {
        guard let sub = opts.positional.first else { printError(help["tokens"]!); return 2 }
        return await withClient(opts) { client in
            switch sub {
            case "create":
                guard let user = opts.user else { printError("loa tokens create: --user NAME is required"); return 2 }
                let body = ["user": user, "name": opts.name ?? ""]
                let r = try await client.request("POST", "/api/v1/tokens", body: Array(try JSONEncoder().encode(body)))
                guard r.status == 201, let o = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
                      let token = o["token"] as? String else { printError(APIClient.errorText(r)); return 1 }
                // The token on stdout alone (for `$(loa tokens create …)`); the rest on stderr.
                print(token)
                printError("token \(o["id"] ?? "?") for \(user): shown once, stored only as a hash; give it to the CLI as LOA_TOKEN")
                return 0
            case "revoke":
                guard let id = opts.positional.dropFirst().first else { printError(help["tokens"]!); return 2 }
                let r = try await client.request("DELETE", "/api/v1/tokens/\(URLQuery.escape(id))")
                guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
                print("token \(id) revoked")
                return 0
            case "list":
                let r = try await client.request("GET", "/api/v1/tokens" + (opts.user.map { "?user=" + URLQuery.escape($0) } ?? ""))
                guard r.status == 200 else { printError(APIClient.errorText(r)); return 1 }
                if opts.json { print(terminalJSON(r.bodyText)); return 0 }
                let list = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]]) ?? []
                print(pad("ID", 6) + pad("USER", 24) + pad("NAME", 20) + pad("CREATED", 26) + "REVOKED")
                for t in list {
                    let revoked = (t["revoked_at"] as? Int64).map(ISOTime.format) ?? (t["revoked_at"] as? Int).map { ISOTime.format(Int64($0)) } ?? "-"
                    printLine(pad("\(t["id"] ?? "")", 6) + pad("\(t["user"] ?? "")", 24) + pad("\(t["label"] ?? "")", 20)
                              + pad(ISOTime.format(Int64("\(t["created_at"] ?? 0)") ?? 0), 26) + revoked)
                }
                return 0
            default:
                printError(help["tokens"]!)
                return 2
            }
        }
    }

    /// `loa audit`: every matching line of the audit trail, oldest first, as text or (`--csv FILE`) a new 0600 file.
    static func audit(_ opts: Options) async -> Int32 {
        await withClient(opts) { client in
            var filter = ""
            for (k, v) in [("user", opts.user), ("action", opts.action), ("campaign", opts.campaign),
                           ("since", opts.since.map(String.init)), ("until", opts.until.map(String.init))] {
                if let v { filter += "&\(k)=" + URLQuery.escape(v) }
            }
            // Into a file: written whole or not at all, 0600, never over an existing one (``OutputFile``).
            let file = try opts.csv.map { try OutputFile($0, replace: false) }
            file?.write("id,time,user,address,action,campaign,detail\n")
            var after: Int64 = 0
            var n = 0
            // Bounded: each page moves the cursor forward; the trail is finite.
            while true {
                let r = try await client.request("GET", "/api/v1/audit?limit=5000&after=\(after)" + filter)
                guard r.status == 200, let page = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
                      let rows = page["rows"] as? [[String: Any]] else { printError(APIClient.errorText(r)); return 1 }
                for e in rows {
                    let detail = (e["detail"]).flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]) }
                        .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
                    let fields = ["\(e["id"] ?? "")", "\(e["time"] ?? "")", "\(e["user"] ?? "")", "\(e["address"] ?? "")",
                                  "\(e["action"] ?? "")", (e["campaign"] as? String) ?? "", detail]
                    if let file { file.write(CSVWriter.record(fields)) }
                    else { printLine(fields.prefix(5).joined(separator: "  ") + (fields[5].isEmpty ? "" : "  campaign=" + fields[5]) + "  " + detail) }
                    n += 1
                }
                guard let next = page["next"] as? Int64 ?? (page["next"] as? Int).map(Int64.init) else { break }
                after = next
            }
            if let file {
                try file.commit()
                print("\(file.path): \(n) audit lines")
            }
            return 0
        }
    }

    /// `loa campaign approve|reject ID [--comment TEXT]` and `loa campaign test-send ID NUMBER…`.
    static func decide(_ sub: String, _ opts: Options, client: APIClient) async throws -> Int32 {
        guard let id = opts.positional.first else { printError(help["campaign"]!); return 2 }
        let body: [UInt8]
        if sub == "test-send" {
            let numbers = Array(opts.positional.dropFirst())
            guard !numbers.isEmpty else { printError("loa campaign test-send ID NUMBER…: give 1-5 numbers"); return 2 }
            body = Array(try JSONEncoder().encode(["numbers": numbers]))
        } else {
            body = Array(try JSONEncoder().encode(["comment": opts.comment ?? ""]))
        }
        let r = try await client.request("POST", "/api/v1/campaigns/\(URLQuery.escape(id))/\(sub)", body: body)
        guard r.status == 200 || r.status == 201 else { printError(APIClient.errorText(r)); return 1 }
        let o = (try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]) ?? [:]
        if sub == "test-send" {
            printLine("campaign \(id): test send \(o["test_campaign"] ?? "?") to \(o["accepted"] ?? 0) number(s); follow it with loa campaign show \(o["test_campaign"] ?? "")")
        } else {
            printLine("campaign \(id): \(o["state"] ?? "?")")
        }
        return 0
    }

    /// A password from `file` (its first line), else from a terminal without echo (asked twice), else stdin's first line.
    static func readPassword(file: String?, confirm: Bool) throws -> String {
        struct Bad: Error, CustomStringConvertible { var description: String }
        if let file {
            guard let d = FileManager.default.contents(atPath: file) else { throw Bad(description: "\(file): cannot read") }
            return String(decoding: d, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        }
        guard isatty(STDIN_FILENO) == 1 else { return readLine(strippingNewline: true) ?? "" }
        func ask(_ prompt: String) -> String {
            FileHandle.standardError.write(Data(prompt.utf8))
            var old = termios()
            tcgetattr(STDIN_FILENO, &old)
            var quiet = old
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
            defer {
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &old)
                FileHandle.standardError.write(Data("\n".utf8))
            }
            return readLine(strippingNewline: true) ?? ""
        }
        let first = ask("password: ")
        if confirm && ask("again: ") != first { throw Bad(description: "the two passwords differ") }
        return first
    }
}
