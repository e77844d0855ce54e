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
    /// These routes share the app's HTTP server: `POST /cluster/leave` takes a node out of the
    /// cluster, so it is off unless `allowLeave` is true — enable it only where the app's port is
    /// not reachable by its users (loopback, a separate admin router, a network policy).
    public func addAdminRoutes<Context: RequestContext>(to router: Router<Context>, prometheus: PrometheusCollectorRegistry? = nil, allowLeave: Bool = false) {
        router.get("/cluster/members") { _, _ -> Response in
            try Self.json(self.membersResponse())
        }
        router.get("/cluster/sessions") { _, _ -> Response in
            try Self.json(SessionCountResponse(node: self.channel.localMember.name, sessions: await self.sessions.sessionIDs().count))
        }
        router.get("/cluster/status") { _, _ -> Response in
            try Self.json(await self.status())
        }
        if allowLeave {
            router.post("/cluster/leave") { _, _ -> Response in
                self.leave()
                var response = try Self.json(await self.status())
                response.status = .accepted
                return response
            }
        }
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
        if let prometheus {
            router.get("/metrics") { _, _ -> Response in
                var bytes: [UInt8] = []
                prometheus.emit(into: &bytes)
                return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
            }
        }
    }

    static func json<T: Encodable>(_ value: T) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(value)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: data)))
    }
}
