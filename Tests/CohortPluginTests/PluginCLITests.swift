import Cohort
import CohortTestKit
import Foundation
import Testing

/// The built `cohort` executable loading plugin libraries, as a user runs it.
@Suite("cohort with --plugin", .enabled(if: CohortExecutable.ready, "the cohort executable or the plugin libraries are not built next to the tests (run swift build)"), .timeLimit(.minutes(2)))
struct PluginCLITests {
    static var executable: String { CohortExecutable.path }

    @Test func pluginsCommandListsLoadedPluginsWithTheirFile() throws {
        let library = PluginFiles.path(PluginFiles.fileDiscovery)
        let result = try ChildProcess.run(Self.executable, ["plugins", "--plugin", library])
        #expect(result.status == 0, "\(result.stderr)")
        let row = result.stdout.split(separator: "\n").first { $0.hasPrefix("discovery.file ") }
        #expect(row != nil, "no discovery.file row in:\n\(result.stdout)")
        #expect(row?.contains("discovery") == true && row?.contains("1.0.0") == true)
        #expect(row?.hasSuffix(library) == true, "the row does not end with the library's path: \(row ?? "")")
        // The built-ins are still listed, as built-in.
        #expect(result.stdout.split(separator: "\n").contains { $0.hasPrefix("transport.tcp ") && $0.hasSuffix("built-in") }, "\(result.stdout)")
        #expect(result.stderr.contains("loaded plugin discovery.file"), "\(result.stderr)")
    }

    @Test func pluginsCommandFindsABareNameNextToTheExecutable() throws {
        let result = try ChildProcess.run(Self.executable, ["plugins", "--plugin", PluginFiles.fileDiscovery])
        #expect(result.status == 0, "\(result.stderr)")
        let row = result.stdout.split(separator: "\n").first { $0.hasPrefix("discovery.file ") }
        #expect(row?.hasSuffix("/lib\(PluginFiles.fileDiscovery).so") == true, "\(result.stdout)")
    }

    @Test func nodeRefusesAPluginOfAnotherABI() throws {
        let port = try ChildProcess.freeLoopbackPorts(1)[0]
        let result = try ChildProcess.run(Self.executable, ["node", "--name", "bad", "--listen", "127.0.0.1:\(port)", "--plugin", PluginFiles.path(PluginFiles.badABI)])
        #expect(result.status != 0)
        #expect(result.stderr.contains("ABI 999"), "\(result.stderr)")
        #expect(result.stderr.contains("ABI \(cohortPluginABIVersion)"), "\(result.stderr)")
        #expect(!result.stdout.contains("listening"), "the node started anyway: \(result.stdout)")
    }

    @Test func pluginsCommandRefusesBrokenLibrariesWithoutCrashing() throws {
        let cases: [(String, String)] = [
            (PluginFiles.path(PluginFiles.noEntry), "not a Cohort plugin"),
            (PluginFiles.path(PluginFiles.wrongStamp), "swift-0.0/core-0"),
            ("CohortNoSuchPlugin", "looked in"),
        ]
        for (plugin, expected) in cases {
            let result = try ChildProcess.run(Self.executable, ["plugins", "--plugin", plugin])
            #expect(result.status == 2, "\(plugin): exit \(result.status) — a crash exits otherwise: \(result.stderr)")
            #expect(result.stderr.contains(expected), "\(plugin): \(result.stderr)")
        }
    }

    @Test func nodeLoadsThePluginsNamedInTheConfigurationFile() throws {
        let port = try ChildProcess.freeLoopbackPorts(1)[0]
        let dir = try TemporaryDirectory()
        let members = dir.file("members.txt")
        try writeMembers([], to: members)
        let configuration = dir.file("node.json")
        let json = """
            {"name": "configured", "listen": "127.0.0.1:\(port)", "plugins": ["lib\(PluginFiles.fileDiscovery).so"],
             "discovery": "file", "discoverySettings": {"path": "\(members)"}}
            """
        try json.write(toFile: configuration, atomically: true, encoding: .utf8)
        let node = try ChildProcess(Self.executable, ["node", "--config", configuration])
        defer { node.signal(SIGKILL) }
        _ = node.wait(for: 20) { lines in lines.contains { $0.hasPrefix("listening") } || !node.isRunning }
        #expect(node.output.contains { $0.hasPrefix("listening configured") }, "\(node.output)")
        node.signal(SIGTERM)
        _ = node.waitForExit(seconds: 10)
    }

    @Test func threeNodesFormAClusterThroughTheExampleFileDiscovery() throws {
        let ports = try ChildProcess.freeLoopbackPorts(3)
        let addresses = ports.map { "127.0.0.1:\($0)" }
        let dir = try TemporaryDirectory()
        let file = dir.file("members.txt")
        try writeMembers(ports.map { Endpoint(host: "127.0.0.1", port: $0) }, to: file)
        var nodes: [ChildProcess] = []
        defer { nodes.forEach { $0.signal(SIGKILL) } }
        for i in 0..<3 {
            nodes.append(try ChildProcess(Self.executable, [
                "node", "--name", "f\(i + 1)", "--listen", addresses[i],
                "--plugin", "lib\(PluginFiles.fileDiscovery).so",
                "--discovery", "file", "--discovery-setting", "path=\(file)", "--discovery-setting", "interval_ms=100",
            ]))
        }
        for node in nodes {
            #expect(node.wait(for: 30) { $0.filter { $0.hasPrefix("member-added") }.count >= 2 }, "\(node.output)")
        }
        for (i, node) in nodes.enumerated() {
            let added = node.output.filter { $0.hasPrefix("member-added") }
            #expect(added.count == 2, "\(node.output)")
            let others = (0..<3).filter { $0 != i }.map { "f\($0 + 1)" }
            for name in others {
                #expect(added.contains { $0.hasPrefix("member-added \(name) ") }, "node f\(i + 1) did not add \(name): \(added)")
            }
        }
        nodes[0].send("over the file-discovered cluster")
        #expect(nodes[0].wait(for: 10) { $0.contains("sent to 2/2 members") }, "\(nodes[0].output)")
        for node in nodes { node.signal(SIGTERM) }
        for node in nodes { #expect(node.waitForExit(seconds: 10) != nil) }
    }
}

/// The `cohort` executable next to the test binary.
enum CohortExecutable {
    static var path: String { PluginFiles.directory + "/cohort" }
    static var ready: Bool { FileManager.default.isExecutableFile(atPath: path) && PluginFiles.allBuilt }
}

