#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The seed corpus of a target, written on request.
///
/// `COHORT_FUZZ_WRITE_SEEDS=DIR TARGET` writes each seed to `DIR/NAME` and exits instead of
/// fuzzing (`scripts/fuzz --seeds` does this for every target): the committed corpora are real
/// encodings made by the code under test, not hand-made bytes.
public enum Seeds {
    /// Called from `LLVMFuzzerInitialize`.
    public static func writeIfAsked(_ seeds: @autoclosure () -> [(name: String, bytes: [UInt8])]) {
        guard let dir = getenv("COHORT_FUZZ_WRITE_SEEDS").map({ String(cString: $0) }), !dir.isEmpty else { return }
        var written = 0
        for seed in seeds() {
            let path = dir + "/" + seed.name
            guard let file = fopen(path, "wb") else {
                print("cannot write \(path)")
                exit(1)
            }
            _ = seed.bytes.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
            written += 1
        }
        print("wrote \(written) seed(s) to \(dir)")
        exit(0)
    }
}

/// The bytes of libFuzzer's input.
@inline(__always)
public func fuzzBytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}
