import CohortCore
import CohortHummingbird
import CohortSessions
import CohortTestKit
import Foundation
import Hummingbird
import Testing

/// The behaviours of Hummingbird's own persist tests (PersistTests: setGet, createGet,
/// doubleCreateFail, setTwice, expires, TTL, codable, invalidGetAs, remove, expireAndAdd), against
/// the cluster driver, plus the cluster-specific ones: every replica agrees.
@Suite("ClusterPersistDriver", .timeLimit(.minutes(2)))
struct PersistDriverTests {
    struct TestCodable: Codable, Sendable, Equatable {
        let buffer: String
    }

    /// Two nodes with a delta manager each, on one manual clock (its wall time starts on a whole
    /// second, so TTLs come out exact); the body gets one driver per node and the clock.
    func withDrivers(_ body: ([ClusterPersistDriver], ManualClock) async throws -> Void) async throws {
        try await withDriversAndTasks { drivers, clock, _ in try await body(drivers, clock) }
    }

    /// As ``withDrivers(_:)``; the body also gets the managers' `run()` tasks.
    func withDriversAndTasks(_ body: ([ClusterPersistDriver], ManualClock, [Task<Void, any Error>]) async throws -> Void) async throws {
        let network = InMemoryNetwork()
        let clock = ManualClock(wallTime: .seconds(1_800_000_000))
        let cluster = try await TestCluster.start(nodes: 2, transport: .inMemory(network))
        var managers: [SessionManager] = []
        var tasks: [Task<Void, any Error>] = []
        for node in cluster.nodes {
            var configuration = SessionManagerConfiguration(name: "persist")
            configuration.clock = clock
            configuration.settleTime = .zero
            let manager = try DeltaSessionManager(channel: node, configuration: configuration)
            managers.append(manager)
            tasks.append(Task { try await manager.run() })
        }
        for manager in managers {
            try await withDeadline(.seconds(60), "the managers to be ready") { try await manager.waitUntilReady() }
        }
        do {
            try await body(managers.map(ClusterPersistDriver.init(manager:)), clock, tasks)
        } catch {
            for manager in managers { manager.shutdown() }
            await cluster.stop()
            throw error
        }
        for manager in managers { manager.shutdown() }
        for task in tasks { _ = try? await task.value }
        await cluster.stop()
    }

    @Test func setGet() async throws {
        try await withDrivers { drivers, _ in
            try await drivers[0].set(key: "test", value: "Persist", expires: nil)
            #expect(try await drivers[0].get(key: "test", as: String.self) == "Persist")
            #expect(try await drivers[1].get(key: "test", as: String.self) == "Persist")
        }
    }

    @Test func createGetAndDoubleCreateFails() async throws {
        try await withDrivers { drivers, _ in
            try await drivers[0].create(key: "c", value: "first", expires: nil)
            #expect(try await drivers[1].get(key: "c", as: String.self) == "first")
            await #expect(throws: PersistError.duplicate) { try await drivers[0].create(key: "c", value: "second", expires: nil) }
            await #expect(throws: PersistError.duplicate) { try await drivers[1].create(key: "c", value: "third", expires: nil) }
            #expect(try await drivers[0].get(key: "c", as: String.self) == "first")
        }
    }

    @Test func setTwiceOverwritesEverywhere() async throws {
        try await withDrivers { drivers, _ in
            try await drivers[0].set(key: "t", value: "one", expires: nil)
            try await drivers[1].set(key: "t", value: "two", expires: nil)
            #expect(try await drivers[0].get(key: "t", as: String.self) == "two")
            #expect(try await drivers[1].get(key: "t", as: String.self) == "two")
        }
    }

    @Test func expiresAndExpiredKeyCanBeCreatedAgain() async throws {
        try await withDrivers { drivers, clock in
            try await drivers[0].create(key: "e", value: "short", expires: .milliseconds(50))
            #expect(try await drivers[1].get(key: "e", as: String.self) == "short")
            clock.advance(by: .milliseconds(49))
            #expect(try await drivers[1].get(key: "e", as: String.self) == "short", "expired before its deadline")
            clock.advance(by: .milliseconds(1))
            #expect(try await drivers[0].get(key: "e", as: String.self) == nil)
            #expect(try await drivers[1].get(key: "e", as: String.self) == nil)
            try await drivers[1].create(key: "e", value: "again", expires: nil)
            #expect(try await drivers[0].get(key: "e", as: String.self) == "again")
        }
    }

