import Cohort
import CohortTestKit
import Foundation
import Testing

/// A Swift plugin built by another package — `Examples/FileDiscovery`, resolved by URL and version
/// from a tagged clone of this repository — loaded by this checkout's `cohort` executable.
/// `scripts/check-consumers` (run by CI) builds it and names it in `COHORT_EXTERNAL_PLUGIN`.
@Suite(
    "A plugin built by another package",
    .enabled(if: ExternalPlugin.path != nil, "COHORT_EXTERNAL_PLUGIN is not set (scripts/check-consumers sets it)"),
    .enabled(if: CohortExecutable.ready, "the cohort executable is not built next to the tests (run swift build)"),
    .timeLimit(.minutes(2))
)
struct ExternalPluginTests {
    @Test func itLoadsIntoARegistryThroughTheCBoundary() async throws {
        let path = try #require(ExternalPlugin.path)
        let registry = PluginRegistry()
        let loaded = try PluginLoader.load(path, into: registry)
        #expect(loaded.map(\.id) == ["discovery.file"])
        #expect(loaded.first?.origin == .file(path))
        // Its settings are checked inside the library, and the error crosses back intact.
        let error = #expect(throws: CohortError.self) {
            try registry.factory("discovery.file", kind: .discovery).makeDiscovery(settings: PluginSettings())
        }
        #expect(error?.code == .badConfiguration)
        #expect(error?.message.contains("'path'") == true, "\(error?.message ?? "")")
    }

    @Test func threeNodeProcessesFormAClusterThroughIt() async throws {
        let path = try #require(ExternalPlugin.path)
        let ports = try ChildProcess.freeLoopbackPorts(3)
        let addresses = ports.map { "127.0.0.1:\($0)" }
        let dir = try TemporaryDirectory()
        let file = dir.file("members.txt")
        try writeMembers(ports.map { Endpoint(host: "127.0.0.1", port: $0) }, to: file)
        var nodes: [ChildProcess] = []
        defer { nodes.forEach { $0.signal(SIGKILL) } }
        for i in 0..<3 {
            nodes.append(try ChildProcess(CohortExecutable.path, [
                "node", "--name", "f\(i + 1)", "--listen", addresses[i],
                "--plugin", path,
                "--discovery", "file", "--discovery-setting", "path=\(file)", "--discovery-setting", "interval_ms=100",
            ]))
        }
        for node in nodes {
            #expect(await node.wait(for: 60) { $0.filter { $0.hasPrefix("member-added") }.count >= 2 }, "\(node.output)")
        }
        for (i, node) in nodes.enumerated() {
            let added = node.output.filter { $0.hasPrefix("member-added") }
            let others = (0..<3).filter { $0 != i }.map { "f\($0 + 1)" }
            for name in others {
                #expect(added.contains { $0.hasPrefix("member-added \(name) ") }, "node f\(i + 1) did not add \(name): \(added)")
            }
        }
        nodes[0].send("over the file-discovered cluster")
        #expect(await nodes[0].wait(for: 60) { $0.contains("sent to 2/2 members") }, "\(nodes[0].output)")
        for node in nodes { node.signal(SIGTERM) }
        for node in nodes { #expect(await node.waitForExit(seconds: 60) != nil) }
    }
}

/// The library `COHORT_EXTERNAL_PLUGIN` names, if any.
enum ExternalPlugin {
    static var path: String? {
        guard let path = ProcessInfo.processInfo.environment["COHORT_EXTERNAL_PLUGIN"], !path.isEmpty else { return nil }
        return path
    }
}
