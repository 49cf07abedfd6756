import Foundation

/// The two path operations campaign files need, on the path's bytes. Foundation's `NSString.lastPathComponent`
/// crashed on a segment path of many slashes (`a.csv////…h[////…`, found by the campaign fuzz target): what a
/// planner writes must never reach it.
public enum PathText {
    /// `a/b.csv` → `b.csv`, `a///b//` → `b`, `/` → `/`, `` → ``.
    public static func lastComponent(of path: String) -> String {
        guard let last = path.split(separator: "/").last else { return path.isEmpty ? "" : "/" }
        return String(last)
    }

    /// `a/b.csv` → `a`, `/b.csv` → `/`, `b.csv` → ``, `a//b//c/` → `a//b`.
    public static func directory(of path: String) -> String {
        var p = Substring(path)
        while p.count > 1, p.hasSuffix("/") { p.removeLast() }
        guard let slash = p.lastIndex(of: "/") else { return "" }
        var dir = p[..<slash]
        while dir.hasSuffix("/") { dir.removeLast() }
        return dir.isEmpty ? "/" : String(dir)
    }
}
