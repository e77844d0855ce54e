// One message to K = 1, 3, 8 members. The point: the work per message, and above all the number
// of allocations per message, must not grow with K — the chain runs once per message and the
// transport hands the same buffer to every destination.
//
// Two variants:
// - "chain": an InterceptorChain with realistic stages (a pass-through application stage,
//   MessageDispatch, TcpFailureDetector) over an in-process fan-out that, like the TCP transport,
//   builds the frame once and appends that same ByteBuffer to K connections' write rings on one
//   "event loop" (a lock). No task, no socket: chain + fan-out only.
// - "channel": a real GroupChannel over InMemoryNetwork/InMemoryTransport, sending with the
//   asynchronous guarantee. Encoding is included. The receivers are parked (their handler waits
//   at a gate on a first message) while the sends are measured, so the numbers are the sender's
//   own; the parked messages are released and counted after each measured batch.
import Benchmark
import Cohort
import CohortBenchSupport
import CohortTestKit
import Synchronization
import CohortCodecBinary
import CohortDiscoveryStatic
import NIOConcurrencyHelpers
import NIOCore

let fanOuts = [1, 3, 8]

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal, .mallocBytesCount]

    for k in fanOuts {
        let bench = ChainBench(fanOut: k)
        Benchmark(
            "FanOut chain K=\(k)",
            configuration: .init(
                metrics: metrics, warmupIterations: 3, scalingFactor: .kilo, maxDuration: .seconds(2), maxIterations: 2_000,
                // Counted per 1,000 messages (Thresholds/): a tolerance of 100 absorbs the odd
                // allocation per batch, one more allocation per message (+1,000) fails
                // `scripts/bench --check`.
                thresholds: [.mallocCountTotal: .init(absolute: [.p90: 100])]
            )
        ) { benchmark in
            let chain = bench.chain
            let message = bench.message
            let members = bench.members
            let before = bench.connections.framesWritten
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(await chain.send(message, to: members))
            }
            benchmark.stopMeasurement()
            if bench.connections.framesWritten - before != benchmark.scaledIterations.count * k {
                benchmark.error("the fan-out did not reach all \(k) connections")
            }
        }
    }

    for k in fanOuts {
        let bench = ChannelBench(fanOut: k)
        Benchmark(
            "FanOut channel in-memory async K=\(k)",
            configuration: .init(
                metrics: metrics, warmupIterations: 2, scalingFactor: .kilo, maxDuration: .seconds(3), maxIterations: 500,
                // As above; the tasks of the parked receivers add a few allocations per batch.
                thresholds: [.mallocCountTotal: .init(absolute: [.p90: 100])]
            )
        ) { benchmark in
            try await bench.measureBatch(benchmark)
        } setup: {
            try await bench.start()
        } teardown: {
            await bench.stop()
        }
    }
}

// MARK: - chain over in-process connections

/// A stage that only passes messages on, standing for an application's own interceptor.
struct PassThrough: Interceptor {
    var name: String { "passThrough" }
}

/// K in-memory connections served by one "event loop".
///
/// The TCP transport keeps every outbound connection on one event loop, so a fan-out is one
/// task there that writes the same frame to each connection. Here the loop is a lock and each
/// connection's pending writes are a preallocated ring: appending stores a reference to the
/// shared frame, it copies no bytes and allocates nothing.
final class RingConnections: @unchecked Sendable {
    private struct Ring {
        var slots: [ByteBuffer?]
        var head = 0

        mutating func append(_ frame: ByteBuffer) {
            slots[head] = frame
            head += 1
            if head == slots.count { head = 0 }
        }
    }

    private let lock = NIOLock()
    private var rings: [Ring]
    private let slotOf: [MemberID: Int]
    private var written = 0

    init(members: [Member], depth: Int = 1024) {
        rings = Array(repeating: Ring(slots: Array(repeating: nil, count: depth)), count: members.count)
        var slotOf: [MemberID: Int] = [:]
        for (i, member) in members.enumerated() { slotOf[member.id] = i }
        self.slotOf = slotOf
    }

    /// Appends the same frame to the ring of every member's connection.
    func write(_ frame: ByteBuffer, to members: [Member]) {
        lock.withLock {
            for member in members {
                guard let slot = slotOf[member.id] else { continue }
                rings[slot].append(frame)
                written += 1
            }
        }
    }

    /// Frames written so far, over all connections.
    var framesWritten: Int { lock.withLock { written } }
}

/// The chain, its K destinations and one encoded 1 KiB message.
final class ChainBench: Sendable {
    let members: [Member]
    let connections: RingConnections
    let chain: InterceptorChain
    let message: OutboundMessage

