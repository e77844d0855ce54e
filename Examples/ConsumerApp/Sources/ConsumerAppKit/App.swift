import Cohort
import CohortHummingbird
import CohortSessions
import Hummingbird
import HummingbirdAuth
import Logging

/// What the app keeps in a session.
public struct Visits: Codable, Sendable, Equatable {
    public var count: Int
}

/// The request context: hummingbird-auth's, with a `Visits` session.
public typealias AppContext = BasicSessionRequestContext<Visits, String>

/// One replica of the app: an HTTP server and a Cohort node.
public struct Replica: Sendable {
    /// The Cohort node (channel + session manager), a service of the application.
    public let node: ClusterNode
    /// The HTTP side.
    public let application: Application<RouterResponder<AppContext>>

    /// Builds a replica.
    ///
    /// - Parameters:
    ///   - cluster: the node's cluster settings (name, listen address, members…).
    ///   - http: where the HTTP server listens.
    ///   - onServerRunning: called with the HTTP port once the server listens.
    public init(cluster: ClusterConfiguration, http: BindAddress, logger: Logger, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) throws {
        let node = try ClusterNode(
            configuration: cluster,
            manager: .delta,
            sessions: SessionManagerConfiguration(name: "consumer-app", mode: .synchronous),
            logger: logger
        )
        let router = Router(context: AppContext.self)
        // The one-line change: hummingbird-auth's session middleware over Cohort's driver.
        router.add(middleware: SessionMiddleware(storage: ClusterPersistDriver(manager: node.sessions)))
        router.get("/visits") { _, context -> String in
            var visits = context.sessions.session ?? Visits(count: 0)
            visits.count += 1
            if context.sessions.session == nil {
                context.sessions.createSession(visits)
            } else {
                _ = context.sessions.updateSession(visits)
            }
            return "\(visits.count)"
        }
        node.addAdminRoutes(to: router)
        self.node = node
        self.application = Application(
            router: router,
            configuration: ApplicationConfiguration(address: http, serverName: cluster.name),
            services: [node],
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }
}
