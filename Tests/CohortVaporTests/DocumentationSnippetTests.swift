#if Vapor
import Cohort
import CohortCodecBinary
import CohortDiscoveryStatic
import CohortSessions
import CohortTestKit
import CohortVapor
import Foundation
import Logging
import NIOCore
import Testing
import Vapor

// The Swift block of the CohortVapor DocC tutorial, verbatim (see ``DocumentationSnippet``).

// snippet: Sources/CohortVapor/Docs.docc/GettingStarted.md begin
import CohortSessions
import CohortVapor
import Vapor

func configure(_ app: Application, node: ClusterNode) {
    app.lifecycle.use(ClusterNodeLifecycle(node: node))     // start on boot, hand off on shutdown
    app.sessions.use { _ in
        CohortSessionDriver(node: node, configuration: .init(absoluteTimeout: .seconds(8 * 3600)))
    }
    node.addAdminRoutes(to: app)                            // /cluster/*, /alive, /ready
    let web = app.grouped(ClusterReadinessMiddleware(node: node), app.sessions.middleware)
    web.get("visits") { request async throws -> String in
        let visits = (request.session.data["visits"].flatMap(Int.init) ?? 0) + 1
        request.session.data["visits"] = String(visits)     // only this key is replicated
        return "\(visits)"
    }
}
// snippet: Sources/CohortVapor/Docs.docc/GettingStarted.md end

@Suite("CohortVapor tutorial", .timeLimit(.minutes(2)))
struct DocumentationSnippetTests {
    @Test func theTutorialsCodeIsTheTestsCopy() throws {
        for difference in try DocumentationSnippet.differences(document: "Sources/CohortVapor/Docs.docc/GettingStarted.md") {
            Issue.record(Comment(rawValue: difference))
        }
    }

    /// The tutorial's `configure` on two Vapor apps: a session started on one continues on the other.
    @Test func theTutorialsAppContinuesTheSessionOnTheOtherNode() async throws {
        let network = InMemoryNetwork()
        let clock = ManualClock()
        var quiet = Logger(label: "test")
        quiet.logLevel = .error
        var apps: [Application] = []
        var ports: [Int] = []
        var endpoints: [Endpoint] = []
        do {
            for i in 0..<2 {
                let configuration = ClusterConfiguration(name: "visits\(i + 1)", listen: Endpoint(host: "127.0.0.1", port: 0), members: endpoints)
                let channel = GroupChannel(
                    configuration: configuration, transport: network.makeTransport(), codec: BinaryCodec(),
                    discovery: StaticDiscovery(endpoints: endpoints, interval: .milliseconds(100)), logger: quiet
                )
                var sessions = SessionManagerConfiguration(name: "web")
                sessions.clock = clock
                sessions.settleTime = .zero
                sessions.logger = quiet
                let node = ClusterNode(channel: channel, sessions: try DeltaSessionManager(channel: channel, configuration: sessions))
                let app = try await Application.make(.testing, logger: quiet)
                apps.append(app)
                configure(app, node: node)
                try await withDeadline(.seconds(60), "visits\(i + 1) to boot") { try await app.asyncBoot() }
                try await app.server.start(address: .hostname("127.0.0.1", port: 0))
                ports.append(try #require(app.http.server.shared.localAddress?.port))
                endpoints.append(channel.localMember.endpoint)
                try await channel.waitForMembers(i)
            }
            let browser = Browser()
            #expect(try await browser.get(ports[0], "/visits").body == "1")
            #expect(try await browser.get(ports[1], "/visits").body == "2", "the session continues on the other node")
            #expect(try await browser.get(ports[0], "/visits").body == "3")
        } catch {
            for app in apps { try? await app.asyncShutdown() }
            throw error
        }
        for app in apps { try await app.asyncShutdown() }
    }
}
#endif
