#if Vapor
import Cohort
import CohortSessions
import CohortVapor
import Foundation
import Vapor

/// The cluster settings come from the environment (`COHORT_NAME`, `COHORT_LISTEN`,
/// `COHORT_MEMBERS`, every `COHORT_*` of `ClusterConfiguration.load`) or a JSON file named by
/// `COHORT_CONFIG`; Vapor's own flags (`serve --hostname --port`) place the HTTP server.
func configure(_ app: Application) throws {
    let environment = ProcessInfo.processInfo.environment
    let cluster = try ClusterConfiguration.load(file: environment["COHORT_CONFIG"], base: ClusterConfiguration(name: "vapor1"))
    var sessions = SessionManagerConfiguration(name: "vapor-sample", mode: .synchronous)
    sessions.maxInactiveInterval = .seconds(1800)
    let node = try ClusterNode(configuration: cluster, manager: .delta, sessions: sessions, gracePeriod: .seconds(10))

    app.lifecycle.use(ClusterNodeLifecycle(node: node))
    app.sessions.use { _ in
        CohortSessionDriver(node: node, configuration: .init(absoluteTimeout: .seconds(8 * 3600)))
    }
    node.addAdminRoutes(to: app)
    SampleRoutes.add(to: app.grouped(ClusterReadinessMiddleware(node: node), app.sessions.middleware), node: node)
}
#endif
