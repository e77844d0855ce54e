import Cohort
import CohortCodecBinary
import CohortDiscoveryStatic
import CohortSessions
import CohortTestKit
import CohortTransportTCP
import Logging
import Testing

/// A session attribute far above the 16 MiB frame cap replicates when the channel fragments
/// messages (issue 16): two nodes over loopback TCP with the full interceptor stack.
@Suite("Large session values over loopback TCP", .timeLimit(.minutes(5)))
struct LargeValueTests {
    /// Bytes that do not compress, so the fragments carry the full 64 MiB.
    static func noise(_ count: Int) -> [UInt8] {
        var x: UInt64 = 0x2545_F491_4F6C_DD1D
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for i in words.indices {
                x ^= x << 13
                x ^= x >> 7
                x ^= x << 17
                words[i] = x
            }
        }
        return bytes
    }

    @Test func a64MiBAttributeReplicatesThroughTheFragmentingStack() async throws {
        var quiet = Logger(label: "cohort")
        quiet.logLevel = .error
        let clock = ManualClock(wallTime: .seconds(1_800_000_000))
        var channels: [GroupChannel] = []
        var tasks: [Task<Void, any Error>] = []
        var endpoints: [Endpoint] = []
        for i in 0..<2 {
            var configuration = ClusterConfiguration(name: "node\(i + 1)", listen: Endpoint(host: "127.0.0.1", port: 0), members: endpoints)
            configuration.interceptors = InterceptorStack.recommended
            configuration.sendTimeout = .seconds(300)
            let channel = GroupChannel(
                configuration: configuration, transport: TCPTransport(settings: configuration.wire), codec: BinaryCodec(),
                discovery: StaticDiscovery(endpoints: endpoints, interval: .milliseconds(100)), logger: quiet
            )
            #expect(channel.configurationError == nil)
            tasks.append(Task { try await channel.run() })
            endpoints.append(try await channel.waitUntilRunning())
            channels.append(channel)
        }
        for channel in channels { try await channel.waitForMembers(1, timeout: .seconds(60)) }
        var managers: [SessionManager] = []
        var managerTasks: [Task<Void, any Error>] = []
        for channel in channels {
            var settings = SessionManagerConfiguration(name: "app")
            settings.clock = clock
            settings.settleTime = .zero
            settings.logger = quiet
            let manager = try DeltaSessionManager(channel: channel, configuration: settings)
            managerTasks.append(Task { try await manager.run() })
            try await withDeadline(.seconds(60), "the manager to be ready") { try await manager.waitUntilReady() }
            managers.append(manager)
        }

        let value = Self.noise(64 * 1024 * 1024)
        let id = try await managers[0].createSession { try $0.setAttribute("blob", value) }.id
        let copy = try #require(try await managers[1].session(id))
        #expect(try copy.attribute("blob", as: [UInt8].self) == value)
        let fragmentation = try #require(channels[1].interceptors.first { $0 is Fragmentation } as? Fragmentation)
        #expect(fragmentation.statistics.completed >= 1)
        #expect(fragmentation.statistics.pendingBytes == 0)

        for manager in managers { manager.shutdown() }
        for task in managerTasks { _ = try? await task.value }
        for channel in channels { channel.shutdown() }
        for task in tasks { _ = try? await task.value }
    }
}
