import Cohort
import CohortSessions
import CohortTestKit
import Testing
@testable import CohortSessions

/// A node that stops answering and comes back (a freeze, as SIGSTOP looks to its peers), and
/// holders that receive a fetch but never answer it: the issue-14 guarantees on the in-memory
/// network, with the fetch deadline on the managers' ``ManualClock``.
@Suite("Freeze and fetch deadline (in memory)", .timeLimit(.minutes(2)))
struct FreezeAndDeadlineTests {
    func endpoint(_ cluster: SessionTestCluster, _ index: Int) -> Endpoint {
        cluster.nodes[index].channel.localMember.endpoint
    }

    /// The reproduction as a freeze: B stops answering long enough for A to remove it; A
    /// answers five new sessions and changes a session B holds; B comes back. B ends up with all
    /// five, and an increment B makes on the shared session counts from A's value: either B
    /// caught up first, or its change, computed from its stale copy, is refused as a conflict
    /// (the caller gets an error, B pulls A's copy) and the retry counts from A's value. An
    /// increment acknowledged over A's newer value would leave the count at 2, not 3.
    @Test func aFrozenNodeCatchesUpAndNeverAcknowledgesAStaleChange() async throws {
        try await SessionTestCluster.with(.delta, nodes: 2) { cluster in
            let network = try #require(cluster.network)
            let shared = try await cluster[0].createSession { try $0.setAttribute("count", 1) }.id
            #expect(try await cluster[1].session(shared)?.attribute("count", as: Int.self) == 1)
            network.cut(endpoint(cluster, 0), endpoint(cluster, 1))
            try await cluster.nodes[0].channel.waitForMembers(0)
            var ids: [String] = []
            for n in 1...5 {
                ids.append(try await cluster[0].createSession { try $0.setAttribute("count", n) }.id)
            }
            try await cluster[0].withSession(shared) { try $0.setAttribute("count", 2) }
            network.heal(endpoint(cluster, 0), endpoint(cluster, 1))
            try await cluster.waitForViews()

            var acknowledged: Int?
            var refusals = 0
            for _ in 0..<20 where acknowledged == nil {
                do {
                    acknowledged = try await cluster[1].withSession(shared) { session -> Int in
                        let next = (try session.attribute("count", as: Int.self) ?? 0) + 1
                        try session.setAttribute("count", next)
                        return next
                    }
                } catch let error as CohortError where error.code == .partialFailure {
                    #expect(error.message.contains("conflict"), "\(error)")
                    refusals += 1
                    // B pulls A's copy after a refusal (or anti-entropy brought it meanwhile);
                    // a merged copy publishes no attribute events, so wait until every node
                    // sent and applied what it queued.
                    try await cluster.settle()
                }
            }
            #expect(acknowledged == 3, "refusals: \(refusals)")
            #expect(try await cluster[0].session(shared)?.attribute("count", as: Int.self) == 3)
            try await cluster.settle()
            for (n, id) in ids.enumerated() {
                #expect(try await cluster[1].session(id)?.attribute("count", as: Int.self) == n + 1, "session \(n + 1) of 5 on node2")
            }
            // Now A can go: B holds everything acknowledged.
            await cluster.kill(0)
            try await cluster.nodes[1].channel.waitForMembers(0)
            #expect(try await cluster[1].session(shared)?.attribute("count", as: Int.self) == 3)
            #expect(Set(await cluster[1].sessionIDs()).isSuperset(of: ids))
        }
    }

    /// Holders that receive a fetch but whose answers never arrive: each is given
    /// ``SessionManagerConfiguration/fetchTimeout`` (on the managers' clock), then the read throws
    /// ``CohortError/Code/timeout`` — it never returns "no such session".
    @Test func aFetchNobodyAnswersEndsAtTheDeadlineWithAnError() async throws {
        try await SessionTestCluster.with(.backup, nodes: 3, configure: { _, settings in
            settings.backupCount = 1
            settings.fetchTimeout = .seconds(2)
        }) { cluster in
            let id = try await cluster[0].createSession { try $0.setAttribute("count", 1) }.id
            let replicator = try #require(cluster[0].backend as? PrimaryBackupReplicator<SessionRecord>)
            let location = try #require(await replicator.location(of: id))
            let ids = cluster.nodes.map(\.channel.localMember.id)
            let reader = try #require((0..<3).first { !location.holders.contains(ids[$0]) })
            let network = try #require(cluster.network)
            // Requests reach the holders; their answers do not come back.
            for holder in location.holders {
                let index = try #require(ids.firstIndex(of: holder))
                network.cut(endpoint(cluster, index), endpoint(cluster, reader), bothWays: false)
            }
            let manager = cluster[reader]
            let read = Task { try await manager.session(id) }
            // The managers' timer loops sleep on the clock, plus one fetch deadline at a time.
            let timers = cluster.running.count
            for _ in location.holders {
                do {
                    try await cluster.clock.waitForSleepers(timers + 1, timeout: .seconds(30))
                } catch {
                    break  // the fetch gave up on the holders already (they left the view)
                }
                _ = cluster.clock.advance(by: .seconds(2))
            }
            let error = await #expect(throws: CohortError.self) { try await read.value }
            #expect(error?.code == .timeout)
            #expect(error?.message.contains("no holder") == true)
            // Each holder was given the deadline (the answers never came), not refused at once.
            #expect(error?.message.contains("no answer within") == true, "\(String(describing: error))")
        }
    }

    /// Periodic anti-entropy, with no membership change at all: node1 holds a change node2 never
    /// received (handed to node1's store as if node2 had sent it, so node2's copy never saw it —
    /// a lost message). Once `antiEntropyInterval` passed on the managers' clock, a digest
    /// exchange brings it to node2.
    @Test func periodicAntiEntropyRepairsAChangeAMemberMissed() async throws {
        try await SessionTestCluster.with(.delta, nodes: 2, configure: { _, settings in
            settings.antiEntropyInterval = .seconds(10)
        }) { cluster in
            let id = try await cluster[0].createSession { try $0.setAttribute("count", 1) }.id
            #expect(try await cluster[1].session(id)?.attribute("count", as: Int.self) == 1)
            let replicator = try #require(cluster[0].backend as? AllCopiesReplicator<SessionRecord>)
            let record = try #require(await replicator.entry(id))
            var delta = SessionDelta(sessionID: id, stamp: Stamp(counter: record.version + 1, origin: 99))
            delta.attributes["count"] = try replicator.codec.encode(5)
            let body = try replicator.codec.encodeValue(delta, what: "a test change")
            let update = ReplicaUpdate(store: replicator.settings.name, key: id, body: body)
            try await replicator.receive(update, from: cluster.nodes[1].channel.localMember)
            #expect(try await cluster[0].session(id)?.attribute("count", as: Int.self) == 5)
            #expect(try await cluster[1].session(id)?.attribute("count", as: Int.self) == 1)
            // Less than an interval: nothing moves.
            try await cluster.advance(by: .seconds(1))
            #expect(try await cluster[1].session(id)?.attribute("count", as: Int.self) == 1)
            for _ in 0..<3 { try await cluster.advance(by: .seconds(11)) }
            #expect(try await cluster[1].session(id)?.attribute("count", as: Int.self) == 5)
        }
    }
}
