// Fuzz target `sessions`: session deltas, session records, transfer batches, map entries,
// locations and removal stamps, with both codecs (see FuzzSessions in the CohortSessions folder).
import CohortSessions
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSessionsInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzSessions.run(fuzzBytes(data, size))
    return 0
}

@_cdecl("LLVMFuzzerInitialize")
public func initializeSessions(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    Seeds.writeIfAsked(FuzzSessions.seeds())
    return 0
}
