import Cohort
import CohortSessions
import CohortTestKit
import Foundation
import Testing
@testable import CohortSessions

/// The guarantees of issue 14 broken on purpose on the in-memory network: partitions that heal,
/// members that fail a write, a minority side of a split, a node that stops gracefully.
@Suite("Guarantees under faults (in memory)", .timeLimit(.minutes(2)))
struct GuaranteeTests {
    func endpoint(_ cluster: SessionTestCluster, _ index: Int) -> Endpoint {
        cluster.nodes[index].channel.localMember.endpoint
    }

    /// Waits until `manager` has published a `created` event for every id in `ids` (or has them).
    func waitForSessions(_ manager: SessionManager, _ ids: [String]) async throws {
        let events = manager.events()
        var missing = Set(ids)
        for id in ids where try await manager.session(id) != nil { missing.remove(id) }
        if missing.isEmpty { return }
        let wanted = missing
        try await withDeadline(.seconds(60), "the sessions to reach \(manager.channel.configuration.name)") {
            var left = wanted
            for await event in events {
                if case .created(let id, _) = event { left.remove(id) }
                if left.isEmpty { return }
            }
        }
    }

    /// The reproduction: A and B (synchronous); B is cut off long enough to be removed;
    /// A answers five new sessions; the partition heals — B must end up holding all five
    /// (anti-entropy when a member returns), so that A can die without losing them.
    @Test func aHealedPartitionIsReconciled() async throws {
        try await SessionTestCluster.with(.delta, nodes: 2) { cluster in
            let network = try #require(cluster.network)
            let existing = try await cluster[0].createSession { try $0.setAttribute("count", 1) }.id
            network.cut(endpoint(cluster, 0), endpoint(cluster, 1))
            try await cluster.nodes[0].channel.waitForMembers(0)
            try await cluster.nodes[1].channel.waitForMembers(0)
            var ids: [String] = []
            for n in 1...5 {
                ids.append(try await cluster[0].createSession { try $0.setAttribute("count", n) }.id)
            }
            // B changed a session on its side meanwhile: A must get that too.
            try await cluster[1].withSession(existing) { try $0.setAttribute("count", 2) }
            network.heal(endpoint(cluster, 0), endpoint(cluster, 1))
            try await cluster.waitForViews()
            try await waitForSessions(cluster[1], ids)
            for (n, id) in ids.enumerated() {
                #expect(try await cluster[1].session(id)?.attribute("count", as: Int.self) == n + 1)
            }
            // A merged copy publishes no attribute events: wait until every node sent and
            // applied what it queued (the digest exchange and its pulls).
            try await cluster.settle()
            #expect(try await cluster[0].session(existing)?.attribute("count", as: Int.self) == 2, "A has B's change")
        }
    }

    /// A member that fails to apply a change (here: its store is not running) breaks the default
    /// write concern: the commit throws naming it, and the change is not on this node either, so
    /// the client's retry does not apply it twice. A lower concern accepts the write.
    @Test func anUnmetWriteConcernThrowsAndLeavesTheLocalCopyAlone() async throws {
        try await SessionTestCluster.with(.delta, nodes: 2) { cluster in
            let id = try await cluster[0].createSession { try $0.setAttribute("count", 1) }.id
            cluster.nodes[1].manager.shutdown()
            _ = try? await cluster.nodes[1].managerTask?.value
            var session = try #require(try await cluster[0].session(id))
            try session.setAttribute("count", 2)
            let error = try await #require(throws: CohortError.self) { try await cluster[0].commit(session) }
            #expect(error.code == .partialFailure)
            #expect(error.message.contains("node2"))
            #expect(try await cluster[0].session(id)?.attribute("count", as: Int.self) == 1)
            // The retry, computed again from the unchanged copy, sets the same value once.
            var retry = try #require(try await cluster[0].session(id))
            try retry.setAttribute("count", (try retry.attribute("count", as: Int.self) ?? 0) + 1)
            _ = try await cluster[0].commit(retry, concern: .replicas(0))
            #expect(try await cluster[0].session(id)?.attribute("count", as: Int.self) == 2)
            #expect(cluster[0].statistics.concernFailures == 1)
        }
    }

