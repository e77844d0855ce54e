#if Vapor
import Cohort
import CohortSessions
import Foundation
import Logging
import Vapor

/// A Vapor session driver whose sessions live in a Cohort session manager, so a Vapor app's
/// sessions (`req.session`, `SessionAuthenticatable` logins) survive the loss of a node:
///
/// ```swift
/// app.sessions.use { _ in CohortSessionDriver(node: node) }
/// app.grouped(ClusterReadinessMiddleware(node: node), app.sessions.middleware)
/// ```
///
/// What it adds to Vapor's sessions:
/// - **Change detection.** Vapor's `SessionsMiddleware` calls ``updateSession(_:to:for:)`` at the
///   end of every request that has a session. The driver compares the data with what
///   ``readSession(_:for:)`` returned (kept in the request's storage) and replicates only the keys
///   that changed, as one delta. A request that changed nothing sends nothing, except an access
///   refresh at most once per half idle interval, so the other copies do not expire a session
///   that is only read.
/// - **Server-side expiry**, which Vapor has none of: an idle limit
///   (``Configuration/idleTimeout``) and an absolute lifetime (``Configuration/absoluteTimeout``),
///   enforced by every replica on the manager's clock, whatever the cookie says.
/// - **Id rotation** against session fixation: when a principal key changes (a login, a logout,
///   a switch of user — ``Configuration/isPrincipalKey``) and whenever a handler calls
///   `req.rotateSessionID()`, the session gets a new id; the old one stops working on every node
///   and Vapor sets the new one as the cookie.
/// - **Honest failures.** When the node is not ready (state transfer under way, shutting down,
///   out of quorum) or the store fails, the request gets 503 with `Retry-After` — never a
///   silent new, empty session that would log the user out.
public struct CohortSessionDriver: AsyncSessionDriver {
    /// Settings of the driver.
    public struct Configuration: Sendable {
        /// The idle limit of new sessions; nil uses the manager's
        /// (``SessionManagerConfiguration/maxInactiveInterval``). Zero or less: no idle limit.
        public var idleTimeout: Duration?
        /// The longest a session lives however busy it is (set when it is created); nil: no limit.
        public var absoluteTimeout: Duration?
        /// Whether a change of a principal key gives the session a new id.
        public var rotateOnPrincipalChange: Bool
        /// Which session keys name the authenticated user. The default matches Vapor's
        /// `SessionAuthenticatable` keys (`_UserSession`); the first set in sorted order becomes
        /// the Cohort session's ``Session/principal``.
        public var isPrincipalKey: @Sendable (String) -> Bool
        /// Seconds in the `Retry-After` header of a 503.
        public var retryAfterSeconds: Int

        /// Creates a configuration.
        public init(
            idleTimeout: Duration? = nil,
            absoluteTimeout: Duration? = nil,
            rotateOnPrincipalChange: Bool = true,
            isPrincipalKey: @escaping @Sendable (String) -> Bool = SessionDataChange.isVaporAuthenticationKey,
            retryAfterSeconds: Int = 1
        ) {
            self.idleTimeout = idleTimeout
            self.absoluteTimeout = absoluteTimeout
            self.rotateOnPrincipalChange = rotateOnPrincipalChange
            self.isPrincipalKey = isPrincipalKey
            self.retryAfterSeconds = retryAfterSeconds
        }
    }

    /// The manager holding the sessions.
    public let manager: SessionManager
    /// The settings in force.
    public let configuration: Configuration
    /// Whether the node may serve sessions (state transfer done, not stopping, in quorum).
    public let ready: @Sendable () -> Bool

    /// Creates a driver over a node's session manager, ready when the node is.
    public init(node: ClusterNode, configuration: Configuration = Configuration()) {
        self.init(manager: node.sessions, configuration: configuration, ready: { node.isReady })
    }

    /// Creates a driver over a session manager.
    ///
    /// - Parameter ready: whether the node may serve sessions yet; until it returns true every
    ///   session operation answers 503.
    public init(manager: SessionManager, configuration: Configuration = Configuration(), ready: @escaping @Sendable () -> Bool = { true }) {
        self.manager = manager
        self.configuration = configuration
        self.ready = ready
    }

