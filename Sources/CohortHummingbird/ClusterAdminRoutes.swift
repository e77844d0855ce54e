import Cohort
import CohortCore
import CohortSessions
import Foundation
import Hummingbird
import NIOCore
import NIOFoundationEssentialsCompat
import Prometheus

extension ClusterNode {
    /// Mounts the admin endpoints any app can serve:
    ///
    /// | path | answer |
    /// |---|---|
    /// | `GET /cluster/members` | JSON: this node and every member with address, state and since |
    /// | `GET /cluster/sessions` | JSON: the number of sessions this node holds |
    /// | `GET /cluster/status` | JSON: ready, state, quorum, state transfer (``NodeStatusResponse``) |
    /// | `POST /cluster/leave` | only with `allowLeave`: 202 and the status; the node hands off its sessions and leaves (``ClusterNode/leave()``) |
    /// | `GET /alive` | 200 while the process runs |
    /// | `GET /ready` | 200 once state transfer is done, 503 before, while shutting down and while not in quorum |
    /// | `GET /metrics` | Prometheus text, when a registry is given |
    ///
    /// `POST /cluster/leave` takes a node out of the cluster, so it is off unless `allowLeave` is
    /// true — enable it only where the port is not reachable by the app's users (loopback, a
    /// separate admin router or port, a network policy) or behind `bearerToken`.
    ///
    /// - Parameters:
    ///   - prometheus: the registry `/metrics` serves; nil serves no `/metrics`.
    ///   - allowLeave: whether to mount `POST /cluster/leave`.
    ///   - bearerToken: when set, every `/cluster/…` route and `/metrics` answer 401 unless the
    ///     request carries `Authorization: Bearer <token>` (`/alive` and `/ready` stay open for
    ///     probes). They reveal member ids and addresses, session counts and metrics: protect
    ///     them, or serve them on an address of their own
    ///     (``addClusterRoutes(to:prometheus:allowLeave:bearerToken:)`` on a second router).
    public func addAdminRoutes<Context: RequestContext>(to router: Router<Context>, prometheus: PrometheusCollectorRegistry? = nil, allowLeave: Bool = false, bearerToken: String? = nil) {
        addHealthRoutes(to: router)
        addClusterRoutes(to: router, prometheus: prometheus, allowLeave: allowLeave, bearerToken: bearerToken)
    }

    /// Mounts `GET /alive` and `GET /ready` (for load balancers and Kubernetes probes).
    public func addHealthRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/alive") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "alive\n")))
        }
        router.get("/ready") { _, _ -> Response in
            let ready = self.isReady
            let quorum = self.channel.quorum
            let text = ready ? "ready\n" : quorum.inQuorum ? "not ready\n" : "not ready: \(quorum)\n"
            return Response(
                status: ready ? .ok : .serviceUnavailable,
                headers: [.contentType: "text/plain"],
                body: .init(byteBuffer: ByteBuffer(string: text))
            )
        }
    }

    /// Mounts `GET /cluster/members`, `GET /cluster/sessions`, `GET /cluster/status`, with
    /// `allowLeave` `POST /cluster/leave`, and (with a registry) `GET /metrics`, behind
    /// `bearerToken` when one is given.
    public func addClusterRoutes<Context: RequestContext>(to router: Router<Context>, prometheus: PrometheusCollectorRegistry? = nil, allowLeave: Bool = false, bearerToken: String? = nil) {
        let token = bearerToken.flatMap { $0.isEmpty ? nil : $0 }
        router.get("/cluster/members") { request, _ -> Response in
            try Self.authorize(request, token: token)
            return try Self.json(self.membersResponse())
        }
        router.get("/cluster/sessions") { request, _ -> Response in
            try Self.authorize(request, token: token)
            return try Self.json(SessionCountResponse(node: self.channel.localMember.name, sessions: await self.sessions.sessionIDs().count))
        }
        router.get("/cluster/status") { request, _ -> Response in
            try Self.authorize(request, token: token)
            return try Self.json(await self.status())
        }
        if allowLeave {
            router.post("/cluster/leave") { request, _ -> Response in
                try Self.authorize(request, token: token)
                self.leave()
                var response = try Self.json(await self.status())
                response.status = .accepted
                return response
            }
        }
        if let prometheus {
            router.get("/metrics") { request, _ -> Response in
                try Self.authorize(request, token: token)
                var bytes: [UInt8] = []
                prometheus.emit(into: &bytes)
                return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
            }
        }
    }

    /// Refuses a request without `Authorization: Bearer <token>` (compared in constant time).
    static func authorize(_ request: Request, token: String?) throws {
        guard let token else { return }
        let given = Array((request.headers[.authorization] ?? "").utf8)
        let wanted = Array("Bearer \(token)".utf8)
        var difference = UInt8(given.count == wanted.count ? 0 : 1)
        for i in 0..<wanted.count { difference |= wanted[i] ^ (i < given.count ? given[i] : 0) }
        guard difference == 0 else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "this endpoint needs the admin token (Authorization: Bearer <token>)")
        }
    }

    static func json<T: Encodable>(_ value: T) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(value)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: data)))
    }
}
