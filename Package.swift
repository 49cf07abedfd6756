// swift-tools-version:6.0
import PackageDescription

/// Loa: a bulk SMS campaign dispatcher.
///
/// Targets follow the data flow (see README "Architecture"): LoaCore is pure Swift;
/// each C library is imported by exactly one Swift module.
let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "Loa",
    platforms: [.macOS(.v15)],
    products: [.executable(name: "loa", targets: ["loa"])],
    targets: [
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd", providers: [.apt(["libmicrohttpd-dev"])]),
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),

        .target(name: "LoaCore", swiftSettings: strict),
        .target(name: "LoaStore", dependencies: ["LoaCore", "CSQLite"], swiftSettings: strict),
        .target(name: "LoaCarriers", dependencies: ["LoaCore", "CCurl"], swiftSettings: strict),
        .target(name: "LoaServer", dependencies: ["LoaCore", "CMicroHTTPD"], swiftSettings: strict),
        // The console's pages (HTML, CSS, JavaScript), copied as they are into Loa_LoaDaemon.resources/Console beside
        // the binary; the daemon finds them by path (ConsoleRoutes.swift), never through Bundle.module.
        .target(name: "LoaDaemon", dependencies: ["LoaCore", "LoaStore", "LoaCarriers", "LoaServer", "CSodium"],
                resources: [.copy("Console")], swiftSettings: strict),
        .target(name: "LoaSim", dependencies: ["LoaCore", "LoaCarriers", "LoaServer"], swiftSettings: strict),
        .target(name: "LoaCommandLine", dependencies: ["LoaCore", "LoaStore", "LoaCarriers", "LoaDaemon", "LoaSim"], swiftSettings: strict),
        .executableTarget(name: "loa", dependencies: ["LoaCommandLine"], swiftSettings: strict),
        .executableTarget(name: "loa-bench", dependencies: ["LoaCore", "LoaStore", "LoaCarriers", "LoaDaemon"], swiftSettings: strict),

        .testTarget(name: "LoaCoreTests", dependencies: ["LoaCore"], swiftSettings: strict),
        .testTarget(name: "LoaStoreTests", dependencies: ["LoaStore"], swiftSettings: strict),
        .testTarget(name: "LoaCarriersTests", dependencies: ["LoaCarriers", "LoaServer"], swiftSettings: strict),
        .testTarget(name: "LoaServerTests", dependencies: ["LoaServer", "LoaCarriers"], swiftSettings: strict),
        .testTarget(name: "LoaDaemonTests", dependencies: ["LoaDaemon", "LoaCommandLine", "LoaSim"], swiftSettings: strict),
        .testTarget(name: "IntegrationTests", dependencies: ["LoaCore", "LoaCarriers", "LoaServer", "LoaStore"], exclude: ["kannel", "generic"], swiftSettings: strict),
    ]
)