    public func createSession(_ data: SessionData, for request: Request) async throws -> Vapor.SessionID {
        try checkReady()
        var session = manager.newSession()
        if let idle = configuration.idleTimeout { session.maxInactiveInterval = idle }
        if let absolute = configuration.absoluteTimeout { session.absoluteExpiry = manager.now.addingTimeInterval(Self.seconds(absolute)) }
        let change = SessionDataChange(from: [:], to: data.snapshot, isPrincipalKey: configuration.isPrincipalKey)
        try apply(change, to: &session)
        try await commit(session, request)
        request.storage[LoadedSessionKey.self] = LoadedSession(session: session, data: data.snapshot)
        return Vapor.SessionID(string: session.id)
    }

    public func readSession(_ sessionID: Vapor.SessionID, for request: Request) async throws -> SessionData? {
        try checkReady()
        let found: CohortSessions.Session?
        do {
            found = try await manager.session(sessionID.string)
        } catch let error as CohortError {
            throw unavailable("session store unavailable: \(error.message)")
        }
        guard let session = found else { return nil }
        var data: [String: String] = [:]
        for name in session.attributeNames {
            // Values another kind of client stored (not strings) are not Vapor's: left untouched.
            if let value = try? session.attribute(name, as: String.self) { data[name] = value }
        }
        request.storage[LoadedSessionKey.self] = LoadedSession(session: session, data: data)
        return SessionData(initialData: data)
    }

    public func updateSession(_ sessionID: Vapor.SessionID, to data: SessionData, for request: Request) async throws -> Vapor.SessionID {
        try checkReady()
        let loaded: LoadedSession
        if let stored = request.storage[LoadedSessionKey.self], stored.session.id == sessionID.string {
            loaded = stored
        } else {
            // Not read through this driver in this request: read it now.
            guard try await readSession(sessionID, for: request) != nil, let stored = request.storage[LoadedSessionKey.self] else {
                throw Abort(.conflict, reason: "the session ended (invalidated or expired) during this request")
            }
            loaded = stored
        }
        var session = loaded.session
        let change = SessionDataChange(from: loaded.data, to: data.snapshot, isPrincipalKey: configuration.isPrincipalKey)
        try apply(change, to: &session)
        let rotate = request.storage[RotationKey.self] == true || (change.principalChanged && configuration.rotateOnPrincipalChange)
        if rotate { session.changeID(to: manager.configuration.idGenerator()) }
        let idle = Self.seconds(session.maxInactiveInterval)
        let refreshDue = idle > 0 && manager.now.timeIntervalSince(session.lastAccessedTime) > idle / 2
        if session.hasChanges || refreshDue {
            try await commit(session, request)
        }
        request.storage[RotationKey.self] = nil
        request.storage[LoadedSessionKey.self] = LoadedSession(session: session, data: data.snapshot)
        return Vapor.SessionID(string: session.id)
    }

    public func deleteSession(_ sessionID: Vapor.SessionID, for request: Request) async throws {
        try checkReady()
        do {
            try await manager.invalidate(sessionID.string)
        } catch let error as CohortError {
            throw unavailable("session not invalidated: \(error.message)")
        }
        request.storage[LoadedSessionKey.self] = nil
    }

    // MARK: - helpers

    private func apply(_ change: SessionDataChange, to session: inout CohortSessions.Session) throws {
        for (key, value) in change.set.sorted(by: { $0.key < $1.key }) {
            try session.setAttribute(key, value)
        }
        for key in change.removed.sorted() { session.removeAttribute(key) }
        if change.principalChanged || session.isNew { session.principal = change.principal }
    }

    private func commit(_ session: CohortSessions.Session, _ request: Request) async throws {
        do {
            try await manager.commit(session)
        } catch let error as CohortError where error.code == .notFound {
            throw Abort(.conflict, reason: "the session ended (invalidated or expired) during this request")
        } catch let error as CohortError {
            request.logger.warning("session not replicated: \(error.message)")
            throw unavailable("session not replicated: \(error.message)")
        }
    }

    private func checkReady() throws {
        guard ready() else { throw unavailable("this node is not serving sessions yet (state transfer, shutdown, or no quorum)") }
    }

    private func unavailable(_ reason: String) -> Abort {
        Abort(.serviceUnavailable, headers: ["Retry-After": "\(configuration.retryAfterSeconds)"], reason: reason)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// The session as the driver read it in this request, and the data it held then.
struct LoadedSession: Sendable {
    var session: CohortSessions.Session
    var data: [String: String]
}

struct LoadedSessionKey: StorageKey {
    typealias Value = LoadedSession
}

struct RotationKey: StorageKey {
    typealias Value = Bool
}
#endif
