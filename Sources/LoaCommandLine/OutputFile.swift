import Foundation

/// A file the CLI writes whole or not at all: the text goes to a temporary file beside it (created 0600: reports
/// hold phone numbers), which takes the final name only when everything was written. A command that fails half
/// way (`loa report nosuch --csv x.csv`) leaves no file behind, not even a header.
final class OutputFile {
    let path: String
    private let temporary: String
    private let handle: FileHandle
    private let replace: Bool
    private var done = false

    struct Failure: Error, CustomStringConvertible { var description: String }

    /// `replace`: an existing file at `path` is replaced (the HTML report); otherwise it is refused, before
    /// anything is fetched, and again at the end (the CSV files never overwrite).
    init(_ path: String, replace: Bool) throws {
        self.path = path
        self.replace = replace
        if !replace && FileManager.default.fileExists(atPath: path) {
            throw Failure(description: "\(path): already exists; it must not exist yet")
        }
        let dir = (path as NSString).deletingLastPathComponent
        var template = Array(((dir.isEmpty ? "." : dir) + "/." + (path as NSString).lastPathComponent + ".tmp-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }  // mode 0600
        guard fd >= 0 else { throw Failure(description: "\(path): cannot create (\(String(cString: strerror(errno))))") }
        temporary = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    func write(_ text: String) { handle.write(Data(text.utf8)) }

    /// Gives the file its name. Without `replace`, a file that appeared meanwhile is not overwritten (link, then
    /// unlink the temporary name).
    func commit() throws {
        try handle.synchronize()
        try handle.close()
        done = true
        if replace {
            guard rename(temporary, path) == 0 else {
                let e = String(cString: strerror(errno))
                unlink(temporary)
                throw Failure(description: "\(path): cannot write (\(e))")
            }
        } else {
            defer { unlink(temporary) }
            guard link(temporary, path) == 0 else { throw Failure(description: "\(path): cannot create (\(String(cString: strerror(errno)))); it must not exist yet") }
        }
    }

    deinit {
        // Not committed: the partial text goes.
        if !done { try? handle.close(); unlink(temporary) }
    }
}
