import Cohort
import CohortCodecBinary
import CohortDiscoveryStatic
import CohortPluginSDK
import CohortTestKit
import CohortTransportTCP
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// A stage that scrambles payloads outbound, restores them inbound, and refuses one type.
struct ScrambleStage: Interceptor {
    static let refusedType = MessageType(4242)
    var name: String { "scramble" }

    static func flip(_ buffer: ByteBuffer) -> ByteBuffer {
        ByteBuffer(bytes: buffer.readableBytesView.map { $0 ^ 0x5A })
    }

    func send(_ message: OutboundMessage, to members: [Member], next: InterceptorNext) async -> SendReport {
        guard message.type != Self.refusedType else {
            return SendReport(outcomes: members.map { ($0.id, .rejected("scramble refuses type 4242")) })
        }
        var scrambled = message
        scrambled.payload = Self.flip(message.payload)
        return await next.send(scrambled, to: members)
    }

    func receive(_ message: InboundMessage, next: InterceptorNext) async -> DeliveryResult {
        var restored = message
        restored.payload = Self.flip(message.payload)
        return await next.receive(restored)
    }
}

struct ScramblePlugin: PluginFactory {
    var id: String { "interceptor.scramble" }
    var kind: PluginKind { .interceptor }
    var version: String { "1.0.0" }
    var summary: String { "scrambles payloads (test)" }
    func makeInterceptor(settings: PluginSettings) throws -> any Interceptor { ScrambleStage() }
}

/// The interceptor plugin kind across the C boundary: the factory is exported into a C table
/// (`PluginExport`, as a library's `cohort_plugin_entry` does) and imported back
/// (`PluginImport`, as the loader does after `dlopen`), so every call goes through the table's
/// ports as operation numbers and bytes. (This test process exports no other table.)
@Suite("Interceptor plugins", .timeLimit(.minutes(2)))
struct InterceptorPluginTests {
    static let factories: [any PluginFactory] = {
        (try? PluginImport.factories(entry: PluginExport.entry([ScramblePlugin()]), path: "in-process table")) ?? []
    }()

    func registry() throws -> PluginRegistry {
        let registry = PluginRegistry()
        for factory in Self.factories { try registry.register(factory, origin: .file("in-process table")) }
        return registry
    }

    @Test func aLoadedInterceptorTransformsBothWaysAndCanRefuse() async throws {
        let factory = try registry().factory("scramble", kind: .interceptor)
        #expect(factory.kind == .interceptor)
        let stage = try factory.makeInterceptor(settings: PluginSettings())
        #expect(stage.name == "scramble")
        let wire = NIOLockedValueBox<[ByteBuffer]>([])
        let delivered = NIOLockedValueBox<[ByteBuffer]>([])
        let chain = InterceptorChain(stages: [stage], ends: ChainEnds(
            transmit: { message, members in
                wire.withLockedValue { $0.append(message.payload) }
                return SendReport(outcomes: members.map { ($0.id, .delivered) })
            },
            dispatch: { message in
                delivered.withLockedValue { $0.append(message.payload) }
                return .processed
            },
            signal: { _ in }
        ))
        let member = Member(name: "b", endpoint: Endpoint(host: "127.0.0.1", port: 2), startTime: 2)
        let payload = ByteBuffer(string: "hello through the boundary")
        let report = await chain.send(OutboundMessage(type: MessageType(2001), codec: .binary, payload: payload, options: .processed), to: [member])
        #expect(report.allSucceeded)
        let scrambled = try #require(wire.withLockedValue { $0.first })
        #expect(scrambled == ScrambleStage.flip(payload))
        let result = await chain.receive(InboundMessage(sender: member, type: MessageType(2001), codec: .binary, payload: scrambled, guarantee: .processed))
        #expect(result == .processed)
        #expect(delivered.withLockedValue { $0 } == [payload])
        let refused = await chain.send(OutboundMessage(type: ScrambleStage.refusedType, codec: .binary, payload: payload, options: .processed), to: [member])
        #expect(refused.outcomes.first?.outcome == .rejected("scramble refuses type 4242"))
        #expect(wire.withLockedValue { $0.count } == 1, "a refused message never reaches the stages below")
    }

    @Test func aLoadedInterceptorNamedInConfigurationRunsOverTCP() async throws {
        var quiet = Logger(label: "cohort")
        quiet.logLevel = .error
        let received = NIOLockedValueBox<[String]>([])
        var channels: [GroupChannel] = []
        var tasks: [Task<Void, any Error>] = []
        var endpoints: [Endpoint] = []
        for i in 0..<2 {
            var configuration = ClusterConfiguration(name: "node\(i + 1)", listen: Endpoint(host: "127.0.0.1", port: 0), members: endpoints)
            configuration.interceptors = ["scramble", "dispatch", "failureDetector", "domainFilter"]
            let channel = GroupChannel(
                configuration: configuration, transport: TCPTransport(settings: configuration.wire), codec: BinaryCodec(),
                discovery: StaticDiscovery(endpoints: endpoints, interval: .milliseconds(100)), logger: quiet, registry: try registry()
            )
            #expect(channel.configurationError == nil)
            try channel.onMessage(TextMessage.self) { message, _ in received.withLockedValue { $0.append(message.text) } }
            tasks.append(Task { try await channel.run() })
            endpoints.append(try await channel.waitUntilRunning())
            channels.append(channel)
        }
        for channel in channels { try await channel.waitForMembers(1, timeout: .seconds(60)) }
        let report = try await channels[0].send(TextMessage("through a loaded stage"), options: SendOptions(guarantee: .processed, timeout: .seconds(300)))
        #expect(report.allSucceeded, "\(report)")
        #expect(received.withLockedValue { $0 } == ["through a loaded stage"])
        for channel in channels { channel.shutdown() }
        for task in tasks { _ = try? await task.value }
    }

    @Test func anUnknownPluginNameIsRefusedAtStart() async throws {
        var configuration = ClusterConfiguration(name: "n", listen: Endpoint(host: "127.0.0.1", port: 0))
        configuration.interceptors = ["scrambler", "dispatch"]
        let channel = GroupChannel(
            configuration: configuration, transport: TCPTransport(settings: configuration.wire), codec: BinaryCodec(),
            discovery: StaticDiscovery(endpoints: []), registry: try registry()
        )
        let error = await #expect(throws: CohortError.self) { try await channel.run() }
        #expect(error?.message.contains("'scrambler'") == true)
    }
}
