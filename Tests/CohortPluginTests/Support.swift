import Cohort
import CohortTestKit
import Foundation
import Testing

/// The plugin libraries `swift build` puts next to the test binary.
enum PluginFiles {
    /// The folder of the test binary, where SwiftPM also puts every product.
    static var directory: String { PluginLoader.executableDirectory }

    /// The path of `lib<product>.so` next to the test binary.
    static func path(_ product: String) -> String { directory + "/lib\(product).so" }

    static let tcp = "CohortTransportTCPPlugin"
    static let binary = "CohortCodecBinaryPlugin"
    static let json = "CohortCodecJSONPlugin"
    static let staticDiscovery = "CohortDiscoveryStaticPlugin"
    static let fileDiscovery = "CohortExampleFileDiscovery"
    static let badABI = "CohortFixtureBadABI"
    static let noEntry = "CohortFixtureNoEntry"
    static let wrongStamp = "CohortFixtureWrongStamp"

    /// Every library the tests load.
    static let all = [tcp, binary, json, staticDiscovery, fileDiscovery, badABI, noEntry, wrongStamp]

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

/// The file of the image (executable or shared library) that defines a type's metadata, so a
/// test can prove an instance came from a loaded plugin and not from the statically linked copy.
///
/// It looks the metadata's address up in `/proc/self/maps` (Linux).
func imagePath(definingTypeOf value: Any) -> String? {
    let address = UInt(bitPattern: unsafeBitCast(type(of: value) as Any.Type, to: UnsafeRawPointer.self))
    guard let maps = readWholeFile("/proc/self/maps") else { return nil }
    for line in maps.split(separator: "\n") {
        // start-end perms offset dev inode [path]
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count == 6 else { continue }
        let range = fields[0].split(separator: "-")
        guard range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16) else { continue }
        if start <= address && address < end {
            let path = fields[5].trimmingCharacters(in: .whitespaces)
            return path.hasPrefix("/") ? realPath(path) : nil
        }
    }
    return nil
}

/// Reads a file to its end with plain `read(2)` calls (files under /proc report size 0, and a
/// reader that trusts the size can stop early).
func readWholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return String(decoding: bytes, as: UTF8.self)
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

    /// Waits until every node sees `count - 1` others.
    func waitForMesh(_ count: Int, timeout: Duration = .seconds(20)) async -> Bool {
        await eventually(timeout: timeout, poll: .milliseconds(20)) {
            channels.allSatisfy { $0.view.members.count == count - 1 }
        }
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
    return configuration
}

/// A logger that drops everything below errors.
var quietLogger: Logger {
    var logger = Logger(label: "cohort.plugin-tests")
    logger.logLevel = .error
    return logger
}
