import CohortTestKit
import Foundation
import Testing

/// `cohort members`, `sessions`, `status` and `leave` against real `cohort serve` processes.
@Suite("cohort admin commands", .timeLimit(.minutes(3)))
struct AdminCommandTests {
    @Test(.enabled(if: NodeProcessTests.binary != nil, "the cohort executable is not built next to the tests (run swift build first)"))
    func adminCommandsShowWhatTheNodesSeeAndLeaveHandsOff() async throws {
        let pair = try await ServePair(exe: try #require(NodeProcessTests.binary), prefix: "adm")
        defer { pair.stop() }
        var cookie: String?
        #expect(try await ServePair.get(pair.httpPorts[0], "/counter", cookie: &cookie).status == 200)
        #expect(try await ServePair.get(pair.httpPorts[1], "/counter", cookie: &cookie).body.contains("\"count\":2"))

        // members: a table, and JSON.
        let members = try await pair.cohort(["members", "--admin", pair.admin[0]])
        #expect(members.status == 0, "\(members.stderr)")
        let lines = members.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "Members seen by adm1: 2", "\(members.stdout)")
        #expect(lines.dropFirst().first?.hasPrefix("NAME") == true)
        #expect(lines.contains { $0.hasPrefix("adm1") && $0.contains(" self ") })
        #expect(lines.contains { $0.hasPrefix("adm2") && $0.contains(" alive ") })
        let membersJSON = try jsonObject(try await pair.cohort(["members", "--admin", pair.admin[1], "--json"]).stdout)
        #expect(membersJSON["node"] as? String == "adm2")
        #expect((membersJSON["members"] as? [[String: Any]])?.compactMap { $0["name"] as? String }.sorted() == ["adm1", "adm2"])

        // sessions: both nodes hold the one session (delta manager).
        let sessions = try await pair.cohort(["sessions", "--admin", pair.admin[0]])
        #expect(sessions.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "adm1 holds 1 session", "\(sessions.stdout) \(sessions.stderr)")
        let sessionsJSON = try jsonObject(try await pair.cohort(["sessions", "--admin", pair.admin[1], "--json"]).stdout)
        #expect(sessionsJSON["sessions"] as? Int == 1)

        // status: ready, serving, quorum, transfer.
        let status = try await pair.cohort(["status", "--admin", pair.admin[1]])
        #expect(status.status == 0, "\(status.stderr)")
        for expected in ["adm2 (127.0.0.1:", "ready     yes", "state     serving", "in quorum", "transfer  done", "manager   delta", "sessions  1"] {
            #expect(status.stdout.contains(expected), "no '\(expected)' in:\n\(status.stdout)")
        }
        let statusJSON = try jsonObject(try await pair.cohort(["status", "--admin", pair.admin[0], "--json"]).stdout)
        #expect(statusJSON["ready"] as? Bool == true)
        #expect(statusJSON["state"] as? String == "serving")
        #expect((statusJSON["quorum"] as? [String: Any])?["members"] as? Int == 2)
        #expect((statusJSON["transfer"] as? [String: Any])?["state"] as? String == "done")

        // leave: adm2 hands off and leaves; adm1 hears the graceful leave and keeps the session.
        let leave = try await pair.cohort(["leave", "--admin", pair.admin[1]])
        #expect(leave.status == 0, "\(leave.stdout) \(leave.stderr)")
        #expect(leave.stdout.contains("adm2 left the cluster"), "\(leave.stdout)")
        #expect(await pair.nodes[0].wait(for: 60) { $0.contains { $0.hasPrefix("member-left adm2") } }, "\(pair.nodes[0].output)")
        let left = try jsonObject(try await pair.cohort(["status", "--admin", pair.admin[1], "--json"]).stdout)
        #expect(left["state"] as? String == "left")
        #expect(left["ready"] as? Bool == false)
        #expect(try await ServePair.get(pair.httpPorts[1], "/ready", cookie: &cookie).status == 503)
        #expect(pair.nodes[1].isRunning, "leave must not stop the process")
        let after = try jsonObject(try await pair.cohort(["members", "--admin", pair.admin[0], "--json"]).stdout)
        #expect((after["members"] as? [[String: Any]])?.count == 1)
        #expect(try await ServePair.get(pair.httpPorts[0], "/counter", cookie: &cookie).body.contains("\"count\":3"))
    }

    @Test(.enabled(if: NodeProcessTests.binary != nil, "the cohort executable is not built"))
    func anUnreachableNodeIsOneClearErrorAndStatusOne() async throws {
        let exe = try #require(NodeProcessTests.binary)
        let port = try ChildProcess.freeLoopbackPorts(1)[0]
        for command in ["members", "sessions", "status", "leave"] {
            let result = try await ChildProcess.run(exe, [command, "--admin", "127.0.0.1:\(port)", "--timeout", "5"])
            #expect(result.status == 1, "\(command): \(result.status)")
            #expect(result.stderr.contains("cannot reach the admin address 127.0.0.1:\(port)"), "\(command): \(result.stderr)")
        }
    }
}
