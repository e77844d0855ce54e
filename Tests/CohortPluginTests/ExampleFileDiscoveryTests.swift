import Cohort
import CohortTestKit
import Foundation
import Testing

/// The example plugin's behaviour, through its loaded library: parsing, watching, and keeping
/// the last list when the file cannot be read.
@Suite("Example file discovery", .enabled(if: PluginFiles.allBuilt, "the plugin libraries are not built next to the tests (run swift build)"), .timeLimit(.minutes(1)))
struct ExampleFileDiscoveryTests {
    /// Runs the loaded provider on a file and records what it reports and logs.
    final class Watch: Sendable {
        let events = NIOLockedValueBox<[DiscoveryEvent]>([])
        let logs = LogCapture(level: .debug)
        let task: NIOLockedValueBox<Task<Void, any Error>?> = NIOLockedValueBox(nil)
        let local = Member(name: "me", endpoint: Endpoint(host: "127.0.0.1", port: 4900), startTime: 0)

        init(file: String, settings extra: [String: String] = [:]) throws {
            let factory = try PluginFiles.factory(PluginFiles.fileDiscovery, id: "discovery.file", kind: .discovery)
            let provider = try factory.makeDiscovery(settings: PluginSettings(values: ["path": file, "interval_ms": "20"].merging(extra) { $1 }, logger: logs.logger("file")))
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

    @Test func readsAddressesSkippingCommentsBlankLinesAndTheLocalMember() async throws {
        let dir = try TemporaryDirectory()
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
        #expect(watch.warnings(containing: "line 6 skipped").count == 1, "\(watch.logs.text)")
    }

    @Test func reportsAgainOnlyWhenTheFileChanges() async throws {
        let dir = try TemporaryDirectory()
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
        let dir = try TemporaryDirectory()
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

    @Test func aFileMissingAtStartReportsNothingUntilItAppears() async throws {
        let dir = try TemporaryDirectory()
        let file = dir.file("later.txt")
        let watch = try Watch(file: file)
        defer { watch.stop() }
        #expect(await eventually(timeout: .seconds(5)) { !watch.warnings(containing: "no addresses known yet").isEmpty }, "\(watch.logs.text)")
        let reported = watch.events.withLockedValue { $0 }
        #expect(reported.isEmpty, "an unreadable file must not be reported as an empty list: \(reported)")
        try writeMembers([c], to: file)
        #expect(await eventually(timeout: .seconds(5)) { watch.candidateLists == [[c]] })
    }

    @Test func settingsAreChecked() throws {
        let factory = try PluginFiles.factory(PluginFiles.fileDiscovery, id: "discovery.file", kind: .discovery)
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
}
