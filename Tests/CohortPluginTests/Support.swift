import Cohort
import CohortTestKit
import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing

/// The plugin libraries `swift build` puts next to the test binary.
enum PluginFiles {
    /// The folder of the test binary, where SwiftPM also puts every product.
    static var directory: String { PluginLoader.executableDirectory }

    /// The path of a product's shared library next to the test binary.
    static func path(_ product: String) -> String { directory + "/" + PluginLoader.libraryFileName(product) }

    static let tcp = "CohortTransportTCPPlugin"
    static let binary = "CohortCodecBinaryPlugin"
    static let json = "CohortCodecJSONPlugin"
    static let staticDiscovery = "CohortDiscoveryStaticPlugin"

    /// Every library the tests load.
    static let all = [tcp, binary, json, staticDiscovery]

    /// Whether every library is built (`swift build` builds them all; `swift build --product X`
    /// does not).
    static var allBuilt: Bool { all.allSatisfy { FileManager.default.fileExists(atPath: path($0)) } }

    /// A fresh registry holding only the factories of the given libraries, loaded by full path.
    static func registry(loading products: [String]) throws -> PluginRegistry {
        let registry = PluginRegistry()
        for product in products { try PluginLoader.load(path(product), into: registry) }
        return registry
    }

    /// The one factory a library registered in a fresh registry.
    static func factory(_ product: String, id: String, kind: PluginKind) throws -> any PluginFactory {
        try registry(loading: [product]).factory(id, kind: kind)
    }
}

/// Plugin libraries written in C (`Fixtures/ctree.c`), compiled by the tests with the C compiler
/// the Swift toolchain ships: plugins built outside any Swift package, by another compiler. The
/// plain build offers `codec.ctree`; each broken variant is a library the loader must refuse.
enum CFixture: String, CaseIterable, Sendable {
    case codec = ""
    case badABI = "FIXTURE_BAD_ABI"
    case nullTable = "FIXTURE_NULL_TABLE"
    case badManifest = "FIXTURE_BAD_MANIFEST"
    case unknownKind = "FIXTURE_UNKNOWN_KIND"
    case retiredABI = "FIXTURE_RETIRED_ABI"
    case noEntry = "FIXTURE_NO_ENTRY"

    /// The C compiler: `clang` next to `swift`, or `cc`.
    static let compiler: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"
        for name in ["clang", "cc"] {
            for dir in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
                return "\(dir)/\(name)"
            }
        }
        return nil
    }()

    /// The package's root, from this file's place in it.
    static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    private static let builds = NIOLockedValueBox<[CFixture: Task<String, any Error>]>([:])
    private static let folder = try? TemporaryDirectory()

    /// The library's path, compiled on first use (once per test process; the tests that need
    /// it meanwhile wait for the one compilation without blocking a thread).
    func library() async throws -> String {
        let build = Self.builds.withLockedValue { builds in
            if let build = builds[self] { return build }
            let build = Task { try await self.compile() }
            builds[self] = build
            return build
        }
        return try await build.value
    }

    private func compile() async throws -> String {
        guard let compiler = Self.compiler, let folder = Self.folder else {
            throw CohortError(.internal, "no C compiler on PATH to build the C plugin fixtures")
        }
        let output = folder.file("libctree\(rawValue.isEmpty ? "" : "-" + rawValue).so")
        var arguments = ["-shared", "-fPIC", "-w", "-I", Self.packageRoot + "/Sources/CCohortPluginABI/include", "-o", output, Self.packageRoot + "/Tests/CohortPluginTests/Fixtures/ctree.c"]
        if !rawValue.isEmpty { arguments.append("-D" + rawValue) }
        let result = try await ChildProcess.run(compiler, arguments, timeout: 120)
        guard result.status == 0 else {
            throw CohortError(.internal, "compiling the C fixture \(self) failed: \(result.stderr)")
        }
        return output
    }

    /// Whether the fixtures can be built here.
    static var available: Bool { compiler != nil }
}

/// Resolves symbolic links, so paths can be compared.
func realPath(_ path: String) -> String { URL(fileURLWithPath: path).resolvingSymlinksInPath().path }

/// A temporary directory removed on deinit.
final class TemporaryDirectory: @unchecked Sendable {
    let path: String

    init() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-plugin-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        path = base.path
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Writes a members file atomically (write to a temporary file, then rename), so a poller never
/// sees it half written.
func writeMembers(_ endpoints: [Endpoint], to path: String, comment: String = "members") throws {
    let text = "# \(comment)\n\n" + endpoints.map { "\($0)   # a member" }.joined(separator: "\n") + "\n"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

/// A greeting used to check that messages really cross a cluster.
struct PluginGreeting: ClusterMessage, Equatable {
    static let messageType = MessageType(3101)
    var text: String
    var number: Int
}

/// Nodes of one in-process cluster, each with its own run task; stops them all.
final class RunningNodes: @unchecked Sendable {
    private(set) var channels: [GroupChannel] = []
    private var tasks: [Task<Void, any Error>] = []

    subscript(index: Int) -> GroupChannel { channels[index] }

    /// Starts a channel and waits until it listens.
    @discardableResult
    func start(_ channel: GroupChannel) async throws -> Endpoint {
        channels.append(channel)
        tasks.append(Task { try await channel.run() })
        return try await channel.waitUntilRunning()
    }

    /// Waits until every node sees `count - 1` others (woken by membership events).
    func waitForMesh(_ count: Int, timeout: Duration = .seconds(60)) async -> Bool {
        for channel in channels {
            do { try await channel.waitForMembers(count - 1, timeout: timeout) } catch { return false }
        }
        return true
    }

    var views: String { channels.map { "\($0.configuration.name): \($0.view.members.map(\.name).sorted())" }.joined(separator: "; ") }

    /// Stops every node and waits for their run tasks.
    func stop() async {
        for channel in channels { channel.shutdown() }
        for task in tasks { _ = try? await task.value }
    }
}

/// Runs `body` with a fresh set of nodes and stops them all afterwards, also when it throws.
func withNodes<T>(_ body: (RunningNodes) async throws -> T) async throws -> T {
    let nodes = RunningNodes()
    do {
        let result = try await body(nodes)
        await nodes.stop()
        return result
    } catch {
        await nodes.stop()
        throw error
    }
}

/// A configuration for a test node on 127.0.0.1 with a free port and quick timers.
func testConfiguration(_ name: String) -> ClusterConfiguration {
    var configuration = ClusterConfiguration(name: name, listen: Endpoint(host: "127.0.0.1", port: 0))
    configuration.sendTimeout = .seconds(10)
    configuration.applyTestTiming()
    return configuration
}

/// A logger that drops everything below errors.
var quietLogger: Logger {
    var logger = Logger(label: "cohort.plugin-tests")
    logger.logLevel = .error
    return logger
}