    init(fanOut: Int) {
        let members = (0..<fanOut).map { i in
            Member(name: "member-\(i)", endpoint: Endpoint(host: "127.0.0.1", port: 4100 + i), startTime: Int64(i))
        }
        let connections = RingConnections(members: members)
        let allocator = ByteBufferAllocator()
        let sequence = Atomic<UInt64>(0)
        self.members = members
        self.connections = connections
        self.chain = InterceptorChain(
            stages: [
                PassThrough(),
                MessageDispatch(report: { _ in }, members: { _ in nil }),
                TcpFailureDetector(),
            ],
            ends: ChainEnds(
                transmit: { message, members in
                    // As the TCP transport does: one frame per message (header, sequence, type,
                    // flags, payload), the same buffer for every destination.
                    let bodyLength = 16 + message.payload.readableBytes
                    var frame = allocator.buffer(capacity: WireFormat.headerSize + bodyLength)
                    WireFormat.writeHeader(
                        kind: .data,
                        codec: message.codec.rawValue,
                        guarantee: message.options.guarantee.rawValue,
                        length: bodyLength,
                        into: &frame
                    )
                    frame.writeInteger(sequence.add(1, ordering: .relaxed).newValue)
                    frame.writeInteger(message.type.rawValue)
                    frame.writeInteger(message.options.flags)
                    frame.writeImmutableBuffer(message.payload)
                    connections.write(frame, to: members)
                    var report = SendReport()
                    report.outcomes.reserveCapacity(members.count)
                    for member in members { report.outcomes.append((member.id, .queued)) }
                    return report
                },
                dispatch: { _ in .processed },
                signal: { _ in }
            )
        )
        let payload: ByteBuffer
        do {
            payload = try BinaryCodec().encode(BenchMessage.sample())
        } catch {
            fatalError("cannot encode the benchmark message: \(error)")
        }
        self.message = OutboundMessage(type: BenchMessage.messageType, codec: .binary, payload: payload, options: .asynchronous)
    }
}

// MARK: - GroupChannel over InMemoryTransport

/// One sender and K receivers on an in-memory network, for one benchmark.
///
/// Touched only by the benchmark's setup, iterations and teardown, which run one after another.
final class ChannelBench: @unchecked Sendable {
    let fanOut: Int
    let gate = Gate()
    let counters: [DeliveryCounter]
    let message = BenchMessage.sample()
    private var cluster: RunningCluster?
    private var expected = 0

    init(fanOut: Int) {
        self.fanOut = fanOut
        self.counters = (0..<fanOut).map { _ in DeliveryCounter() }
    }

    func start() async throws {
        let network = InMemoryNetwork()
        func node(_ name: String, members: [Endpoint]) -> GroupChannel {
            GroupChannel(
                configuration: ClusterConfiguration(name: name, listen: Endpoint(host: "memory", port: 0), members: members),
                transport: network.makeTransport(),
                codec: BinaryCodec(),
                discovery: StaticDiscovery(endpoints: members),
                logger: quietLogger()
            )
        }
        var receivers: [GroupChannel] = []
        for (i, counter) in counters.enumerated() {
            let receiver = node("receiver-\(i)", members: [])
            try receiver.onMessage(BenchMessage.self) { [gate] _, _ in
                await gate.pass()
                counter.increment()
            }
            receivers.append(receiver)
        }
        expected = 0
        gate.open()
        cluster = try await RunningCluster(receivers: receivers) { endpoints in
            let sender = node("sender", members: endpoints)
            try sender.register(BenchMessage.self)
            return sender
        }
    }

    func stop() async {
        gate.open()
        await cluster?.stop()
        cluster = nil
    }

    /// Parks the receivers, measures a batch of asynchronous sends, then releases the receivers
    /// and waits until each has handled every message of the batch.
    func measureBatch(_ benchmark: Benchmark) async throws {
        guard let sender = cluster?.sender else { throw BenchFailure("the cluster did not start") }
        let fanOut = self.fanOut
        gate.close()
        let plug = try await sender.send(message, options: .asynchronous)
        guard plug.allSucceeded, plug.count == fanOut else { throw BenchFailure("send to \(fanOut) receivers failed: \(plug)") }
        try await waitUntil("\(fanOut) receivers to park at the gate") { gate.waiting == fanOut }

        var failed = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let report = try await sender.send(message, options: .asynchronous)
            if !report.allSucceeded { failed += 1 }
        }
        benchmark.stopMeasurement()

        gate.open()
        expected += benchmark.scaledIterations.count + 1
        let target = expected
        try await waitUntil("every receiver to handle \(target) messages", timeout: .seconds(30)) {
            counters.allSatisfy { $0.value >= target }
        }
        if failed > 0 { throw BenchFailure("\(failed) asynchronous sends were not queued for every receiver") }
    }
}
