import Cohort
import CohortSessions
import Foundation
import Hummingbird

/// Where the ``ClusterSessionMiddleware`` keeps the request's session. A reference, so handlers
/// can change the session through the (value-typed) request context.
public final class ClusterSessionSlot: @unchecked Sendable {
    private let lock = NSLock()
    private var _session: Session?
    private var _loaded = false

    public init() {}

    /// The session of this request, if it has one.
    public var session: Session? {
        get { lock.withLock { _session } }
        set { lock.withLock { _session = newValue } }
    }

    /// The session, created if the request has none.
    public func require(_ manager: SessionManager) -> Session {
        lock.withLock {
            if let existing = _session { return existing }
            let fresh = manager.newSession()
            _session = fresh
            return fresh
        }
    }

    /// Gives the request's session a new id (against session fixation: call it when a user logs
    /// in or their rights change); the old id stops working when the request ends, the new one
    /// goes out in the cookie. Does nothing when the request has no session.
    public func rotateID(_ manager: SessionManager) {
        lock.withLock {
            guard var session = _session, !session.isNew else { return }
            session.changeID(to: manager.configuration.idGenerator())
            _session = session
        }
    }

    /// Changes the session (creating it if needed): the change is replicated when the request ends.
    public func update<T>(_ manager: SessionManager, _ body: (inout Session) throws -> T) rethrows -> T {
        var session = require(manager)
        let result = try body(&session)
        self.session = session
        return result
    }
}

/// A request context that carries a cluster session.
public protocol ClusterSessionRequestContext: RequestContext {
    /// The request's session slot.
    var clusterSession: ClusterSessionSlot { get }
}

/// A ready-made context with a cluster session.
public struct ClusterRequestContext: ClusterSessionRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let clusterSession = ClusterSessionSlot()

    public init(source: Source) {
        self.coreContext = .init(source: source)
    }
}

/// Replicates session changes once per request (Tomcat's ReplicationValve), with optional route
/// binding (Tomcat's jvmRoute + JvmRouteBinderValve).
///
/// - Before the handler: the session named by the cookie is loaded (from this node's copy, or
///   pulled from its owner by the manager).
/// - After the handler: if the session changed, its changes go out as **one** delta; in
///   synchronous mode the response waits until the replicas applied it. A request that changed
///   nothing sends nothing, except a periodic access refresh (at most one per half idle
///   interval) so the other copies do not expire a session that is only read.
/// - Errors: a session that cannot be read (no holder answered, the split-brain policy refuses
///   reads here) or a change whose write concern is not met answers **503 with `Retry-After`**;
///   the user is never given a new, empty session instead. In synchronous mode a failed change
///   is not applied on this node, so the client's retry applies it once.
/// - Route binding: the cookie value is `id.route`; a sticky balancer routes on the suffix. The
///   cookie is re-issued with this node's route only when the node it names is gone from the
///   cluster (failover), so its value stays the same for the life of the session while that
///   node lives — a balancer that hashes the cookie keeps sending the user to the same node.
public struct ClusterSessionMiddleware<Context: ClusterSessionRequestContext>: RouterMiddleware {
    /// The manager holding the sessions.
    public let manager: SessionManager
    /// The cookie name.
    public let cookieName: String
    /// This node's route, appended to the cookie value; nil disables route binding.
    public let route: String?
    /// Whether the cookie is sent only over HTTPS (`Secure`). Set it when clients reach the node
    /// over TLS (`cohort serve --behind-tls`, `COHORT_BEHIND_TLS=true`).
    public let secureCookie: Bool
    /// Whether a session whose principal changed during the request gets a new id (Tomcat's
    /// `changeSessionIdOnAuthentication`): on by default.
    public let rotateOnPrincipalChange: Bool
    /// Whether the node may serve sessions yet (state transfer done); requests before that get
    /// 503 with Retry-After instead of an empty session.
    public let ready: @Sendable () -> Bool
    /// Seconds the `Retry-After` header of a 503 asks the client to wait.
    public let retryAfter: Int

