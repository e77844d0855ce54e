import Cohort
import CohortCore
import CohortSessions
import Foundation
import Hummingbird
import NIOCore
import NIOFoundationEssentialsCompat
import Prometheus

/// A member as `GET /cluster/members` reports it.
public struct MemberStatus: Codable, Sendable, Equatable {
    public var name: String
    public var address: String
    /// `self`, `alive` or `suspected`.
    public var state: String
    /// When this node first saw the member (ISO 8601).
    public var since: String
    public var id: String
}

/// The body of `GET /cluster/members`.
public struct MembersResponse: Codable, Sendable {
    public var node: String
    public var members: [MemberStatus]
}

/// The body of `GET /cluster/sessions`.
public struct SessionCountResponse: Codable, Sendable {
    public var node: String
    public var sessions: Int
}

extension ClusterNode {
    /// Mounts the admin endpoints any app can serve:
    ///
    /// | path | answer |
    /// |---|---|
    /// | `GET /cluster/members` | JSON: this node and every member with address, state and since |
    /// | `GET /cluster/sessions` | JSON: the number of sessions this node holds |
    /// | `GET /alive` | 200 while the process runs |
    /// | `GET /ready` | 200 once state transfer is done, 503 before, while shutting down and while not in quorum |
    /// | `GET /metrics` | Prometheus text, when a registry is given |
    ///
    /// - Parameters:
    ///   - prometheus: the registry `/metrics` serves; nil serves no `/metrics`.
    ///   - bearerToken: when set, `/cluster/members`, `/cluster/sessions` and `/metrics` answer
    ///     401 unless the request carries `Authorization: Bearer <token>` (`/alive` and `/ready`
    ///     stay open for probes). They reveal member ids and addresses, session counts and
    ///     metrics: protect them, or serve them on an address of their own
    ///     (``addClusterRoutes(to:prometheus:bearerToken:)`` on a second router).
    public func addAdminRoutes<Context: RequestContext>(to router: Router<Context>, prometheus: PrometheusCollectorRegistry? = nil, bearerToken: String? = nil) {
        addHealthRoutes(to: router)
        addClusterRoutes(to: router, prometheus: prometheus, bearerToken: bearerToken)
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

    /// Mounts `GET /cluster/members`, `GET /cluster/sessions` and (with a registry)
    /// `GET /metrics`, behind `bearerToken` when one is given.
    public func addClusterRoutes<Context: RequestContext>(to router: Router<Context>, prometheus: PrometheusCollectorRegistry? = nil, bearerToken: String? = nil) {
        let token = bearerToken.flatMap { $0.isEmpty ? nil : $0 }
        router.get("/cluster/members") { request, _ -> Response in
            try Self.authorize(request, token: token)
            return try Self.json(self.membersResponse())
        }
        router.get("/cluster/sessions") { request, _ -> Response in
            try Self.authorize(request, token: token)
            return try Self.json(SessionCountResponse(node: self.channel.localMember.name, sessions: await self.sessions.sessionIDs().count))
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

    /// The members as `GET /cluster/members` reports them.
    public func membersResponse() -> MembersResponse {
        let view = channel.view
        let iso = ISO8601DateFormatter()
        var list = [MemberStatus(name: view.local.name, address: view.local.endpoint.description, state: "self", since: iso.string(from: started), id: view.local.id.description)]
        for member in view.members {
            list.append(MemberStatus(
                name: member.name,
                address: member.endpoint.description,
                state: view.suspected.contains(member.id) ? "suspected" : "alive",
                since: iso.string(from: memberSince(member.id) ?? started),
                id: member.id.description
            ))
        }
        return MembersResponse(node: view.local.name, members: list)
    }

    static func json<T: Encodable>(_ value: T) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(value)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: data)))
    }
}
