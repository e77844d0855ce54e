#if Vapor
import Cohort
import CohortSessions
import CohortVapor
import Vapor

/// The sample's routes: a counter in the session, a login that rotates the session id, a logout.
enum SampleRoutes {
    struct Counter: Content {
        var count: Int
        var node: String
        var session: String
        var user: String?
    }

    static func add(to routes: any RoutesBuilder, node: ClusterNode) {
        let name = node.channel.localMember.name
        // Increments the session's counter.
        routes.get("counter") { request async throws -> Counter in
            let count = (request.session.data["count"].flatMap(Int.init) ?? 0) + 1
            request.session.data["count"] = String(count)
            return Counter(count: count, node: name, session: request.session.id?.string ?? "", user: request.session.data["_UserSession"])
        }
        // Reads the counter without changing it (nothing is replicated).
        routes.get("counter", "current") { request async throws -> Counter in
            let count = request.hasSession ? request.session.data["count"].flatMap(Int.init) ?? 0 : 0
            return Counter(count: count, node: name, session: request.session.id?.string ?? "", user: request.session.data["_UserSession"])
        }
        // Logs a user in: the principal key changes, so the session gets a new id.
        routes.post("login") { request async throws -> Counter in
            let user = try request.query.get(String.self, at: "user")
            request.session.data["_UserSession"] = user
            let count = request.session.data["count"].flatMap(Int.init) ?? 0
            return Counter(count: count, node: name, session: request.session.id?.string ?? "", user: user)
        }
        // Ends the session everywhere.
        routes.post("logout") { request async throws -> HTTPStatus in
            request.session.destroy()
            return .noContent
        }
    }
}
#endif
