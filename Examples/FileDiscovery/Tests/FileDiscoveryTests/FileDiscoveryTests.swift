import Cohort
import CohortCodecBinary
import CohortExampleFileDiscovery
import CohortTestKit
import CohortTransportTCP
import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing

/// The library `swift build` puts next to the test binary.
enum Library {
    static var path: String { PluginLoader.executableDirectory + "/" + PluginLoader.libraryFileName("CohortExampleFileDiscovery") }
    static var built: Bool { FileManager.default.fileExists(atPath: path) }

    /// The loaded library's factory, in a registry of its own.
    static func factory() throws -> any PluginFactory {
        let registry = PluginRegistry()
        try PluginLoader.load(path, into: registry)
        return try registry.factory("discovery.file", kind: .discovery)
    }
}

/// The example plugin, loaded from the shared library this package builds (through the C
/// boundary, as the `cohort` executable loads it): parsing, watching, keeping the last list when
/// the file cannot be read, and a cluster that finds a member added to the file later.
@Suite("Example file discovery", .enabled(if: Library.built, "libCohortExampleFileDiscovery is not built next to the tests (run swift build)"), .timeLimit(.minutes(1)))
struct FileDiscoveryTests {
    /// Runs the loaded provider on a file and records what it reports and logs.
    final class Watch: Sendable {
        let events = NIOLockedValueBox<[DiscoveryEvent]>([])
        let logs = LogCapture(level: .debug)
        let task: NIOLockedValueBox<Task<Void, any Error>?> = NIOLockedValueBox(nil)
        let local = Member(name: "me", endpoint: Endpoint(host: "127.0.0.1", port: 4900), startTime: 0)

        init(file: String, settings extra: [String: String] = [:]) throws {
            let provider = try Library.factory().makeDiscovery(
                settings: PluginSettings(values: ["path": file, "interval_ms": "20"].merging(extra) { $1 }, logger: logs.logger("file"))
            )
            let events = self.events
            let local = self.local
            task.withLockedValue { $0 = Task { try await provider.run(local: local) { event in events.withLockedValue { $0.append(event) } } } }
        }

        var candidateLists: [[Endpoint]] {
            events.withLockedValue { $0 }.compactMap { if case .candidates(let list) = $0 { return list } else { return nil } }
        }

        func warnings(containing text: String) -> [LogCapture.Entry] {
            logs.lines(containing: text).filter { $0.level == .warning }
        }

        func stop() { task.withLockedValue { $0?.cancel() } }
    }

    private let a = Endpoint(host: "127.0.0.1", port: 4901)
    private let b = Endpoint(host: "10.0.0.2", port: 4902)
    private let c = Endpoint(host: "::1", port: 4903)

    @Test func theLibraryIsAPluginOfTheCurrentABI() throws {
        let registry = PluginRegistry()
        let loaded = try PluginLoader.load(Library.path, into: registry)
        #expect(loaded.map(\.id) == ["discovery.file"])
        #expect(loaded.first?.version == "1.0.0")
        #expect(loaded.first?.origin == .file(Library.path))
    }

