import Foundation

/// libFuzzer's entry point for every target in Tests/LoaDaemonTests/Fuzz/FuzzTargets.swift: the target is
/// named by the environment variable LOA_FUZZ_TARGET (Tests/Fuzz/run.sh sets it).
let target: @Sendable ([UInt8]) -> Void = {
    let name = ProcessInfo.processInfo.environment["LOA_FUZZ_TARGET"] ?? ""
    guard let t = FuzzTargets.all.first(where: { $0.name == name }) else {
        fatalError("LOA_FUZZ_TARGET must be one of: \(FuzzTargets.all.map(\.name).joined(separator: ", "))")
    }
    return t.run
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    target(size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : [])
    return 0
}
