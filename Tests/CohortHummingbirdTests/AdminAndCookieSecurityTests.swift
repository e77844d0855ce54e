import CohortHummingbird
import CohortTestKit
import Foundation
import Testing

/// The admin endpoints behind a bearer token, Secure cookies, and session id rotation.
@Suite("admin token, Secure cookies, session id rotation", .timeLimit(.minutes(2)), .serialized)
struct AdminAndCookieSecurityTests {
    @Test func theAdminEndpointsNeedTheTokenAndTheProbesDoNot() async throws {
        let cluster = try await HTTPCluster.start(count: 1, adminToken: "s3cret-admin-token")
        let browser = Browser()
        let port = cluster[0].port
        #expect(try await browser.get(port, "/cluster/members").status == 401)
        #expect(try await browser.get(port, "/cluster/sessions").status == 401)
        #expect(try await browser.get(port, "/cluster/members", headers: ["Authorization": "Bearer wrong"]).status == 401)
        #expect(try await browser.get(port, "/cluster/members", headers: ["Authorization": "Bearer s3cret-admin-token-and-more"]).status == 401)
        let allowed = try await browser.get(port, "/cluster/members", headers: ["Authorization": "Bearer s3cret-admin-token"])
        #expect(allowed.status == 200 && allowed.body.contains("node1"))
        #expect(try await browser.get(port, "/alive").status == 200)
        #expect(try await browser.get(port, "/ready").status == 200)
        await cluster.stop()
    }

    @Test func behindTLSTheCookieIsSecure() async throws {
        let cluster = try await HTTPCluster.start(count: 1, secureCookie: true)
        let answer = try await Browser().get(cluster[0].port, "/counter")
        #expect(answer.setCookie?.contains("Secure") == true, "\(answer.setCookie ?? "no cookie")")
        #expect(answer.setCookie?.contains("HttpOnly") == true)
        await cluster.stop()
    }

    @Test func aLoginGivesTheSessionANewIdAndTheOldOneStopsWorkingEverywhere() async throws {
        let cluster = try await HTTPCluster.start(count: 2)
        let browser = Browser()
        let first = try await browser.get(cluster[0].port, "/counter")
        let before = sessionID(try #require(first.setCookie))
        let oldCookie = try #require(browser.cookie)

        let login = try await browser.get(cluster[0].port, "/login?user=alice")
        let after = sessionID(try #require(login.setCookie, "a login must re-issue the cookie"))
        #expect(after != before)
        // The session continues under its new id, on every node.
        #expect(try await browser.get(cluster[1].port, "/peek").body == "1")
        #expect(try await browser.get(cluster[0].port, "/counter").body == "2")
        // Someone holding the id from before the login (fixation) has an empty session.
        let attacker = Browser()
        attacker.cookie = oldCookie
        #expect(try await attacker.get(cluster[0].port, "/peek").body == "0")
        #expect(try await attacker.get(cluster[1].port, "/peek").body == "0")

        // A request that does not change the principal keeps the id; an explicit rotation does not.
        #expect(try await browser.get(cluster[0].port, "/counter").setCookie == nil)
        let rotated = try await browser.get(cluster[0].port, "/rotate")
        #expect(sessionID(try #require(rotated.setCookie)) != after)
        #expect(try await browser.get(cluster[1].port, "/peek").body == "3")
        await cluster.stop()
    }
}