    @Test func readsAddressesSkippingCommentsBlankLinesAndTheLocalMember() async throws {
        let dir = try TemporaryFolder()
        let file = dir.file("members.txt")
        try """
            # members of the test cluster

              127.0.0.1:4901   # first
            10.0.0.2:4902
            127.0.0.1:4900
            not-an-address
            [::1]:4903
            127.0.0.1:4901
            \r
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let watch = try Watch(file: file)
        defer { watch.stop() }
        #expect(await eventually(timeout: .seconds(5)) { !watch.candidateLists.isEmpty })
        // In file order, without duplicates, without the local member's own address.
        #expect(watch.candidateLists.first == [a, b, c])
        // The plugin's warning reached the host's logger across the boundary.
        #expect(await eventually(timeout: .seconds(5)) { watch.warnings(containing: "line 6 skipped").count == 1 }, "\(watch.logs.text)")
    }

    @Test func reportsAgainOnlyWhenTheFileChanges() async throws {
        let dir = try TemporaryFolder()
        let file = dir.file("members.txt")
        try writeMembers([a], to: file)
        let watch = try Watch(file: file)
        defer { watch.stop() }
        #expect(await eventually(timeout: .seconds(5)) { watch.candidateLists.count == 1 })
        try writeMembers([a, b], to: file)
        #expect(await eventually(timeout: .seconds(5)) { watch.candidateLists.count == 2 })
        try writeMembers([b], to: file)
        #expect(await eventually(timeout: .seconds(5)) { watch.candidateLists.count == 3 })
        #expect(watch.candidateLists == [[a], [a, b], [b]])
    }

    @Test func keepsTheLastListWhenTheFileBecomesUnreadable() async throws {
        let dir = try TemporaryFolder()
        let file = dir.file("members.txt")
        try writeMembers([a, b], to: file)
        let watch = try Watch(file: file)
        defer { watch.stop() }
        #expect(await eventually(timeout: .seconds(5)) { watch.candidateLists == [[a, b]] })

        try FileManager.default.removeItem(atPath: file)
        #expect(await eventually(timeout: .seconds(5)) { !watch.warnings(containing: "cannot be read").isEmpty }, "\(watch.logs.text)")
        #expect(watch.warnings(containing: "keeping the last list").count == 1)
        // The failing polls report nothing: the list in force stays [a, b].
        #expect(watch.candidateLists == [[a, b]])

        // Readable again, with a change: reported. A failure streak is logged once.
        try writeMembers([a, b, c], to: file)
        #expect(await eventually(timeout: .seconds(5)) { watch.candidateLists.count == 2 })
        #expect(watch.candidateLists == [[a, b], [a, b, c]])
        #expect(watch.warnings(containing: "cannot be read").count == 1, "\(watch.logs.text)")
    }

    @Test func settingsAreChecked() throws {
        let factory = try Library.factory()
        let missing = #expect(throws: CohortError.self) { try factory.makeDiscovery(settings: PluginSettings()) }
        #expect(missing?.code == .badConfiguration)
        #expect(missing?.message.contains("'path'") == true)
        let badInterval = #expect(throws: CohortError.self) {
            try factory.makeDiscovery(settings: PluginSettings(values: ["path": "x", "interval_ms": "soon"]))
        }
        #expect(badInterval?.message.contains("interval_ms") == true)
        #expect(throws: CohortError.self) { try factory.makeTransport(settings: PluginSettings()) }
        #expect(factory.version == "1.0.0")
    }

    @Test func aClusterFindsAMemberAddedToTheFileLater() async throws {
        let dir = try TemporaryFolder()
        let shared = dir.file("members.txt")
        let lonely = dir.file("nobody.txt")
        try writeMembers([], to: shared)
        try writeMembers([], to: lonely)
        let factory = try Library.factory()
        var channels: [GroupChannel] = []
        var tasks: [Task<Void, any Error>] = []
        defer {
            for channel in channels { channel.shutdown() }
        }

        func start(_ name: String, file: String) async throws -> Endpoint {
            var configuration = ClusterConfiguration(name: name, listen: Endpoint(host: "127.0.0.1", port: 0))
            configuration.sendTimeout = .seconds(10)
            let discovery = try factory.makeDiscovery(settings: PluginSettings(values: ["path": file, "interval_ms": "50"]))
            var logger = Logger(label: "example")
            logger.logLevel = .error
            let channel = GroupChannel(configuration: configuration, transport: TCPTransport(settings: configuration.wire), codec: BinaryCodec(), discovery: discovery, logger: logger)
            channels.append(channel)
            tasks.append(Task { try await channel.run() })
            return try await channel.waitUntilRunning()
        }

        func mesh(_ count: Int) async -> Bool {
            await eventually(timeout: .seconds(20), poll: .milliseconds(20)) { channels.allSatisfy { $0.view.members.count == count - 1 } }
        }

        // Two nodes watch the shared file, empty at first.
        let first = try await start("file1", file: shared)
        let second = try await start("file2", file: shared)
        try writeMembers([first, second], to: shared)
        #expect(await mesh(2))

        // A third node whose own file names nobody is found only because the other two see it
        // appear in their file.
        let third = try await start("file3", file: lonely)
        try writeMembers([first, second, third], to: shared, comment: "a member was added")
        #expect(await mesh(3), "\(channels.map { "\($0.configuration.name): \($0.view.members.map(\.name))" })")

        for channel in channels { channel.shutdown() }
        for task in tasks { _ = try? await task.value }
    }
}

/// A temporary folder removed on deinit.
final class TemporaryFolder: @unchecked Sendable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-file-discovery-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Writes a members file atomically, so a poller never sees it half written.
func writeMembers(_ endpoints: [Endpoint], to path: String, comment: String = "members") throws {
    let text = "# \(comment)\n\n" + endpoints.map { "\($0)   # a member" }.joined(separator: "\n") + "\n"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}
