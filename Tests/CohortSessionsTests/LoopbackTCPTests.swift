import Cohort
import CohortSessions
import CohortTestKit
import Foundation
import Testing
@testable import CohortSessions

/// Both managers with three nodes over real TCP on 127.0.0.1 (ports picked by the kernel). The
/// managers' time is the cluster's manual clock, as in memory; the sockets' is real, so waits on
/// them are bounded generously and nothing here is timed.
@Suite("Session managers over loopback TCP", .timeLimit(.minutes(3)))
struct LoopbackTCPTests {
    @Test func deltaManagerLifecycleOverTCP() async throws {
        try await SessionTestCluster.with(.delta, nodes: 3, tcp: true, configure: { _, c in c.maxInactiveInterval = .seconds(600) }) { cluster in
            // Create on A, read on B and C.
            let id = try await cluster[0].createSession { session in
                try session.setAttribute("cart", ["apple"])
                session.principal = "ada"
            }.id
            for node in 1...2 {
                let session = try #require(try await cluster[node].session(id))
                #expect(try session.attribute("cart", as: [String].self) == ["apple"])
                #expect(session.principal == "ada")
            }
            // Change on B, read on A.
            try await cluster[1].withSession(id) { try $0.setAttribute("cart", ["apple", "pear"]) }
            #expect(try await cluster[0].session(id)?.attribute("cart", as: [String].self) == ["apple", "pear"])
            // Invalidate on C.
            let doomed = try await cluster[0].createSession().id
            try await cluster[2].withSession(doomed) { $0.invalidate() }
            for node in 0...2 { #expect(try await cluster[node].session(doomed) == nil) }
            // Idle expiry everywhere.
            let idle = try await cluster[1].createSession().id
            try await cluster.advance(by: .seconds(300))
            try await cluster[0].withSession(id) { _ in }  // keeps `id` alive
            try await cluster.advance(by: .seconds(301))  // every node's sweep has run
            #expect(cluster.managers.allSatisfy { $0.statistics.expired == 1 }, "\(cluster.managers.map(\.statistics.expired))")
            for node in 0...2 {
                #expect(try await cluster[node].session(idle) == nil)
                #expect(try await cluster[node].session(id) != nil)
            }
            // Kill the creator: every acknowledged write survives.
            for n in 1...30 { try await cluster[0].withSession(id) { try $0.setAttribute("n", n) } }
            await cluster.kill(0)
            for node in 1...2 {
                #expect(try await cluster[node].session(id)?.attribute("n", as: Int.self) == 30, "node \(node + 1) lost an acknowledged write")
            }
            try await cluster.waitForViews()
            try await cluster[1].withSession(id) { try $0.setAttribute("n", 31) }
            #expect(try await cluster[2].session(id)?.attribute("n", as: Int.self) == 31)
        }
    }

    @Test func deltaManagerJoinDuringWritesOverTCP() async throws {
        try await SessionTestCluster.with(.delta, nodes: 2, tcp: true, configure: { _, c in c.transferBatchSize = 50 }) { cluster in
            var ids: [String] = []
            for i in 0..<300 { ids.append(try await cluster[i % 2].createSession { try $0.setAttribute("n", 0) }.id) }
            let all = ids
            let writer = Task {
                for round in 1...300 {
                    try await cluster[round % 2].withSession(all[round % all.count]) { try $0.setAttribute("n", round) }
                }
            }
            let joiner = try await cluster.addNode()
            try await cluster[joiner].waitUntilReady()
            try await writer.value
            let reference = try await StateTransferTests.contents(cluster[0])
            #expect(try await StateTransferTests.contents(cluster[joiner]) == reference)
            #expect(reference.count == 300)
        }
    }

    @Test func backupManagerFailoverOverTCP() async throws {
        try await SessionTestCluster.with(.backup, nodes: 3, tcp: true, configure: { _, c in c.takeOwnershipOnAccess = false }) { cluster in
            // Create on A, read on B and C (fetched from A).
            let id = try await cluster[0].createSession { try $0.setAttribute("n", 0) }.id
            for node in 1...2 { #expect(try await cluster[node].session(id)?.attribute("n", as: Int.self) == 0) }
            for n in 1...20 { try await cluster[0].withSession(id) { try $0.setAttribute("n", n) } }
            let location = try #require(await holders(cluster[0], id))
            let backup = try #require([1, 2].first { cluster.nodes[$0].channel.localMember.id == location.backups.first })
            let other = [1, 2].first { $0 != backup }!
            // Kill the primary: the backup takes over and re-backs up onto the third node.
            await cluster.kill(0)
            try await cluster.waitForViews()
            #expect(try await cluster[other].session(id)?.attribute("n", as: Int.self) == 20)
            let otherID = cluster.nodes[other].channel.localMember.id
            try await cluster.settle()
            #expect(await holders(cluster[backup], id)?.backups == [otherID], "a new backup on the third node")
            try await cluster[backup].withSession(id) { try $0.setAttribute("n", 21) }
            // Kill the new owner: the re-made backup still has everything.
            await cluster.kill(backup)
            try await cluster.waitForViews()
            #expect(try await cluster[other].session(id)?.attribute("n", as: Int.self) == 21)
        }
    }

    @Test func backupManagerKillBackupOverTCP() async throws {
        try await SessionTestCluster.with(.backup, nodes: 3, tcp: true) { cluster in
            let id = try await cluster[0].createSession { try $0.setAttribute("n", 5) }.id
            let location = try #require(await holders(cluster[0], id))
            let backup = try #require([1, 2].first { cluster.nodes[$0].channel.localMember.id == location.backups.first })
            let spare = [1, 2].first { $0 != backup }!
            await cluster.kill(backup)
            try await cluster.waitForViews()
            let spareID = cluster.nodes[spare].channel.localMember.id
            try await cluster.settle()
            #expect(await holders(cluster[0], id)?.backups == [spareID], "the owner re-backed-up onto the spare node")
            #expect(try await cluster[spare].session(id)?.attribute("n", as: Int.self) == 5)
        }
    }
}