    /// Split-brain policy: with `denyWritesInMinority` a node cut off from the two others of a
    /// three-node cluster refuses writes (reads stay); the majority side keeps writing. With
    /// `denyAllInMinority` reads are refused too.
    @Test func theMinorityRefusesWritesUnderDenyWrites() async throws {
        try await SessionTestCluster.with(.delta, nodes: 3, configure: { index, settings in
            settings.whenSplit = index == 2 ? .denyWritesInMinority : .allowReadsAndWrites
            settings.clusterSize = 3
        }) { cluster in
            let network = try #require(cluster.network)
            let id = try await cluster[0].createSession { try $0.setAttribute("count", 1) }.id
            network.cut(endpoint(cluster, 2), endpoint(cluster, 0))
            network.cut(endpoint(cluster, 2), endpoint(cluster, 1))
            try await cluster.nodes[2].channel.waitForMembers(0)
            try await cluster.nodes[0].channel.waitForMembers(1)
            // Reads stay on the minority.
            #expect(try await cluster[2].session(id)?.attribute("count", as: Int.self) == 1)
            let error = try await #require(throws: CohortError.self) {
                try await cluster[2].withSession(id) { try $0.setAttribute("count", 99) }
            }
            #expect(error.code == .noQuorum)
            #expect(try await cluster[2].session(id)?.attribute("count", as: Int.self) == 1)
            // The majority (2 of 3) writes.
            try await cluster[0].withSession(id) { try $0.setAttribute("count", 2) }
            #expect(try await cluster[1].session(id)?.attribute("count", as: Int.self) == 2)
        }
    }

    @Test func denyAllRefusesReadsInTheMinority() async throws {
        try await SessionTestCluster.with(.delta, nodes: 2, configure: { _, settings in
            settings.whenSplit = .denyAllInMinority
            settings.clusterSize = 3
        }) { cluster in
            let id = try await cluster[0].createSession { try $0.setAttribute("count", 1) }.id
            await cluster.kill(1)
            try await cluster.nodes[0].channel.waitForMembers(0)
            let error = try await #require(throws: CohortError.self) { try await cluster[0].session(id) }
            #expect(error.code == .noQuorum)
            #expect(error.message.contains("1 of 3"))
        }
    }

    /// Hand-off on a graceful stop (backup manager): the leaving node moves ownership and copies
    /// of every session it owns or backs; once it is gone (even killed, with no goodbye at all)
    /// every session is readable with its last value, none promoted from a stale copy.
    @Test func handOffMovesEverySessionBeforeTheNodeGoes() async throws {
        try await SessionTestCluster.with(.backup, nodes: 3) { cluster in
            var ids: [String] = []
            for n in 1...12 {
                ids.append(try await cluster[0].createSession { try $0.setAttribute("count", n) }.id)
            }
            let left = await cluster[0].handOff()
            #expect(left == 0)
            let replicator = try #require(cluster[0].backend as? PrimaryBackupReplicator<SessionRecord>)
            for id in ids {
                let location = try #require(await replicator.location(of: id))
                #expect(!location.holders.contains(cluster.nodes[0].channel.localMember.id), "node1 still holds \(id)")
            }
            await cluster.kill(0)
            try await cluster.waitForViews()
            for (n, id) in ids.enumerated() {
                for node in 1...2 {
                    #expect(try await cluster[node].session(id)?.attribute("count", as: Int.self) == n + 1)
                }
            }
            #expect(cluster[1].statistics.lost == 0 && cluster[2].statistics.lost == 0)
        }
    }

    /// A read of a session held elsewhere whose holders do not answer is an error, not "no such
    /// session" (the middleware then answers 503 instead of starting an empty session).
    @Test func aFetchNobodyAnswersIsAnErrorNotANewSession() async throws {
        try await SessionTestCluster.with(.backup, nodes: 3, configure: { _, settings in
            settings.backupCount = 1
        }) { cluster in
            // A session node1 owns and node2 or node3 backs; read it on the node that does not hold it.
            let id = try await cluster[0].createSession { try $0.setAttribute("count", 1) }.id
            let replicator = try #require(cluster[0].backend as? PrimaryBackupReplicator<SessionRecord>)
            let location = try #require(await replicator.location(of: id))
            let ids = cluster.nodes.map(\.channel.localMember.id)
            let reader = try #require((0..<3).first { !location.holders.contains(ids[$0]) })
            let network = try #require(cluster.network)
            for holder in location.holders {
                let index = try #require(ids.firstIndex(of: holder))
                network.cut(endpoint(cluster, reader), endpoint(cluster, index), bothWays: false)
            }
            let error = try await #require(throws: CohortError.self) { try await cluster[reader].session(id) }
            #expect(error.code == .timeout)
            #expect(error.message.contains("no holder"))
        }
    }
}
