import Cohort
import CohortCodecBinary
import CohortDiscoveryStatic
import CohortTestKit
import InMemoryTracing
import Logging
import MetricsTestKit
import Testing
import Tracing

/// The channel's metrics carry the node's name (`node`), and acknowledged sends are
/// `cohort.send` spans (asynchronous ones are not), read back from MetricsTestKit's `TestMetrics`
/// and swift-distributed-tracing's `InMemoryTracer`.
@Suite("Channel metrics and spans", .timeLimit(.minutes(1)))
struct ChannelObservabilityTests {
    /// Two channels over an in-memory network, each with its own metrics and tracer.
    func withPair(_ body: ([GroupChannel], [TestMetrics], [InMemoryTracer]) async throws -> Void) async throws {
        let network = InMemoryNetwork()
        var quiet = Logger(label: "test")
        quiet.logLevel = .error
        let metrics = [TestMetrics(), TestMetrics()]
        let tracers = [InMemoryTracer(), InMemoryTracer()]
        var channels: [GroupChannel] = []
        var tasks: [Task<Void, any Error>] = []
        var endpoints: [Endpoint] = []
        for i in 0..<2 {
            let configuration = ClusterConfiguration(name: "obs\(i + 1)", listen: Endpoint(host: "127.0.0.1", port: 0), members: endpoints)
            let channel = GroupChannel(
                configuration: configuration, transport: network.makeTransport(), codec: BinaryCodec(),
                discovery: StaticDiscovery(endpoints: endpoints, interval: .milliseconds(100)), logger: quiet,
                metricsFactory: metrics[i], tracer: tracers[i]
            )
            try channel.onMessage(Ping.self) { _, _ in }
            channels.append(channel)
            tasks.append(Task { try await channel.run() })
            endpoints.append(try await channel.waitUntilRunning())
        }
        do {
            for channel in channels { try await channel.waitForMembers(1) }
            try await body(channels, metrics, tracers)
        } catch {
            for channel in channels { channel.shutdown() }
            throw error
        }
        for channel in channels { channel.shutdown() }
        for task in tasks { _ = try? await task.value }
    }

    @Test func channelMetricsCarryTheNodesName() async throws {
        try await withPair { channels, metrics, _ in
            _ = try await channels[0].send(Ping(n: 1))
            _ = try await channels[0].send(Ping(n: 2), options: .asynchronous)
            #expect(try metrics[0].expectCounter("cohort.messages.sent", [("node", "obs1")]).totalValue == 2)
            #expect(try metrics[0].expectGauge("cohort.members", [("node", "obs1")]).lastValue == 1)
            #expect(try metrics[0].expectGauge("cohort.quorum", [("node", "obs1")]).lastValue == 1)
            #expect(try metrics[1].expectCounter("cohort.messages.received", [("node", "obs2")]).totalValue >= 1)
            #expect(try metrics[1].expectCounter("cohort.messages.sent", [("node", "obs2")]).totalValue == 0)
            // The failure detector's instruments exist from the start, under the same label.
            #expect(try metrics[0].expectCounter("cohort.failure_detector.suspicions", [("node", "obs1")]).totalValue == 0)
            #expect(metrics[0].counters.allSatisfy { counter in counter.dimensions.contains { $0 == ("node", "obs1") } })
        }
    }

    @Test func acknowledgedSendsAreSpansAndAsynchronousOnesAreNot() async throws {
        try await withPair { channels, _, tracers in
            let report = try await tracers[0].withSpan("request") { _ in
                try await channels[0].send(Ping(n: 1))
            }
            #expect(report.allSucceeded)
            _ = try await channels[0].send(Ping(n: 2), options: .asynchronous)
            _ = try await channels[0].send(Ping(n: 3), options: .receipt)
            let spans = tracers[0].finishedSpans
            let sends = spans.filter { $0.operationName == "cohort.send" }
            #expect(sends.count == 2, "one span per acknowledged send: \(spans.map(\.operationName))")
            let request = try #require(spans.first { $0.operationName == "request" })
            let first = try #require(sends.first)
            #expect(first.parentSpanID == request.spanID, "the send's span is a child of the caller's")
            #expect(first.kind == .client)
            #expect(first.attributes.get("cohort.node") == .string("obs1"))
            #expect(first.attributes.get("cohort.send.members") == .int64(1))
            #expect(first.attributes.get("cohort.send.failures") == .int64(0))
            #expect(first.attributes.get("cohort.send.guarantee") == .string("\(DeliveryGuarantee.processed)"))
            #expect(sends.last?.attributes.get("cohort.send.guarantee") == .string("\(DeliveryGuarantee.receipt)"))
            #expect(first.status == nil)
        }
    }

    @Test func aSendThatFailsForAMemberEndsItsSpanAsAnError() async throws {
        try await withPair { channels, _, tracers in
            // The receiver refuses an unregistered type: the member's outcome is a failure.
            let report = try await channels[0].send(Boom())
            #expect(!report.allSucceeded)
            let span = try #require(tracers[0].finishedSpans.first { $0.operationName == "cohort.send" })
            #expect(span.attributes.get("cohort.send.failures") == .int64(1))
            #expect(span.status?.code == .error)
        }
    }
}
