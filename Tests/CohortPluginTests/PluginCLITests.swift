import Cohort
import CohortTestKit
import Foundation
import Testing

/// The built `cohort` executable loading plugin libraries, as a user runs it.
@Suite(
    "cohort with --plugin",
    .enabled(if: CohortExecutable.ready, "the cohort executable or the plugin libraries are not built next to the tests (run swift build)"),
    .enabled(if: CFixture.available, "no C compiler on PATH"),
    .timeLimit(.minutes(2))
)
struct PluginCLITests {
    static var executable: String { CohortExecutable.path }

    @Test func pluginsCommandListsLoadedPluginsWithTheirFile() async throws {
        let library = try await CFixture.codec.library()
        let result = try await ChildProcess.run(Self.executable, ["plugins", "--plugin", library])
        #expect(result.status == 0, "\(result.stderr)")
        let row = result.stdout.split(separator: "\n").first { $0.hasPrefix("codec.ctree ") }
        #expect(row != nil, "no codec.ctree row in:\n\(result.stdout)")
        #expect(row?.contains("codec") == true && row?.contains("0.1.0") == true)
        #expect(row?.hasSuffix(library) == true, "the row does not end with the library's path: \(row ?? "")")
        // The built-ins are still listed, as built-in.
        #expect(result.stdout.split(separator: "\n").contains { $0.hasPrefix("transport.tcp ") && $0.hasSuffix("built-in") }, "\(result.stdout)")
        #expect(result.stderr.contains("loaded plugin codec.ctree"), "\(result.stderr)")
    }

    @Test func pluginsCommandFindsABareNameOnThePluginPath() async throws {
        let library = try await CFixture.codec.library()
        let folder = (library as NSString).deletingLastPathComponent
        let result = try await ChildProcess.run(
            Self.executable,
            ["plugins", "--plugin", (library as NSString).lastPathComponent],
            environment: ProcessInfo.processInfo.environment.merging(["COHORT_PLUGIN_PATH": folder]) { $1 }
        )
        #expect(result.status == 0, "\(result.stderr)")
        let row = result.stdout.split(separator: "\n").first { $0.hasPrefix("codec.ctree ") }
        #expect(row?.hasSuffix(library) == true, "\(result.stdout)")
    }

    @Test func nodeRefusesAPluginOfAnotherABI() async throws {
        let port = try ChildProcess.freeLoopbackPorts(1)[0]
        let result = try await ChildProcess.run(Self.executable, ["node", "--name", "bad", "--listen", "127.0.0.1:\(port)", "--plugin", try await CFixture.badABI.library()])
        #expect(result.status != 0)
        #expect(result.stderr.contains("ABI 999"), "\(result.stderr)")
        #expect(result.stderr.contains("ABI 3"), "\(result.stderr)")
        #expect(!result.stdout.contains("listening"), "the node started anyway: \(result.stdout)")
    }

    @Test func pluginsCommandRefusesBrokenLibrariesWithoutCrashing() async throws {
        let cases: [(String, String)] = [
            (try await CFixture.noEntry.library(), "not a Cohort plugin"),
            (try await CFixture.retiredABI.library(), "retired plugin ABI 2"),
            (try await CFixture.badManifest.library(), "manifest that is not valid"),
            ("CohortNoSuchPlugin", "looked in"),
        ]
        for (plugin, expected) in cases {
            let result = try await ChildProcess.run(Self.executable, ["plugins", "--plugin", plugin])
            #expect(result.status == 2, "\(plugin): exit \(result.status) — a crash exits otherwise: \(result.stderr)")
            #expect(result.stderr.contains(expected), "\(plugin): \(result.stderr)")
        }
    }

    @Test func nodeLoadsThePluginsNamedInTheConfigurationFile() async throws {
        let port = try ChildProcess.freeLoopbackPorts(1)[0]
        let dir = try TemporaryDirectory()
        let configuration = dir.file("node.json")
        let library = try await CFixture.codec.library()
        let json = """
            {"name": "configured", "listen": "127.0.0.1:\(port)", "plugins": ["\(library)"], "codec": "ctree"}
            """
        try json.write(toFile: configuration, atomically: true, encoding: .utf8)
        let node = try ChildProcess(Self.executable, ["node", "--config", configuration])
        defer { node.signal(SIGKILL) }
        _ = await node.wait(for: 60) { lines in lines.contains { $0.hasPrefix("listening") } || !node.isRunning }
        #expect(node.output.contains { $0.hasPrefix("listening configured") }, "\(node.output)")
        node.signal(SIGTERM)
        _ = await node.waitForExit(seconds: 60)
    }

    @Test func threeNodesExchangeLinesThroughACodecWrittenInC() async throws {
        let library = try await CFixture.codec.library()
        let ports = try ChildProcess.freeLoopbackPorts(3)
        let addresses = ports.map { "127.0.0.1:\($0)" }
        var nodes: [ChildProcess] = []
        defer { nodes.forEach { $0.signal(SIGKILL) } }
        for i in 0..<3 {
            nodes.append(try ChildProcess(Self.executable, [
                "node", "--name", "c\(i + 1)", "--listen", addresses[i],
                "--members", addresses.enumerated().filter { $0.offset != i }.map(\.element).joined(separator: ","),
                "--plugin", library, "--codec", "ctree",
            ]))
        }
        for node in nodes {
            #expect(await node.wait(for: 60) { $0.filter { $0.hasPrefix("member-added") }.count >= 2 }, "\(node.output)")
        }
        nodes[0].send("over a codec written in C")
        #expect(await nodes[0].wait(for: 60) { $0.contains("sent to 2/2 members") }, "\(nodes[0].output)")
        for node in nodes.dropFirst() {
            #expect(await node.wait(for: 60) { $0.contains { $0.contains("over a codec written in C") } }, "\(node.output)")
        }
        for node in nodes { node.signal(SIGTERM) }
        for node in nodes { #expect(await node.waitForExit(seconds: 60) != nil) }
    }
}

/// The `cohort` executable next to the test binary.
enum CohortExecutable {
    static var path: String { PluginFiles.directory + "/cohort" }
    static var ready: Bool { FileManager.default.isExecutableFile(atPath: path) && PluginFiles.allBuilt }
}

