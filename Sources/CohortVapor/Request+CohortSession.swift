#if Vapor
import CohortSessions
import Vapor

extension Request {
    /// Gives the request's session a new id when the request ends (against session fixation):
    /// the old id stops working on every node, and the response's cookie carries the new one.
    /// ``CohortSessionDriver`` does it by itself when a principal key changes (a login); call
    /// this for other privilege changes. Does nothing for a request without a session, or one
    /// whose session is new (its id was never sent).
    public func rotateSessionID() {
        storage[RotationKey.self] = true
    }

    /// The Cohort session behind `req.session`, as ``CohortSessionDriver`` read it (creation
    /// and last access times, idle limit, absolute expiry, principal), or nil when the request
    /// has none yet.
    public var cohortSession: CohortSessions.Session? {
        storage[LoadedSessionKey.self]?.session
    }
}
#endif
