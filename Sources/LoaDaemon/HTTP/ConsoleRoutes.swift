import Foundation
import LoaCore
import LoaServer

/// Where the console's files are: `console.directory` when the config sets it, else the SwiftPM resource bundle
/// next to the executable (`Loa_LoaDaemon.resources/Console`, which `swift build` writes beside `loa`; install it
/// beside the binary, INSTALL.md). Found by path, never through `Bundle.module`, which aborts the process when the
/// bundle is missing: a daemon without its console files runs on and answers `/console/` 404 saying where it looked.
enum ConsoleFiles {
    struct Missing: Error, CustomStringConvertible, Sendable {
        var looked: String
        var description: String { "the console's files are not installed: no index.html in \(looked) (set console.directory, or install Loa_LoaDaemon.resources beside the loa binary)" }
    }

    static let bundleName = "Loa_LoaDaemon.resources"

    static func locate(configured: String?) -> Result<String, Missing> {
        let dir = configured ?? (executableDirectory() + "/" + bundleName + "/Console")
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir + "/index.html", isDirectory: &isDir), !isDir.boolValue else {
            return .failure(Missing(looked: dir))
        }
        // Symbolic links resolved once, so the containment check of each request compares real paths.
        return .success(realPath(dir) ?? dir)
    }

    /// The directory of the running executable (`/proc/self/exe`: `argv[0]` may be relative or a name on PATH).
    static func executableDirectory() -> String {
        let exe = realPath("/proc/self/exe") ?? CommandLine.arguments.first ?? "."
        return PathText.directory(of: exe)
    }

    static func realPath(_ p: String) -> String? {
        guard let r = realpath(p, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }

    /// A path segment the console may name: letters, digits, `.`, `_`, `-`, not starting with a dot (no `..`, no
    /// hidden files), at most 100 characters.
    static func safeSegment(_ s: Substring) -> Bool {
        guard let first = s.utf8.first, first != UInt8(ascii: "."), s.utf8.count <= 100 else { return false }
        return s.utf8.allSatisfy { c in
            (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c) || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
        }
    }

    static let contentTypes: [String: String] = [
        "html": "text/html; charset=utf-8", "css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8",
        "json": "application/json", "svg": "image/svg+xml", "png": "image/png", "ico": "image/x-icon",
        "woff2": "font/woff2", "txt": "text/plain; charset=utf-8",
    ]

    /// The headers every console answer carries: no caching without a check (a new build shows at once), a policy
    /// that runs only the console's own files (no inline script, no other origin, no framing), no sniffing, no
    /// referrer leaving the page.
    static let securityHeaders: [ServerResponse.Header] = [
        .init("Cache-Control", "no-cache"),
        .init("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
        .init("X-Content-Type-Options", "nosniff"),
        .init("Referrer-Policy", "no-referrer"),
    ]

    /// Files larger than this are not served (the console's are a few hundred KiB at most).
    static let maxFileSize = 8 << 20
}

extension DaemonService {
    /// `GET /` (a redirect to the console), `GET /console` and `GET /console/<file>`, open to anyone: the files hold
    /// no data (the data is behind the API's session). Nil for any other path: the route table's.
    func consoleRoute(_ head: RequestHead) -> Route? {
        // Every request passes here (receipts too): anything not under /console costs one prefix compare.
        if head.path == "/" { return .respond(redirect("/console/")) }
        guard head.path.hasPrefix("/console") else { return nil }
        let segments = head.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard segments.first == "console" else { return nil }
        guard head.method == "GET" || head.method == "HEAD" else {
            var r = consoleError(405, "method-not-allowed", "\(head.path) does not take \(head.method)")
            r.headers.append(.init("Allow", "GET, HEAD"))
            return .refuse(r)
        }
        if segments.count == 1 { return .respond(redirect("/console/")) }
        var names = Array(segments.dropFirst())
        if names.last == "" { names[names.count - 1] = "index.html" }
        guard names.count <= 4, names.allSatisfy(ConsoleFiles.safeSegment) else {
            return .respond(consoleError(404, "not-found", "no such console file: \(head.path)"))
        }
        let dir: String
        switch console.files {
        case .success(let d): dir = d
        case .failure(let missing): return .respond(consoleError(404, "console-not-installed", missing.description))
        }
        let path = dir + "/" + names.joined(separator: "/")
        // Symbolic links inside the directory may not lead out of it.
        guard let real = ConsoleFiles.realPath(path), real.hasPrefix(dir + "/"),
              let attributes = try? FileManager.default.attributesOfItem(atPath: real),
              attributes[.type] as? FileAttributeType == .typeRegular,
              let size = attributes[.size] as? Int, size <= ConsoleFiles.maxFileSize,
              let data = FileManager.default.contents(atPath: real)
        else { return .respond(consoleError(404, "not-found", "no such console file: \(head.path)")) }
        let ext = names.last.map { $0.split(separator: ".").last.map(String.init) ?? "" } ?? ""
        let type = ConsoleFiles.contentTypes[ext.lowercased()] ?? "application/octet-stream"
        return .respond(ServerResponse(status: 200, headers: [.init("Content-Type", type)] + ConsoleFiles.securityHeaders, body: Array(data)))
    }

    private func redirect(_ to: String) -> ServerResponse {
        ServerResponse(status: 302, headers: [.init("Location", to)] + ConsoleFiles.securityHeaders)
    }

    private func consoleError(_ status: Int, _ code: String, _ message: String) -> ServerResponse {
        var r = error(status, code, message)
        r.headers += ConsoleFiles.securityHeaders
        return r
    }
}
