import Cohort
import CohortSessions
import CohortTestKit
import Foundation
import Logging
import ServiceLifecycle
import Testing

// The Swift block of the CohortSessions DocC tutorial, verbatim (see ``DocumentationSnippet``).

// snippet: Sources/CohortSessions/Docs.docc/GettingStarted.md begin
import Cohort
import CohortSessions

/// A node whose sessions are on every member (a delta manager) and acknowledged by them.
func makeNode(name: String, listen: String, members: [String]) throws -> ClusterNode {
    let cluster = ClusterConfiguration(
        name: name,
        listen: try Endpoint(parsing: listen),
        members: try members.map { try Endpoint(parsing: $0) }
    )
    var sessions = SessionManagerConfiguration(name: "web", mode: .synchronous)
    sessions.maxInactiveInterval = .seconds(1800)          // expires after 30 idle minutes
    return try ClusterNode(configuration: cluster, manager: .delta, sessions: sessions)
}

/// One request: continues the session `id` (or starts one) and counts the visit.
func visit(_ node: ClusterNode, session id: String?) async throws -> (session: String, visits: Int) {
    if let id, var session = try await node.sessions.session(id) {
        let visits = (try session.attribute("visits", as: Int.self) ?? 0) + 1
        try session.setAttribute("visits", visits)
        try await node.sessions.commit(session)            // one delta; returns once replicated
        return (session.id, visits)
    }
    let session = try await node.sessions.createSession { session in
        try session.setAttribute("visits", 1)
    }
    return (session.id, 1)
}
// snippet: Sources/CohortSessions/Docs.docc/GettingStarted.md end

@Suite("CohortSessions tutorial", .timeLimit(.minutes(2)))
struct DocumentationSnippetTests {
    @Test func theTutorialsCodeIsTheTestsCopy() throws {
        for difference in try DocumentationSnippet.differences(document: "Sources/CohortSessions/Docs.docc/GettingStarted.md") {
            Issue.record(Comment(rawValue: difference))
        }
    }

    /// The tutorial's two functions on two nodes over loopback TCP: a session started on one
    /// continues on the other.
    @Test func theTutorialRunsOnTwoNodes() async throws {
        let addresses = try ChildProcess.freeLoopbackPorts(2).map { "127.0.0.1:\($0)" }
        let first = try makeNode(name: "tour1", listen: addresses[0], members: [addresses[1]])
        let second = try makeNode(name: "tour2", listen: addresses[1], members: [addresses[0]])
        var quiet = Logger(label: "test")
        quiet.logLevel = .error
        let groups = [first, second].map { ServiceGroup(services: [$0], gracefulShutdownSignals: [], logger: quiet) }
        let tasks = groups.map { group in Task { try await group.run() } }
        do {
            for node in [first, second] {
                try await withDeadline(.seconds(60), "\(node.channel.localMember.name) to be ready and see its peer") {
                    try await node.waitUntilReady()
                    try await node.channel.waitForMembers(1)
                }
            }
            let started = try await visit(first, session: nil)
            #expect(started.visits == 1)
            let continued = try await visit(second, session: started.session)
            #expect(continued.session == started.session)
            #expect(continued.visits == 2)
            #expect(try await visit(first, session: started.session).visits == 3)
        } catch {
            for group in groups { await group.triggerGracefulShutdown() }
            throw error
        }
        for group in groups { await group.triggerGracefulShutdown() }
        for task in tasks { _ = try? await task.value }
    }
}
