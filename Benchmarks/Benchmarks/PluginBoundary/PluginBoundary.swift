// What the plugin boundary costs: the same work through a built-in plugin (plain Swift calls) and
// through the same plugin loaded from its shared library (C table, bytes across, a tree for
// codecs), measured in one run.
//
// - "codec round trip": encode one 1 KiB message into a reused buffer and decode it again through
//   the message registry, with the built-in binary codec and with libCohortCodecBinaryPlugin.
// - "processed send": one `.processed` 1 KiB send from one node to one other over TCP on
//   loopback, with the built-in transport and with libCohortTransportTCPPlugin on both nodes.
//
// The libraries are looked up next to the benchmark executable (scripts/bench builds them) or in
// COHORT_PLUGIN_PATH.
import Benchmark
import Cohort
import CohortBenchSupport
import CohortCodecBinary
import CohortDiscoveryStatic
import Logging
import NIOCore

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]
    let codecConfiguration = Benchmark.Configuration(
        metrics: metrics,
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 2_000
    )
    let message = BenchMessage.sample()
    let registry: MessageRegistry = {
        var registry = MessageRegistry()
        try? registry.register(BenchMessage.self)
        return registry
    }()

    for variant in Variant.allCases {
        Benchmark("PluginBoundary codec round trip 1 KiB binary \(variant)", configuration: codecConfiguration) { benchmark in
            let codec = try variant.binaryCodec()
            var buffer = ByteBufferAllocator().buffer(capacity: 4096)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                buffer.clear()
                try codec.encode(message, into: &buffer)
                blackHole(try registry.decode(BenchMessage.messageType, codec: codec, from: &buffer))
            }
            benchmark.stopMeasurement()
        }
    }

    for variant in Variant.allCases {
        let pair = TransportPair(variant: variant)
        Benchmark(
            "PluginBoundary processed send 1 KiB to 1 receiver, transport \(variant)",
            configuration: .init(metrics: metrics, warmupIterations: 50, scalingFactor: .one, maxDuration: .seconds(5), maxIterations: 20_000)
        ) { _ in
            try await pair.processedSend(message)
        } setup: {
            try await pair.start()
        } teardown: {
            await pair.stop()
        }
    }
}

/// Built in, or loaded from the plugin's shared library.
enum Variant: String, CaseIterable, CustomStringConvertible {
    case builtIn = "built-in"
    case loaded

    var description: String { rawValue }

    /// A registry holding only what the library of `product` offers.
    static func loadedRegistry(_ product: String) throws -> PluginRegistry {
        let registry = PluginRegistry()
        try PluginLoader.load(product, into: registry)
        return registry
    }

    func binaryCodec() throws -> any MessageCodec {
        switch self {
        case .builtIn: return BinaryCodec()
        case .loaded:
            return try Self.loadedRegistry("CohortCodecBinaryPlugin").factory("codec.binary", kind: .codec).makeCodec(settings: PluginSettings())
        }
    }

    func transport(_ configuration: ClusterConfiguration) throws -> any Transport {
        let settings = PluginSettings(transport: configuration.wire, logger: quietLogger())
        switch self {
        case .builtIn: return try BuiltInPlugins.factories.first { $0.id == "transport.tcp" }!.makeTransport(settings: settings)
        case .loaded: return try Self.loadedRegistry("CohortTransportTCPPlugin").factory("transport.tcp", kind: .transport).makeTransport(settings: settings)
        }
    }
}

/// Two nodes on loopback whose transports are built in or loaded.
final class TransportPair: @unchecked Sendable {
    let variant: Variant
    private var cluster: RunningCluster?

    init(variant: Variant) { self.variant = variant }

    private func node(_ name: String, members: [Endpoint]) throws -> GroupChannel {
        let configuration = try benchConfiguration(name: name, members: members)
        return GroupChannel(
            configuration: configuration,
            transport: try variant.transport(configuration),
            codec: BinaryCodec(),
            discovery: StaticDiscovery(endpoints: members, interval: .milliseconds(100)),
            logger: quietLogger()
        )
    }

    func start() async throws {
        let receiver = try node("receiver", members: [])
        try receiver.onMessage(BenchMessage.self) { _, _ in }
        cluster = try await RunningCluster(receivers: [receiver]) { endpoints in
            let sender = try self.node("sender", members: endpoints)
            try sender.register(BenchMessage.self)
            return sender
        }
    }

    func stop() async {
        await cluster?.stop()
        cluster = nil
    }

    func processedSend(_ message: BenchMessage) async throws {
        guard let sender = cluster?.sender else { throw BenchFailure("the pair did not start") }
        let report = try await sender.send(message, options: .processed)
        guard report.allSucceeded, report.count == 1 else { throw BenchFailure("processed send failed: \(report)") }
    }
}
