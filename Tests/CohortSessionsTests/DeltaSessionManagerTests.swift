import Cohort
import CohortSessions
import CohortTestKit
import Foundation
import NIOConcurrencyHelpers
import Testing

/// The delta manager (a copy everywhere) over the in-memory network.
@Suite("DeltaSessionManager in memory", .timeLimit(.minutes(2)))
struct DeltaSessionManagerTests {
    @Test func createOnAReadOnBAndC() async throws {
        try await SessionTestCluster.with(.delta, nodes: 3) { cluster in
            let created = try await cluster[0].createSession { session in
                try session.setAttribute("user", "ada")
                session.principal = "ada"
            }
            for node in 1...2 {
                let session = try #require(try await cluster[node].session(created.id), "node \(node + 1)")
                #expect(try session.attribute("user", as: String.self) == "ada")
                #expect(session.principal == "ada")
                #expect(session.version == 1)
            }
        }
    }

    @Test func changeOnBReadOnA() async throws {
        try await SessionTestCluster.with(.delta, nodes: 3) { cluster in
            let id = try await cluster[0].createSession { try $0.setAttribute("count", 1) }.id
            try await cluster[1].withSession(id) { session in
                let count: Int = try session.attribute("count") ?? 0
                try session.setAttribute("count", count + 1)
                session.removeAttribute("missing")
            }
            let onA = try #require(try await cluster[0].session(id))
            #expect(try onA.attribute("count", as: Int.self) == 2)
            #expect(onA.version == 2)
            let onC = try #require(try await cluster[2].session(id))
            #expect(onC.version == 2)
        }
    }

    @Test func invalidateEverywhere() async throws {
        try await SessionTestCluster.with(.delta, nodes: 3) { cluster in
            let id = try await cluster[0].createSession().id
            let heard = EventLog()
            cluster[1].addListener { heard.append($0) }
            try await cluster[2].withSession(id) { $0.invalidate() }
            for node in 0...2 {
                #expect(try await cluster[node].session(id) == nil, "node \(node + 1)")
            }
            #expect(heard.events.contains(.destroyed(id: id, reason: .removed, origin: .replicated)))
            // A change of an invalidated session fails instead of bringing it back.
            await #expect(throws: CohortError.self) { try await cluster[0].withSession(id) { try $0.setAttribute("x", 1) } }
        }
    }

