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
        let result = try CLIRun.run(Self.executable, ["plugins", "--plugin", library])
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
        let result = try CLIRun.run(Self.executable, ["plugins", "--plugin", PluginFiles.fileDiscovery])
        #expect(result.status == 0, "\(result.stderr)")
        let row = result.stdout.split(separator: "\n").first { $0.hasPrefix("discovery.file ") }
        #expect(row?.hasSuffix("/lib\(PluginFiles.fileDiscovery).so") == true, "\(result.stdout)")
    }

    @Test func nodeRefusesAPluginOfAnotherABI() throws {
        let port = try CLIRun.freePorts(1)[0]
        let result = try CLIRun.run(Self.executable, ["node", "--name", "bad", "--listen", "127.0.0.1:\(port)", "--plugin", PluginFiles.path(PluginFiles.badABI)])
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
            let result = try CLIRun.run(Self.executable, ["plugins", "--plugin", plugin])
            #expect(result.status == 2, "\(plugin): exit \(result.status) — a crash exits otherwise: \(result.stderr)")
            #expect(result.stderr.contains(expected), "\(plugin): \(result.stderr)")
        }
    }

    @Test func nodeLoadsThePluginsNamedInTheConfigurationFile() throws {
        let port = try CLIRun.freePorts(1)[0]
        let dir = try TemporaryDirectory()
        let members = dir.file("members.txt")
        try writeMembers([], to: members)
        let configuration = dir.file("node.json")
        let json = """
            {"name": "configured", "listen": "127.0.0.1:\(port)", "plugins": ["lib\(PluginFiles.fileDiscovery).so"],
             "discovery": "file", "discoverySettings": {"path": "\(members)"}}
            """
        try json.write(toFile: configuration, atomically: true, encoding: .utf8)
        let node = try CLINode(Self.executable, ["node", "--config", configuration])
        defer { node.kill(SIGKILL) }
        _ = node.wait(for: 20) { lines in lines.contains { $0.hasPrefix("listening") } || !node.isRunning }
        #expect(node.output.contains { $0.hasPrefix("listening configured") }, "\(node.output)")
        node.kill(SIGTERM)
        _ = node.waitForExit(seconds: 10)
    }

    @Test func threeNodesFormAClusterThroughTheExampleFileDiscovery() throws {
        let ports = try CLIRun.freePorts(3)
        let addresses = ports.map { "127.0.0.1:\($0)" }
        let dir = try TemporaryDirectory()
        let file = dir.file("members.txt")
        try writeMembers(ports.map { Endpoint(host: "127.0.0.1", port: $0) }, to: file)
        var nodes: [CLINode] = []
        defer { nodes.forEach { $0.kill(SIGKILL) } }
        for i in 0..<3 {
            nodes.append(try CLINode(Self.executable, [
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
        for node in nodes { node.kill(SIGTERM) }
        for node in nodes { #expect(node.waitForExit(seconds: 10) != nil) }
    }
}

/// The `cohort` executable next to the test binary.
enum CohortExecutable {
    static var path: String { PluginFiles.directory + "/cohort" }
    static var ready: Bool { FileManager.default.isExecutableFile(atPath: path) && PluginFiles.allBuilt }
}

/// One finished run of the executable.
struct CLIRun {
    var status: Int32
    var stdout: String
    var stderr: String

    /// Runs the executable to its end (killed after 20 s) and collects both outputs.
    static func run(_ executable: String, _ arguments: [String]) throws -> CLIRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read while it runs, so a full pipe cannot block the child.
        let outData = NIOLockedValueBox(Data())
        let errData = NIOLockedValueBox(Data())
        let readers = DispatchGroup()
        for (handle, box) in [(out.fileHandleForReading, outData), (err.fileHandleForReading, errData)] {
            readers.enter()
            Thread {
                let data = handle.readDataToEndOfFile()
                box.withLockedValue { $0 = data }
                readers.leave()
            }.start()
        }
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        // The readers reach end of file once the child (and anything it started) closed the pipes.
        _ = readers.wait(timeout: .now() + 5)
        return CLIRun(
            status: process.terminationStatus,
            stdout: String(decoding: outData.withLockedValue { $0 }, as: UTF8.self),
            stderr: String(decoding: errData.withLockedValue { $0 }, as: UTF8.self)
        )
    }

    /// Distinct free TCP ports on 127.0.0.1 (bound to port 0, then released).
    static func freePorts(_ count: Int) throws -> [Int] {
        var ports: [Int] = []
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw CohortError(.internal, "socket() failed: errno \(errno)") }
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            guard bound == 0 else { throw CohortError(.internal, "bind() failed: errno \(errno)") }
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}

/// A running `cohort node` whose standard output is collected line by line.
final class CLINode: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let outputPipe = Pipe()
    private let lines = NIOLockedValueBox<[String]>([])

    init(_ executable: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = outputPipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let handle = outputPipe.fileHandleForReading
        let lines = self.lines
        Thread {
            var pending = ""
            while true {
                let data = handle.availableData
                if data.isEmpty { return }
                pending += String(decoding: data, as: UTF8.self)
                while let newline = pending.firstIndex(of: "\n") {
                    let line = String(pending[..<newline])
                    pending = String(pending[pending.index(after: newline)...])
                    lines.withLockedValue { $0.append(line) }
                }
            }
        }.start()
    }

    /// The lines printed so far.
    var output: [String] { lines.withLockedValue { $0 } }

    /// Writes a line to the node's standard input.
    func send(_ line: String) { input.fileHandleForWriting.write(Data((line + "\n").utf8)) }

    /// Polls the output until the condition holds or the deadline passes.
    func wait(for seconds: Double, _ condition: ([String]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(output) { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition(output)
    }

    /// Whether the process still runs.
    var isRunning: Bool { process.isRunning }

    /// Sends a signal if the process still runs.
    func kill(_ signal: Int32) {
        if process.isRunning { Foundation.kill(process.processIdentifier, signal) }
    }

    /// Waits for the exit; nil if it still runs at the deadline.
    func waitForExit(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        return process.isRunning ? nil : process.terminationStatus
    }
}
