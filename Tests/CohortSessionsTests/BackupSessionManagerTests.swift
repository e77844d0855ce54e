import Cohort
import CohortSessions
import CohortTestKit
import Foundation
import Testing
@testable import CohortSessions

/// Where a session lives, as a node sees it.
func holders(_ manager: SessionManager, _ id: String) async -> Location? {
    await (manager.backend as? PrimaryBackupReplicator<SessionRecord>)?.location(of: id)
}

/// The backup manager (owner + backups) over the in-memory network.
@Suite("BackupSessionManager in memory", .timeLimit(.minutes(2)))
struct BackupSessionManagerTests {
    @Test func requestOnAnyNodeFindsTheSessionAndTakesOwnership() async throws {
        try await SessionTestCluster.with(.backup, nodes: 3) { cluster in
            let id = try await cluster[0].createSession { try $0.setAttribute("user", "ada") }.id
            let owner = cluster.nodes[0].channel.localMember.id
            for node in 0...2 { #expect(await holders(cluster[node], id)?.owner == owner, "node \(node + 1) knows the owner") }
            // Node 3 serves a request: it fetches the session and becomes the owner.
            try await cluster[2].withSession(id) { session in
                #expect(try session.attribute("user", as: String.self) == "ada")
                try session.setAttribute("visits", 1)
            }
            let newOwner = cluster.nodes[2].channel.localMember.id
            try await cluster.settle()
            for node in 0...2 { #expect(await holders(cluster[node], id)?.owner == newOwner, "node \(node + 1) knows the new owner") }
            // Node 1 reads it back (a fetch from node 3).
            #expect(try await cluster[0].session(id)?.attribute("visits", as: Int.self) == 1)
            #expect(cluster[2].statistics.active + cluster[0].statistics.active == 1)
        }
    }

    @Test func killThePrimaryTheBackupTakesOverAndRebacksUp() async throws {
        try await SessionTestCluster.with(.backup, nodes: 3, configure: { _, c in c.takeOwnershipOnAccess = false }) { cluster in
            let id = try await cluster[0].createSession { try $0.setAttribute("n", 1) }.id
            for n in 2...20 { try await cluster[0].withSession(id) { try $0.setAttribute("n", n) } }
            let location = try #require(await holders(cluster[0], id))
            #expect(location.backups.count == 1)
            await cluster.kill(0)
            try await cluster.waitForViews()
            let survivors = [1, 2]
            let heir = try #require(survivors.first { cluster.nodes[$0].channel.localMember.id == location.backups[0] })
            let other = survivors.first { $0 != heir }!
            try await cluster.settle()
            let now = await holders(cluster[heir], id)
            #expect(now?.owner == cluster.nodes[heir].channel.localMember.id, "the backup became the owner")
            #expect(now?.backups == [cluster.nodes[other].channel.localMember.id], "with a new backup on the other node")
            for node in survivors {
                #expect(try await cluster[node].session(id)?.attribute("n", as: Int.self) == 20, "an acknowledged write was lost (node \(node + 1))")
            }
            // The re-made backup is real: the new owner can die too.
            await cluster.kill(heir)
            try await cluster.waitForViews()
            #expect(try await cluster[other].session(id)?.attribute("n", as: Int.self) == 20)
        }
    }

    @Test func killTheBackupTheOwnerMakesANewOne() async throws {
        try await SessionTestCluster.with(.backup, nodes: 3) { cluster in
            let id = try await cluster[0].createSession { try $0.setAttribute("n", 7) }.id
            let location = try #require(await holders(cluster[0], id))
            let backup = try #require([1, 2].first { cluster.nodes[$0].channel.localMember.id == location.backups.first })
            let spare = [1, 2].first { $0 != backup }!
            await cluster.kill(backup)
            try await cluster.waitForViews()
            let spareID = cluster.nodes[spare].channel.localMember.id
            try await cluster.settle()
            #expect(await holders(cluster[0], id)?.backups == [spareID], "the owner put a backup on the spare node")
            #expect(await (cluster[spare].backend as? PrimaryBackupReplicator<SessionRecord>)?.state.copies[id] != nil, "the spare node holds the copy")
            await cluster.kill(0)
            try await cluster.waitForViews()
            #expect(try await cluster[spare].session(id)?.attribute("n", as: Int.self) == 7)
        }
    }

    @Test func invalidateAndExpiryRemoveEverywhere() async throws {
        try await SessionTestCluster.with(.backup, nodes: 3, configure: { _, c in c.maxInactiveInterval = .seconds(60) }) { cluster in
            let gone = try await cluster[0].createSession().id
            let idle = try await cluster[1].createSession().id
            try await cluster[2].withSession(gone) { $0.invalidate() }
            for node in 0...2 {
                #expect(try await cluster[node].session(gone) == nil)
                #expect(await holders(cluster[node], gone) == nil)
            }
            try await cluster.advance(by: .seconds(59))
            for node in 0...2 { #expect(await holders(cluster[node], idle) != nil, "expired early on node \(node + 1)") }
            try await cluster.advance(by: .seconds(2))
            for node in 0...2 { #expect(await holders(cluster[node], idle) == nil, "node \(node + 1) still knows the expired session") }
            #expect(cluster[1].statistics.expired == 1)
            #expect(try await cluster[0].session(idle) == nil)
        }
    }

    @Test func aJoiningNodeLearnsWhereSessionsLive() async throws {
        try await SessionTestCluster.with(.backup, nodes: 2) { cluster in
            var ids: [String] = []
            for i in 0..<40 { ids.append(try await cluster[i % 2].createSession { try $0.setAttribute("i", i) }.id) }
            let joiner = try await cluster.addNode()
            try await cluster[joiner].waitUntilReady()
            for (i, id) in ids.enumerated() {
                #expect(try await cluster[joiner].session(id)?.attribute("i", as: Int.self) == i)
            }
        }
    }

    @Test func twoBackupsSurviveTwoKills() async throws {
        try await SessionTestCluster.with(.backup, nodes: 4, configure: { _, c in c.backupCount = 2; c.takeOwnershipOnAccess = false }) { cluster in
            let id = try await cluster[0].createSession { try $0.setAttribute("k", "v") }.id
            let location = try #require(await holders(cluster[0], id))
            #expect(location.backups.count == 2)
            let spare = try #require((1...3).first { !location.backups.contains(cluster.nodes[$0].channel.localMember.id) })
            await cluster.kill(0)
            let firstBackup = try #require((1...3).first { cluster.nodes[$0].channel.localMember.id == location.backups[0] })
            await cluster.kill(firstBackup)
            try await cluster.waitForViews()
            #expect(try await cluster[spare].session(id)?.attribute("k", as: String.self) == "v")
        }
    }
}