    @Test func ttlIsAnAbsoluteDeadlineAndNilKeepsIt() async throws {
        try await withDrivers { drivers, clock in
            try await drivers[0].set(key: "ttl", value: "v", expires: .seconds(60))
            let first = try #require(try await drivers[1].getWithTTL(key: "ttl", as: String.self))
            #expect(first.ttl == .seconds(60))
            // Let 10 of the 60 s pass, so that a deadline reset by the next set would show.
            clock.advance(by: .seconds(10))
            #expect(try await drivers[0].getWithTTL(key: "ttl", as: String.self)?.ttl == .seconds(50))
            // set with nil expiry keeps the existing deadline.
            try await drivers[1].set(key: "ttl", value: "w", expires: nil)
            let second = try #require(try await drivers[0].getWithTTL(key: "ttl", as: String.self))
            #expect(second.object == "w")
            #expect(second.ttl == .seconds(50), "a reset deadline would be 60 s")
            // A key without expiry has no TTL.
            try await drivers[0].set(key: "forever", value: 1, expires: nil)
            #expect(try await drivers[1].getWithTTL(key: "forever", as: Int.self)?.ttl == nil)
        }
    }

    @Test func codableValues() async throws {
        try await withDrivers { drivers, _ in
            try await drivers[0].set(key: "codable", value: TestCodable(buffer: "hello"), expires: nil)
            #expect(try await drivers[1].get(key: "codable", as: TestCodable.self) == TestCodable(buffer: "hello"))
        }
    }

    @Test func invalidGetAsThrowsInvalidConversion() async throws {
        try await withDrivers { drivers, _ in
            try await drivers[0].set(key: "int", value: TestCodable(buffer: "x"), expires: nil)
            await #expect(throws: PersistError.invalidConversion) { try await drivers[1].get(key: "int", as: Int.self) }
        }
    }

    @Test func removeEverywhere() async throws {
        try await withDrivers { drivers, _ in
            try await drivers[0].set(key: "r", value: "gone soon", expires: nil)
            try await drivers[1].remove(key: "r")
            #expect(try await drivers[0].get(key: "r", as: String.self) == nil)
            #expect(try await drivers[1].get(key: "r", as: String.self) == nil)
            // Removing a missing key is fine.
            try await drivers[0].remove(key: "never-there")
        }
    }

    @Test func missingKeyIsNil() async throws {
        try await withDrivers { drivers, _ in
            let value = try await drivers[0].get(key: "nope", as: String.self)
            #expect(value == nil)
            let withTTL = try await drivers[0].getWithTTL(key: "nope", as: String.self)
            #expect(withTTL == nil)
        }
    }

    /// `set` and `create` whose write concern is not met (node2's store is down while node2 is
    /// still a member) throw, naming node2, instead of returning as if the value were
    /// replicated; node1's copy keeps the value it had (synchronous mode applies a change only
    /// once its concern is met).
    @Test func writesWhoseConcernIsNotMetThrow() async throws {
        try await withDriversAndTasks { drivers, _, tasks in
            try await drivers[0].set(key: "k", value: "first", expires: nil)
            drivers[1].manager.shutdown()
            _ = try? await tasks[1].value
            let failed = await #expect(throws: ClusterPersistError.self) {
                try await drivers[0].set(key: "k", value: "second", expires: nil)
            }
            #expect(failed?.underlying.code == .partialFailure)
            #expect(failed?.underlying.message.contains("node2") == true)
            #expect(try await drivers[0].get(key: "k", as: String.self) == "first")
            let created = await #expect(throws: ClusterPersistError.self) {
                try await drivers[0].create(key: "new", value: "v", expires: nil)
            }
            #expect(created?.underlying.code == .partialFailure)
            #expect(try await drivers[0].get(key: "new", as: String.self) == nil)
        }
    }
}
