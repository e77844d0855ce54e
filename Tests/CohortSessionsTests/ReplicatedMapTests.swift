import Cohort
import CohortSessions
import CohortTestKit
import Foundation
import NIOConcurrencyHelpers
import ServiceLifecycle
import Testing

/// The two maps, on plain channels of a ``TestCluster``.
@Suite("Replicated maps", .timeLimit(.minutes(2)))
struct ReplicatedMapTests {
    struct Profile: Codable, Sendable, Equatable {
        var name: String
        var age: Int
    }

    /// Starts a map of kind `M` on every node of a cluster, runs `body`, stops the maps.
    func withMaps<M: Service & Sendable>(
        _ count: Int,
        network: InMemoryNetwork = InMemoryNetwork(),
        make: (GroupChannel) throws -> M,
        ready: (M) async throws -> Void,
        _ body: (TestCluster, [M]) async throws -> Void
    ) async throws {
        let cluster = try await TestCluster.start(nodes: count, transport: .inMemory(network))
        let maps = try cluster.nodes.map(make)
        let tasks = maps.map { map in Task { try await map.run() } }
        do {
            for map in maps { try await ready(map) }
            try await body(cluster, maps)
        } catch {
            for task in tasks { task.cancel() }
            await cluster.stop()
            throw error
        }
        for task in tasks { task.cancel() }
        for task in tasks { _ = try? await task.value }
        await cluster.stop()
    }

    /// Maps on a manual clock (nothing here waits for time unless the test moves it).
    static func configuration(clock: ManualClock = ManualClock()) -> ReplicatedMapConfiguration {
        var configuration = ReplicatedMapConfiguration()
        configuration.settleTime = .zero
        configuration.clock = clock
        return configuration
    }

    @Test func allCopiesMapPutGetRemoveEntriesEvents() async throws {
        try await withMaps(3, make: { try ReplicatedMap<Profile>(name: "profiles", channel: $0, configuration: Self.configuration()) }, ready: { try await $0.waitUntilReady() }) { _, maps in
            let heard = NIOLockedValueBox<[MapEvent]>([])
            maps[2].addListener { event in heard.withLockedValue { $0.append(event) } }
            try await maps[0].put("ada", Profile(name: "Ada", age: 36))
            try await maps[1].put("alan", Profile(name: "Alan", age: 41))
            #expect(try await maps[2].get("ada") == Profile(name: "Ada", age: 36))
            #expect(try await maps[0].entries() == ["ada": Profile(name: "Ada", age: 36), "alan": Profile(name: "Alan", age: 41)])
            try await maps[2].put("ada", Profile(name: "Ada", age: 37))
            #expect(try await maps[1].get("ada")?.age == 37)
            try await maps[1].remove("alan")
            for map in maps { #expect(try await map.get("alan") == nil) }
            #expect(heard.withLockedValue { $0 } == [
                .put(key: "ada", origin: .replicated), .put(key: "alan", origin: .replicated),
                .put(key: "ada", origin: .local), .removed(key: "alan", reason: .removed, origin: .replicated),
            ])
        }
    }

    @Test func allCopiesMapExpiresKeys() async throws {
        let clock = ManualClock()
        let settings = Self.configuration(clock: clock)
        try await withMaps(2, make: { try ReplicatedMap<Int>(name: "ttl", channel: $0, configuration: settings) }, ready: { try await $0.waitUntilReady() }) { _, maps in
            try await maps[0].put("short", 1, expiresAt: maps[0].now.addingTimeInterval(30))
            try await maps[0].put("long", 2)
            #expect(try await maps[1].get("short") == 1)
            clock.advance(by: .seconds(29))
            #expect(try await maps[1].get("short") == 1, "expired before its deadline")
            // Both maps read the one clock's wall time: past the deadline, every copy is gone.
            clock.advance(by: .seconds(2))
            #expect(try await maps[0].get("short") == nil)
            #expect(try await maps[1].get("short") == nil)
            #expect(try await maps[1].get("long") == 2)
        }
    }

    @Test func primaryBackupMapFetchesOnMissAndSurvivesTheOwner() async throws {
        let network = InMemoryNetwork()
        try await withMaps(3, network: network, make: { try PrimaryBackupMap<String>(name: "carts", channel: $0, configuration: Self.configuration()) }, ready: { try await $0.waitUntilReady() }) { cluster, maps in
            try await maps[0].put("cart", "apples")
            let owner = cluster[0].localMember.id
            for map in maps { #expect(await map.holders(of: "cart")?.owner == owner) }
            #expect(try await maps[2].get("cart") == "apples")
            #expect(await maps[2].holders(of: "cart")?.owner == owner, "a read does not move ownership by default")
            #expect(try await maps[0].ownedEntries() == ["cart": "apples"])
            // A write elsewhere moves ownership there.
            try await maps[1].put("cart", "pears")
            #expect(await maps[0].holders(of: "cart")?.owner == cluster[1].localMember.id)
            #expect(try await maps[0].get("cart") == "pears")
            // The owner dies: a backup takes over.
            network.kill(cluster[1].localMember.endpoint)
            try await cluster[0].waitForMembers(1)
            try await cluster[2].waitForMembers(1)
            #expect(try await maps[2].get("cart") == "pears")
            #expect(try await maps[0].get("cart") == "pears")
            #expect(await maps[0].keys() == ["cart"])
            try await maps[2].remove("cart")
            #expect(try await maps[0].get("cart") == nil)
        }
    }

    @Test func allCopiesMapJoinerGetsEverything() async throws {
        let network = InMemoryNetwork()
        let cluster = try await TestCluster.start(nodes: 1, transport: .inMemory(network))
        let first = try ReplicatedMap<Int>(name: "numbers", channel: cluster[0], configuration: Self.configuration())
        let firstTask = Task { try await first.run() }
        try await first.waitUntilReady()
        for i in 0..<500 { try await first.put("k\(i)", i) }
        var configuration = ClusterConfiguration(name: "late", listen: Endpoint(host: "127.0.0.1", port: 0), members: [cluster[0].localMember.endpoint])
        configuration.sendTimeout = .seconds(5)
        let late = try TestCluster.makeChannel(configuration: configuration, transport: .inMemory(network))
        let lateTask = Task { try await late.run() }
        _ = try await late.waitUntilRunning()
        try await late.waitForMembers(1)
        let second = try ReplicatedMap<Int>(name: "numbers", channel: late, configuration: Self.configuration())
        let secondTask = Task { try await second.run() }
        try await second.waitUntilReady()
        #expect(await second.count == 500)
        #expect(try await second.get("k499") == 499)
        first.shutdown()
        second.shutdown()
        _ = try? await firstTask.value
        _ = try? await secondTask.value
        late.shutdown()
        _ = try? await lateTask.value
        await cluster.stop()
    }
}
