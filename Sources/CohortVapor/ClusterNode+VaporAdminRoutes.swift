#if Vapor
import Cohort
import CohortSessions
import Foundation
import Vapor

extension ClusterNode {
    /// Mounts the admin endpoints on a Vapor app or route group (the same as Hummingbird's):
    ///
    /// | path | answer |
    /// |---|---|
    /// | `GET /cluster/members` | JSON: this node and every member with address, state and since |
    /// | `GET /cluster/sessions` | JSON: the number of sessions this node holds |
    /// | `GET /cluster/status` | JSON: ready, state, quorum, state transfer (`NodeStatusResponse`) |
    /// | `POST /cluster/leave` | only with `allowLeave`: 202 and the status; the node hands off its sessions and leaves |
    /// | `GET /alive` | 200 while the process runs |
    /// | `GET /ready` | 200 once state transfer is done, 503 before, while shutting down and while not in quorum |
    /// | `GET /metrics` | the text `metrics` returns (Prometheus exposition), when given |
    ///
    /// Mount them outside the session routes (no ``ClusterReadinessMiddleware`` in front): they
    /// must answer while the node is not ready. `POST /cluster/leave` takes the node out of the
    /// cluster, so it is off unless `allowLeave` is true — enable it only where the port is not
    /// reachable by the app's users.
    ///
    /// - Parameters:
    ///   - routes: the app (`app`) or a route group.
    ///   - metrics: the Prometheus text of `GET /metrics` (for example a swift-prometheus
    ///     registry's `emitToString()`), or nil for no such route.
    ///   - allowLeave: whether to mount `POST /cluster/leave`.
    public func addAdminRoutes(to routes: any RoutesBuilder, metrics: (@Sendable () -> String)? = nil, allowLeave: Bool = false) {
        routes.get("cluster", "members") { _ async throws -> Response in
            try Self.json(self.membersResponse())
        }
        routes.get("cluster", "sessions") { _ async throws -> Response in
            try Self.json(SessionCountResponse(node: self.channel.localMember.name, sessions: await self.sessions.sessionIDs().count))
        }
        routes.get("cluster", "status") { _ async throws -> Response in
            try Self.json(await self.status())
        }
        if allowLeave {
            routes.post("cluster", "leave") { _ async throws -> Response in
                self.leave()
                return try Self.json(await self.status(), status: .accepted)
            }
        }
        routes.get("alive") { _ -> Response in
            Self.text("alive\n", status: .ok)
        }
        routes.get("ready") { _ -> Response in
            let ready = self.isReady
            let quorum = self.channel.quorum
            return Self.text(ready ? "ready\n" : quorum.inQuorum ? "not ready\n" : "not ready: \(quorum)\n", status: ready ? .ok : .serviceUnavailable)
        }
        if let metrics {
            routes.get("metrics") { _ -> Response in
                var headers = HTTPHeaders()
                headers.contentType = HTTPMediaType(type: "text", subType: "plain", parameters: ["version": "0.0.4"])
                return Response(status: .ok, headers: headers, body: .init(string: metrics()))
            }
        }
    }

    static func json<T: Encodable>(_ value: T, status: HTTPResponseStatus = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var headers = HTTPHeaders()
        headers.contentType = .json
        return Response(status: status, headers: headers, body: .init(data: try encoder.encode(value)))
    }

    static func text(_ text: String, status: HTTPResponseStatus) -> Response {
        var headers = HTTPHeaders()
        headers.contentType = .plainText
        return Response(status: status, headers: headers, body: .init(string: text))
    }
}
#endif
