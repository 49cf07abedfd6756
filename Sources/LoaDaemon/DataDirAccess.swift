import Foundation

/// Whether anyone but Loa's own user can get at the data directory: the store and the delivery log hold every
/// recipient's phone number.
///
/// Loa creates the directory 0700 and its files 0600 (the daemon runs with umask 077), but a directory made
/// by hand (`mkdir data` under umask 022 is 0755) or a log rotated with a wide `create` mode was used without a
/// word. The daemon now refuses such a directory unless started with `--allow-shared-data-dir` (then it
/// warns), and `loa check` reports it the same way.
public enum DataDirAccess {
    /// A path in the data directory that group or others have any permission on.
    public struct Exposed: Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var mode: mode_t

        public var octal: String { "0" + String(mode & 0o777, radix: 8) }
        public var description: String { "\(path) has mode \(octal): group or others may read it" }
    }

    /// The data directory and the files in it that hold numbers (those that exist).
    public static func paths(dataDir: String) -> [String] {
        [dataDir] + ["delivery.log", "loa.db", "loa.db-wal", "loa.db-shm"].map { dataDir + "/" + $0 }
    }

    /// Those of ``paths(dataDir:)`` that exist with any group or other permission bit set (`mode & 0o077`).
    public static func exposed(dataDir: String) -> [Exposed] {
        paths(dataDir: dataDir).compactMap { p in
            var st = stat()
            guard stat(p, &st) == 0, st.st_mode & 0o077 != 0 else { return nil }
            return Exposed(path: p, mode: st.st_mode)
        }
    }

    /// What to run instead of the override.
    public static func fix(_ e: Exposed, dataDir: String) -> String {
        "chmod \(e.path == dataDir ? "700" : "600") \(e.path)"
    }
}
