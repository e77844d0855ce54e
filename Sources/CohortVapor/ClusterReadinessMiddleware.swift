#if Vapor
import CohortSessions
import Vapor

/// Answers 503 with `Retry-After` while the node is not ready (state transfer under way,
/// shutting down or leaving, out of quorum), so that no route behind it runs against a node
/// that does not hold the sessions yet. Put it in front of the session middleware of the routes
/// that use sessions — not in front of the admin routes, which must answer while not ready:
///
/// ```swift
/// let web = app.grouped(ClusterReadinessMiddleware(node: node), app.sessions.middleware)
/// ```
public struct ClusterReadinessMiddleware: AsyncMiddleware {
    /// Whether the node serves.
    public let ready: @Sendable () -> Bool
    /// Seconds in the `Retry-After` header.
    public let retryAfterSeconds: Int

    /// Ready when the node is (``ClusterNode/isReady``).
    public init(node: ClusterNode, retryAfterSeconds: Int = 1) {
        self.init(retryAfterSeconds: retryAfterSeconds, ready: { node.isReady })
    }

    /// Ready when `ready` says so.
    public init(retryAfterSeconds: Int = 1, ready: @escaping @Sendable () -> Bool) {
        self.ready = ready
        self.retryAfterSeconds = retryAfterSeconds
    }

    public func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard ready() else {
            throw Abort(.serviceUnavailable, headers: ["Retry-After": "\(retryAfterSeconds)"], reason: "this node is not serving sessions yet (state transfer, shutdown, or no quorum)")
        }
        return try await next.respond(to: request)
    }
}
#endif
