#if Vapor
import Cohort
import CohortSessions
import CohortTestKit
import CohortVapor
import Foundation
import NIOConcurrencyHelpers
import Testing
import Vapor

/// The Hummingbird integration's failover tests (Tests/CohortHummingbirdTests/MiddlewareTests),
/// against Vapor: `SessionsMiddleware` over ``CohortSessionDriver``, nodes run by
/// ``ClusterNodeLifecycle``.
@Suite("Vapor: CohortSessionDriver and ClusterNodeLifecycle", .timeLimit(.minutes(2)), .serialized)
struct VaporFailoverTests {
    @Test func countContinuesOnEveryNode() async throws {
        let cluster = try await VaporCluster.start(count: 3)
        let browser = Browser()
        do {
            #expect(try await browser.get(cluster[0].port, "/counter").body == "1")
            #expect(try await browser.get(cluster[1].port, "/counter").body == "2")
            #expect(try await browser.get(cluster[2].port, "/counter").body == "3")
            #expect(try await browser.get(cluster[0].port, "/peek").body == "3")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func requestsThatChangeNothingSendNothing() async throws {
        let cluster = try await VaporCluster.start(count: 2)
        let browser = Browser()
        do {
            _ = try await browser.get(cluster[0].port, "/counter")
            let before = cluster[0].counter.count
            // Vapor calls the driver's updateSession after each of these: nothing may go out.
            for _ in 0..<5 { #expect(try await browser.get(cluster[0].port, "/peek").status == 200) }
            #expect(cluster[0].counter.count == before, "reads replicated something")
            _ = try await browser.get(cluster[0].port, "/counter")
            #expect(cluster[0].counter.count == before + 1, "one change must be exactly one replication message")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func readsRefreshTheAccessOncePerHalfIdleInterval() async throws {
        let cluster = try await VaporCluster.start(count: 2, driver: .init(idleTimeout: .seconds(60)))
        let browser = Browser()
        do {
            _ = try await browser.get(cluster[0].port, "/counter")
            let before = cluster[0].counter.count
            cluster.clock.advance(by: .seconds(29))
            _ = try await browser.get(cluster[0].port, "/peek")
            #expect(cluster[0].counter.count == before, "refreshed before half the idle interval")
            cluster.clock.advance(by: .seconds(2))
            _ = try await browser.get(cluster[0].port, "/peek")
            #expect(cluster[0].counter.count == before + 1, "no access refresh after half the idle interval")
            // The refresh kept the session alive on the other node past the first access + 60 s.
            cluster.clock.advance(by: .seconds(40))
            #expect(try await browser.get(cluster[1].port, "/peek").body == "1")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func invalidationEndsTheSessionEverywhere() async throws {
        let cluster = try await VaporCluster.start(count: 2)
        let browser = Browser()
        do {
            _ = try await browser.get(cluster[0].port, "/counter")
            let old = browser.cookie
            let logout = try await browser.get(cluster[1].port, "/logout")
            #expect(logout.status == 200)
            let expired = try #require(logout.setCookie)
            #expect(expired.contains("Max-Age=0") || expired.contains("1970"), "\(expired)")
            browser.cookie = old  // keep the old cookie: the session must be gone anyway
            #expect(try await browser.get(cluster[0].port, "/peek").body == "0")
            #expect(try await Browser(cookie: old).get(cluster[1].port, "/peek").body == "0")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func notReadyUntilStartupIsDoneThenServesTransferredSessions() async throws {
        // With waitUntilReady: false the server starts at once; a first node with no ready
        // member waits its settle time (on the manual clock) before it declares itself ready:
        // until then /ready and the session routes answer 503 with Retry-After, /alive 200.
        let cluster = VaporCluster()
        do {
            let first = try await cluster.add(index: 0, settle: .seconds(2), waitUntilReady: false)
            #expect(try await Browser().get(first.port, "/ready").status == 503)
            let early = try await Browser().get(first.port, "/counter")
            #expect(early.status == 503)
            #expect(early.retryAfter == "1")
            #expect(early.setCookie == nil, "a node that is not ready must not hand out a session")
            #expect(try await Browser().get(first.port, "/alive").status == 200)
            let status = try await Browser().get(first.port, "/cluster/status")
            #expect(status.body.contains("\"state\":\"starting\""), "\(status.body)")
            try await cluster.clock.waitForSleepers(1)  // the manager's settle timer is armed
            cluster.clock.advance(by: .milliseconds(1999))
            try await cluster.clock.waitForSleepers(1)
            #expect(!first.node.isReady, "ready before the settle time")
            cluster.clock.advance(by: .milliseconds(1))
            try await cluster.waitUntilReady(first)
            #expect(try await Browser().get(first.port, "/ready").status == 200)
            let browser = Browser()
            for _ in 0..<3 { _ = try await browser.get(first.port, "/counter") }
            // A joiner (booted the default way: boot waits until ready) has the sessions.
            let joiner = try await cluster.add(index: 1, settle: .seconds(2))
            #expect(joiner.node.isReady)
            #expect(try await Browser().get(joiner.port, "/ready").status == 200)
            #expect(try await browser.get(joiner.port, "/peek").body == "3")
            let joined = try await Browser().get(joiner.port, "/cluster/status")
            #expect(joined.body.contains("\"state\":\"serving\""), "\(joined.body)")
            #expect(joined.body.contains("\"sessions\":1"), "\(joined.body)")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func bootWaitsUntilTheNodeIsReady() async throws {
        let cluster = VaporCluster()
        let (app, node, counter) = try await cluster.makeApplication(index: 0, settle: .seconds(2))
        let booted = NIOLockedValueBox(false)
        let boot = Task {
            try await app.asyncBoot()
            booted.withLockedValue { $0 = true }
        }
        do {
            try await cluster.clock.waitForSleepers(1)  // the node runs; its settle timer is armed
            cluster.clock.advance(by: .milliseconds(1999))
            try await cluster.clock.waitForSleepers(1)
            #expect(!booted.withLockedValue { $0 }, "boot returned before the node was ready")
            cluster.clock.advance(by: .milliseconds(1))
            try await withDeadline(.seconds(60), "boot to return") { try await boot.value }
            #expect(node.isReady)
            let served = try await cluster.serve(app, node, counter)
            #expect(try await Browser().get(served.port, "/counter").body == "1")
        } catch {
            boot.cancel()
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func aFailingStoreAnswers503NeverANewSession() async throws {
        let cluster = try await VaporCluster.start(count: 2)
        let browser = Browser()
        do {
            #expect(try await browser.get(cluster[0].port, "/counter").body == "1")
            // node1's channel stops under a node that still reports ready: replication fails.
            let events = cluster[0].node.channel.membershipEvents()
            cluster[0].node.channel.shutdown()
            try await withDeadline(.seconds(60), "node1's channel to stop") { for await _ in events {} }
            let failed = try await browser.get(cluster[0].port, "/counter")
            #expect(failed.status == 503)
            #expect(failed.retryAfter == "1")
            #expect(failed.setCookie == nil)
            let stranger = try await Browser().get(cluster[0].port, "/counter")
            #expect(stranger.status == 503, "a new session that cannot be replicated must not be handed out")
            #expect(stranger.setCookie == nil)
            // The session is intact on the other node: the failed increment was never acknowledged.
            #expect(try await browser.get(cluster[1].port, "/counter").body == "2")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func loginRotatesTheSessionIDOnEveryNode() async throws {
        let cluster = try await VaporCluster.start(count: 2)
        let browser = Browser()
        do {
            _ = try await browser.get(cluster[0].port, "/counter")
            _ = try await browser.get(cluster[0].port, "/counter")
            let before = try #require(browser.sessionID)
            let oldCookie = browser.cookie
            #expect(try await browser.get(cluster[0].port, "/login?user=ada").status == 200)
            let after = try #require(browser.sessionID)
            #expect(after != before, "a login must give the session a new id")
            // The new id carries the data and the user, on the other node too.
            #expect(try await browser.get(cluster[1].port, "/peek").body == "2")
            #expect(try await browser.get(cluster[1].port, "/user").body == "ada")
            #expect(try await cluster[1].node.sessions.session(after)?.principal == "ada")
            // The old id works nowhere.
            #expect(try await Browser(cookie: oldCookie).get(cluster[1].port, "/peek").body == "0")
            #expect(try await cluster[0].node.sessions.session(before) == nil)
            // Explicit rotation from a handler.
            #expect(try await browser.get(cluster[1].port, "/rotate").body == "2")
            let rotated = try #require(browser.sessionID)
            #expect(rotated != after)
            #expect(try await browser.get(cluster[0].port, "/peek").body == "2")
            #expect(try await cluster[0].node.sessions.session(after) == nil)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func idleAndAbsoluteLimitsAreEnforcedByEveryNode() async throws {
        let cluster = try await VaporCluster.start(count: 2, driver: .init(idleTimeout: .seconds(60), absoluteTimeout: .seconds(150)))
        do {
            // Idle: untouched for more than 60 s, gone on both nodes.
            let idle = Browser()
            _ = try await idle.get(cluster[0].port, "/counter")
            let idleID = try #require(idle.sessionID)
            // Absolute: busy every 40 s, yet gone after 150 s.
            let busy = Browser()
            _ = try await busy.get(cluster[0].port, "/counter")
            let busyID = try #require(busy.sessionID)
            for step in 1...3 {
                cluster.clock.advance(by: .seconds(40))
                #expect(try await busy.get(cluster[step % 2].port, "/counter").body == "\(step + 1)", "step \(step)")
            }
            // 120 s: the idle one expired (last access at 0), the busy one lives.
            #expect(try await cluster[0].node.sessions.session(idleID) == nil)
            #expect(try await cluster[1].node.sessions.session(idleID) == nil)
            #expect(try await cluster[1].node.sessions.session(busyID) != nil)
            cluster.clock.advance(by: .seconds(31))  // 151 s: past the absolute limit
            #expect(try await cluster[0].node.sessions.session(busyID) == nil)
            #expect(try await cluster[1].node.sessions.session(busyID) == nil)
            #expect(try await busy.get(cluster[1].port, "/peek").body == "0")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func failoverUnderConcurrentClientsLosesNoAcknowledgedIncrement() async throws {
        let cluster = try await VaporCluster.start(count: 3)
        do {
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
            let ports = cluster.nodes.map(\.port)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await withThrowingTaskGroup(of: Void.self) { clientsGroup in
                        for (i, browser) in browsers.enumerated() {
                            clientsGroup.addTask {
                                for round in 0..<20 {
                                    // Round-robin over the nodes that are alive (the balancer's view).
                                    let dead = killed.withLockedValue { $0 }
                                    let candidates = dead ? [1, 2] : [0, 1, 2]
                                    let port = ports[candidates[(i + round) % candidates.count]]
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
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func shutdownHandsOffAndLeaves() async throws {
        let cluster = try await VaporCluster.start(count: 2)
        do {
            let browser = Browser()
            _ = try await browser.get(cluster[0].port, "/counter")
            let events = cluster[1].node.channel.membershipEvents()
            // node1's application shuts down: server first, then hand-off and a graceful leave.
            try await cluster.shutdown(0)
            #expect(!cluster[0].node.isReady)
            #expect(!cluster[0].node.channel.isRunning)
            let left = try await withDeadline(.seconds(60), "node2 to see node1 leave") { () async -> Bool in
                for await event in events { if case .left = event { return true } }
                return false
            }
            #expect(left, "node1 did not leave gracefully")
            #expect(try await browser.get(cluster[1].port, "/counter").body == "2")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}

extension Browser {
    convenience init(cookie: String?) {
        self.init()
        self.cookie = cookie
    }
}
#endif
