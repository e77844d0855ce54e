import CohortTestKit
import Foundation
import Testing

/// Runs the real `cohort` executable as separate processes, as a user would.
@Suite("cohort node processes", .timeLimit(.minutes(2)))
struct NodeProcessTests {
    static var binary: String? {
        // swift test puts the test bundle next to the built executables.
        let dir = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")).map { ($0 as NSString).deletingLastPathComponent }
        guard let dir else { return nil }
        let path = dir + "/cohort"
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    @Test(.enabled(if: binary != nil, "the cohort executable is not built next to the tests (run swift build first)"))
    func threeNodesSeeEachOtherExchangeLinesAndReportAKilledPeer() async throws {
        let exe = try #require(Self.binary)
        let ports = try ChildProcess.freeLoopbackPorts(3)
        let addresses = ports.map { "127.0.0.1:\($0)" }
        var nodes: [ChildProcess] = []
        defer { nodes.forEach { $0.signal(SIGKILL) } }
        for i in 0..<3 {
            let others = addresses.enumerated().filter { $0.offset != i }.map(\.element).joined(separator: ",")
            nodes.append(try ChildProcess(exe, ["node", "--name", "p\(i + 1)", "--listen", addresses[i], "--members", others]))
        }
        for node in nodes {
            #expect(await node.wait(for: 60) { $0.filter { $0.hasPrefix("member-added") }.count == 2 }, "\(node.output)")
        }
        nodes[0].send("hello there")
        #expect(await nodes[0].wait(for: 60) { $0.contains("sent to 2/2 members") }, "\(nodes[0].output)")
        #expect(await nodes[1].wait(for: 60) { $0.contains("received from p1: hello there") })
        #expect(await nodes[2].wait(for: 60) { $0.contains("received from p1: hello there") })

        nodes[2].signal(SIGKILL)
        #expect(await nodes[0].wait(for: 60) { $0.contains { $0.hasPrefix("member-removed p3") } }, "\(nodes[0].output)")
        #expect(await nodes[1].wait(for: 60) { $0.contains { $0.hasPrefix("member-removed p3") } }, "\(nodes[1].output)")
        nodes[1].send("after")
        #expect(await nodes[1].wait(for: 60) { $0.contains("sent to 1/1 members") }, "\(nodes[1].output)")

        nodes[0].signal(SIGTERM)
        #expect(await nodes[1].wait(for: 60) { $0.contains { $0.hasPrefix("member-left p1") } }, "\(nodes[1].output)")
        #expect(await nodes[0].waitForExit(seconds: 60) == 0)
    }

    @Test(.enabled(if: binary != nil, "the cohort executable is not built"))
    func badArgumentsExitNonZeroWithAClearMessage() async throws {
        let exe = try #require(Self.binary)
        let cases: [([String], String)] = [
            (["node", "--listen", "nowhere"], "HOST:PORT"),
            (["node", "--listen", "127.0.0.1:1", "--codec", "morse"], "no codec plugin 'morse'"),
            (["node", "--members", "a:b"], "is not an address"),
            (["node", "--listen", "127.0.0.1:1", "--plugin", "/nonexistent/libX.so"], "does not exist"),
        ]
        for (arguments, expected) in cases {
            let result = try await ChildProcess.run(exe, arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
        }
        // Port in use.
        let ports = try ChildProcess.freeLoopbackPorts(1)
        let first = try ChildProcess(exe, ["node", "--name", "a", "--listen", "127.0.0.1:\(ports[0])"])
        defer { first.signal(SIGKILL) }
        #expect(await first.wait(for: 60) { $0.contains { $0.hasPrefix("listening") } })
        let second = try await ChildProcess.run(exe, ["node", "--name", "b", "--listen", "127.0.0.1:\(ports[0])"])
        #expect(second.status != 0)
        #expect(second.stderr.contains("already in use"), "\(second.stderr)")
    }
}

