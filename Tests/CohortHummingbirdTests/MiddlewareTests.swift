import CohortHummingbird
import CohortSessions
import CohortTestKit
import Foundation
import NIOConcurrencyHelpers
import Testing

/// The session id in a `Set-Cookie` value `NAME=id.route; …`.
func sessionID(_ setCookie: String) -> String {
    let pair = setCookie.split(separator: ";").first.map(String.init) ?? ""
    let value = pair.split(separator: "=", maxSplits: 1).last.map(String.init) ?? ""
    return value.split(separator: ".").first.map(String.init) ?? ""
}

@Suite("ClusterSessionMiddleware and ClusterNode", .timeLimit(.minutes(2)), .serialized)
struct MiddlewareTests {
    @Test func countContinuesOnEveryNode() async throws {
        let cluster = try await HTTPCluster.start(count: 3)
        let browser = Browser()
        #expect(try await browser.get(cluster[0].port, "/counter").body == "1")
        #expect(try await browser.get(cluster[1].port, "/counter").body == "2")
        #expect(try await browser.get(cluster[2].port, "/counter").body == "3")
        #expect(try await browser.get(cluster[0].port, "/peek").body == "3")
        await cluster.stop()
    }

    @Test func requestsThatChangeNothingSendNothing() async throws {
        let cluster = try await HTTPCluster.start(count: 2)
        let browser = Browser()
        _ = try await browser.get(cluster[0].port, "/counter")
        let before = cluster[0].counter.count
        for _ in 0..<5 { #expect(try await browser.get(cluster[0].port, "/peek").status == 200) }
        #expect(cluster[0].counter.count == before, "reads replicated something")
        _ = try await browser.get(cluster[0].port, "/counter")
        #expect(cluster[0].counter.count == before + 1, "one change must be exactly one replication message")
        await cluster.stop()
    }

    /// The cookie's value stays the same while the node it names lives, so a balancer that
    /// hashes the cookie keeps the user on one node; it is re-bound only once that node is gone.
    @Test func routeIsRewrittenOnlyAfterTheBoundNodeIsGone() async throws {
        let cluster = try await HTTPCluster.start(count: 2)
        let browser = Browser()
        let first = try await browser.get(cluster[0].port, "/counter")
        let cookie = try #require(first.setCookie)
        #expect(cookie.contains(".node1"))
        // Same node again: no new cookie.
        #expect(try await browser.get(cluster[0].port, "/counter").setCookie == nil)
        // The balancer sends us to node2 while node1 lives (a hash balancer): no new cookie.
        let elsewhere = try await browser.get(cluster[1].port, "/counter")
        #expect(elsewhere.body == "3")
        #expect(elsewhere.setCookie == nil)
        // node1 fails: the route is rewritten on node2.
        cluster.kill(0)
        try await cluster[1].node.channel.waitForMembers(0)
        let moved = try await browser.get(cluster[1].port, "/counter")
        #expect(moved.body == "4")
        let rewritten = try #require(moved.setCookie)
        #expect(rewritten.contains(".node2"))
        #expect(sessionID(rewritten) == sessionID(cookie))
        await cluster.stop()
    }

    /// A change whose write concern is not met (node2's session store is down while node2 is
    /// still a member) is a 503 with Retry-After, not a 200; once node2 is back the retry
    /// succeeds and the count went up by one, not two.
    @Test func anUnreplicatedChangeIsA503WithRetryAfter() async throws {
        let cluster = try await HTTPCluster.start(count: 2)
        let browser = Browser()
        #expect(try await browser.get(cluster[0].port, "/counter").body == "1")
        // node2's store stops (its event stream ends once it is unregistered); node2 stays a member.
        let stopped = cluster[1].node.sessions.events()
        cluster[1].node.sessions.shutdown()
        try await withDeadline(.seconds(60), "node2's session store to stop") { for await _ in stopped {} }
        let failed = try await browser.get(cluster[0].port, "/counter")
        #expect(failed.status == 503)
        #expect(failed.retryAfter == "1")
        #expect(failed.body.contains("node2"))
        // Without node2 in the cluster any more, the retry is acknowledged and counts once.
        cluster.kill(1)
        try await cluster[0].node.channel.waitForMembers(0)
        #expect(try await browser.get(cluster[0].port, "/counter").body == "2")
        await cluster.stop()
    }

    @Test func invalidationExpiresTheCookieAndTheSessionEverywhere() async throws {
        let cluster = try await HTTPCluster.start(count: 2)
        let browser = Browser()
        _ = try await browser.get(cluster[0].port, "/counter")
        let logout = try await browser.get(cluster[1].port, "/logout")
        #expect(logout.setCookie?.contains("Max-Age=0") == true)
        browser.cookie = browser.cookie  // keep the old cookie: the session must be gone anyway
        #expect(try await browser.get(cluster[0].port, "/peek").body == "0")
        await cluster.stop()
    }

    @Test func notReadyUntilStartupIsDoneThenServesTransferredSessions() async throws {
        // A first node with no ready member waits its settle time before it declares itself
        // ready: until then /ready and the session routes answer 503, /alive 200. (The settle
        // time is on the managers' manual clock: it passes when the test says so.)
        let cluster = HTTPCluster()
        let first = try await cluster.add(index: 0, settle: .seconds(2))
        let early = try await Browser().get(first.port, "/ready")
        #expect(early.status == 503)
        #expect(try await Browser().get(first.port, "/counter").status == 503)
        #expect(try await Browser().get(first.port, "/alive").status == 200)
        try await cluster.clock.waitForSleepers(1)  // the manager's settle timer is armed
        cluster.clock.advance(by: .milliseconds(1999))
        try await cluster.clock.waitForSleepers(1)
        #expect(!first.node.isReady, "ready before the settle time")
        cluster.clock.advance(by: .milliseconds(1))
        try await cluster.waitUntilReady(first)
        #expect(first.node.isReady)
        #expect(try await Browser().get(first.port, "/ready").status == 200)
        let browser = Browser()
        for _ in 0..<3 { _ = try await browser.get(first.port, "/counter") }
        // A joiner becomes ready once it has the sessions (no settle time: it copies them from
        // the first node), and serves them.
        let joiner = try await cluster.add(index: 1, settle: .seconds(2))
        try await cluster.waitUntilReady(joiner)
        #expect(try await Browser().get(joiner.port, "/ready").status == 200)
        #expect(try await browser.get(joiner.port, "/peek").body == "3")
        await cluster.stop()
    }

    @Test func failoverUnderConcurrentClientsLosesNoAcknowledgedIncrement() async throws {
        let cluster = try await HTTPCluster.start(count: 3)
        let clients = 8
        let browsers = (0..<clients).map { _ in Browser() }
        let acknowledged = NIOLockedValueBox([Int](repeating: 0, count: clients))
        // Everyone starts on node1, the node that will die.
        for (i, browser) in browsers.enumerated() {
            let answer = try await browser.get(cluster[0].port, "/counter")
            #expect(answer.status == 200)
            acknowledged.withLockedValue { $0[i] = Int(answer.body) ?? 0 }
        }
        let killed = NIOLockedValueBox(false)
        // Every acknowledged answer is announced; node1 dies after the 40th, mid-traffic.
        let (answers, answered) = AsyncStream.makeStream(of: Void.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await withThrowingTaskGroup(of: Void.self) { clientsGroup in
                    for (i, browser) in browsers.enumerated() {
                        clientsGroup.addTask {
                            for round in 0..<20 {
                                // Round-robin over the nodes that are alive (the balancer's view).
                                let dead = killed.withLockedValue { $0 }
                                let candidates = dead ? [1, 2] : [0, 1, 2]
                                let port = cluster[candidates[(i + round) % candidates.count]].port
                                guard let answer = try? await browser.get(port, "/counter"), answer.status == 200, let n = Int(answer.body) else {
                                    continue  // not acknowledged: the client would retry
                                }
                                acknowledged.withLockedValue { $0[i] = max($0[i], n) }
                                answered.yield()
                            }
                        }
                    }
                    try await clientsGroup.waitForAll()
                }
                answered.finish()
            }
            group.addTask {
                var count = 0
                for await _ in answers {
                    count += 1
                    if count == clients * 5 { break }
                }
                killed.withLockedValue { $0 = true }
                cluster.kill(0)
            }
            try await group.waitForAll()
        }
        // Every acknowledged increment is still there, on both survivors.
        for (i, browser) in browsers.enumerated() {
            let expected = acknowledged.withLockedValue { $0[i] }
            #expect(try await browser.get(cluster[1].port, "/peek").body == "\(expected)")
            #expect(try await browser.get(cluster[2].port, "/peek").body == "\(expected)")
        }
        await cluster.stop()
    }
}