    @Test func idleExpiryOnEveryNodeWithoutMessages() async throws {
        try await SessionTestCluster.with(.delta, nodes: 3, configure: { _, c in c.maxInactiveInterval = .seconds(1800) }) { cluster in
            let id = try await cluster[0].createSession().id
            try await cluster.advance(by: .seconds(600))
            try await cluster[1].withSession(id) { _ in }  // an access on B: the only message
            try await cluster.advance(by: .seconds(1500))  // 35 min after creation, 25 after the access
            for node in 0...2 { #expect(try await cluster[node].session(id) != nil, "node \(node + 1) expired too early") }
            #expect(cluster.managers.allSatisfy { $0.statistics.expired == 0 })
            let sentBefore = cluster.managers.map(\.statistics.replicatedChanges)
            try await cluster.advance(by: .seconds(301))  // 30 min and 1 s after the access: every sweep has run
            for node in 0...2 {
                #expect(cluster[node].statistics.expired == 1, "node \(node + 1) did not expire its copy")
                #expect(cluster[node].statistics.active == 0)
                #expect(try await cluster[node].session(id) == nil)
            }
            #expect(cluster.managers.map(\.statistics.replicatedChanges) == sentBefore, "expiry must not send messages")
        }
    }

    @Test func sessionIDChangeAndAbsoluteExpiry() async throws {
        try await SessionTestCluster.with(.delta, nodes: 2) { cluster in
            let id = try await cluster[0].createSession { try $0.setAttribute("cart", ["apple"]) }.id
            let deadline = cluster.clock.date.addingTimeInterval(60)
            try await cluster[0].withSession(id) { session in
                session.changeID(to: "renamed")
                session.absoluteExpiry = deadline
            }
            #expect(try await cluster[1].session(id) == nil)
            let moved = try #require(try await cluster[1].session("renamed"))
            #expect(try moved.attribute("cart", as: [String].self) == ["apple"])
            #expect(moved.absoluteExpiry == deadline)
            try await cluster.advance(by: .seconds(59))
            #expect(cluster.managers.allSatisfy { $0.statistics.active == 1 }, "expired before the absolute deadline")
            try await cluster.advance(by: .seconds(2))
            for node in 0...1 {
                #expect(cluster[node].statistics.active == 0, "node \(node + 1) kept a session past its absolute deadline")
                #expect(try await cluster[node].session("renamed") == nil)
            }
        }
    }

    @Test func killTheCreatorSessionSurvives() async throws {
        try await SessionTestCluster.with(.delta, nodes: 3) { cluster in
            let id = try await cluster[0].createSession().id
            for value in 1...50 {
                let report = try await cluster[0].commit(try edited(cluster[0], id) { try $0.setAttribute("n", value) })
                #expect(report.allSucceeded)
            }
            await cluster.kill(0)
            for node in 1...2 {
                let session = try #require(try await cluster[node].session(id))
                #expect(try session.attribute("n", as: Int.self) == 50, "an acknowledged write was lost on node \(node + 1)")
            }
            try await cluster.waitForViews()
            try await cluster[2].withSession(id) { try $0.setAttribute("n", 51) }
            #expect(try await cluster[1].session(id)?.attribute("n", as: Int.self) == 51)
        }
    }

    @Test func asynchronousModeReturnsAtOnceAndConverges() async throws {
        try await SessionTestCluster.with(.delta, nodes: 2, configure: { _, c in c.mode = .asynchronous }) { cluster in
            let onB = cluster[1].events()
            let id = try await cluster[0].createSession { try $0.setAttribute("k", "v") }.id
            try await withDeadline(.seconds(60), "the session to reach node 2") {
                for await event in onB where event == .created(id: id, origin: .replicated) { return }
            }
            #expect(try await cluster[1].session(id)?.attribute("k", as: String.self) == "v")
        }
    }

    @Test func listenersSayWhetherLocalOrReplicated() async throws {
        try await SessionTestCluster.with(.delta, nodes: 2) { cluster in
            let onA = EventLog()
            let onB = EventLog()
            cluster[0].addListener { onA.append($0) }
            cluster[1].addListener { onB.append($0) }
            let id = try await cluster[0].createSession { try $0.setAttribute("a", 1) }.id
            try await cluster[1].withSession(id) { $0.removeAttribute("a") }
            #expect(onA.events == [
                .created(id: id, origin: .local), .attributeChanged(id: id, name: "a", removed: false, origin: .local),
                .attributeChanged(id: id, name: "a", removed: true, origin: .replicated),
            ])
            #expect(onB.events == [
                .created(id: id, origin: .replicated), .attributeChanged(id: id, name: "a", removed: false, origin: .replicated),
                .attributeChanged(id: id, name: "a", removed: true, origin: .local),
            ])
        }
    }

    @Test func keyValueAPI() async throws {
        try await SessionTestCluster.with(.delta, nodes: 2) { cluster in
            try await cluster[0].create(key: "k", value: ["a": 1], expiresAt: nil)
            await #expect(throws: CohortError.self) { try await cluster[1].create(key: "k", value: ["a": 2]) }
            #expect(try await cluster[1].get(key: "k", as: [String: Int].self) == ["a": 1])
            try await cluster[1].set(key: "k", value: ["a": 3], expiresAt: cluster[1].now.addingTimeInterval(100))
            let (value, ttl) = try #require(try await cluster[0].getWithTTL(key: "k", as: [String: Int].self))
            #expect(value == ["a": 3])
            // Both nodes read the wall time of the one manual clock: the TTL is exact.
            #expect(ttl == .seconds(100))
            try await cluster.advance(by: .seconds(40))
            #expect(try await cluster[1].getWithTTL(key: "k", as: [String: Int].self)?.ttl == .seconds(60))
            try await cluster[0].set(key: "k", value: ["a": 4])  // keeps the deadline
            #expect(try await cluster[1].getWithTTL(key: "k", as: [String: Int].self)?.ttl != nil)
            try await cluster[0].remove(key: "k")
            #expect(try await cluster[1].get(key: "k", as: [String: Int].self) == nil)
            try await cluster[1].create(key: "k", value: ["a": 5])  // a removed key can be created again
            #expect(try await cluster[0].get(key: "k", as: [String: Int].self) == ["a": 5])
        }
    }

    @Test func keyExpiredButNotSweptCanBeCreatedAgainElsewhere() async throws {
        try await SessionTestCluster.with(.delta, nodes: 2, configure: { _, c in c.expiryCheckInterval = .seconds(3600) }) { cluster in
            try await cluster[0].create(key: "e", value: "short", expiresAt: cluster.clock.date.addingTimeInterval(10))
            try await cluster.advance(by: .seconds(11))  // expired on both nodes; no sweep has run (the next is in an hour)
            #expect(cluster.managers.allSatisfy { $0.statistics.expired == 0 })
            #expect(try await cluster[0].get(key: "e", as: String.self) == nil)
            #expect(try await cluster[1].get(key: "e", as: String.self) == nil)
            try await cluster[1].create(key: "e", value: "again")
            #expect(try await cluster[0].get(key: "e", as: String.self) == "again")
            #expect(try await cluster[0].getWithTTL(key: "e", as: String.self)?.ttl == nil, "the old deadline must not survive")
        }
    }

    /// Reads a session and applies `change` to it, for a later commit.
    func edited(_ manager: SessionManager, _ id: String, _ change: (inout Session) throws -> Void) async throws -> Session {
        var session = try #require(try await manager.session(id))
        try change(&session)
        return session
    }
}

/// Collects events from a listener.
final class EventLog: Sendable {
    private let box = NIOLockedValueBox<[SessionEvent]>([])
    func append(_ event: SessionEvent) { box.withLockedValue { $0.append(event) } }
    var events: [SessionEvent] { box.withLockedValue { $0 } }
    var count: Int { box.withLockedValue { $0.count } }
}
