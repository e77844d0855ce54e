// Fuzz target `states`: input sequences for MembershipState, AllCopiesState and
// PrimaryBackupState, invariants checked after every step (see FuzzStates in the CohortSessions
// folder).
import CohortSessions
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzStatesInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzStates.run(fuzzBytes(data, size))
    return 0
}

@_cdecl("LLVMFuzzerInitialize")
public func initializeStates(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    Seeds.writeIfAsked(FuzzStates.seeds())
    return 0
}