    public init(
        manager: SessionManager,
        cookieName: String = "COHORT_SESSION",
        route: String? = nil,
        secureCookie: Bool = false,
        retryAfter: Int = 1,
        rotateOnPrincipalChange: Bool = true,
        ready: @escaping @Sendable () -> Bool = { true }
    ) {
        self.manager = manager
        self.cookieName = cookieName
        self.route = route
        self.secureCookie = secureCookie
        self.retryAfter = max(0, retryAfter)
        self.rotateOnPrincipalChange = rotateOnPrincipalChange
        self.ready = ready
    }

    /// Whether a node with this route is in the cluster: this node, or a member whose metadata
    /// `route` (or, without one, whose name) is `route`.
    func routeIsAlive(_ route: String) -> Bool {
        if route == self.route { return true }
        let view = manager.channel.view
        return ([view.local] + view.members).contains { ($0.metadata["route"] ?? $0.name) == route }
    }

    func unavailable(_ what: String, _ error: CohortError) -> HTTPError {
        HTTPError(.serviceUnavailable, headers: [.retryAfter: "\(retryAfter)"], message: "\(what): \(error.message)")
    }

    /// Splits a cookie value into session id and route.
    public static func parse(_ value: String, routed: Bool) -> (id: String, route: String?) {
        guard routed, let dot = value.lastIndex(of: ".") else { return (value, nil) }
        return (String(value[..<dot]), String(value[value.index(after: dot)...]))
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard ready() else {
            throw HTTPError(.serviceUnavailable, headers: [.retryAfter: "1"], message: "this node is starting (session state transfer in progress)")
        }
        var cookieRoute: String?
        if let value = request.cookies[cookieName]?.value, !value.isEmpty {
            let (id, boundRoute) = Self.parse(value, routed: route != nil)
            cookieRoute = boundRoute
            do {
                context.clusterSession.session = try await manager.session(id)
            } catch let error as CohortError {
                // A cluster failure is an error, not "no session": the user must not be logged out silently.
                throw unavailable("session store unavailable", error)
            }
        }
        let loadedID = context.clusterSession.session?.id
        let loadedPrincipal = context.clusterSession.session?.principal
        var response = try await next(request, context)
        // A login (or logout, or another user) on an existing session: a new id, so an id
        // planted before the login (session fixation) or seen before it is worth nothing after.
        if rotateOnPrincipalChange, let current = context.clusterSession.session, !current.isNew,
           current.id == loadedID, current.principal != loadedPrincipal {
            context.clusterSession.rotateID(manager)
        }
        guard let session = context.clusterSession.session else { return response }

        if session.isInvalidated {
            do { try await manager.invalidate(session.id) } catch let error as CohortError {
                throw unavailable("session store unavailable", error)
            }
            response.setCookie(Cookie(name: cookieName, value: "", maxAge: 0, path: "/", secure: secureCookie, httpOnly: true))
            return response
        }
        let idle = Self.seconds(session.maxInactiveInterval)
        let refreshDue = idle > 0 && manager.now.timeIntervalSince(session.lastAccessedTime) > idle / 2
        if session.isNew || session.hasChanges || refreshDue {
            do {
                _ = try await manager.commit(session)
            } catch let error as CohortError {
                throw unavailable("session not replicated", error)
            }
        }
        // Re-bound only when the node the cookie names is gone (or it names none): a live
        // route is kept, so the cookie's value does not change under a hash balancer.
        let routeChanged = route != nil && cookieRoute != route && !(cookieRoute.map(routeIsAlive) ?? false)
        if session.isNew || session.id != loadedID || routeChanged {
            let value = route.map { "\(session.id).\($0)" } ?? session.id
            response.setCookie(Cookie(name: cookieName, value: value, path: "/", secure: secureCookie, httpOnly: true, sameSite: .lax))
        }
        return response
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
