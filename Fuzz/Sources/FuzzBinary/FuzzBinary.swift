// Fuzz target `binary`: every registered message type (Cohort's own and every replication
// message of CohortSessions) decoded through MessageRegistry.decode with the binary codec. The
// first byte picks the type; the rest is the payload. A decoded message must encode and decode
// again, and the bodies it carries are decoded as the replicators would.
import CohortCodecBinary
import CohortSessions
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBinaryInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    guard let selector = bytes.first else { return 0 }
    FuzzMessages.decode(selector: selector, payload: Array(bytes.dropFirst()), codec: BinaryCodec())
    return 0
}

@_cdecl("LLVMFuzzerInitialize")
public func initializeBinary(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    Seeds.writeIfAsked(FuzzMessages.seeds(codec: BinaryCodec()))
    return 0
}
