// Real GroupChannels with the TCP transport on 127.0.0.1: one sender, three receivers, 1 KiB
// messages. Every channel runs in-process, in a task started by the benchmark's setup and shut
// down in its teardown; each benchmark gets a cluster of its own (fresh ports).
//
// - "async throughput": 1,000 asynchronous sends per iteration, and the iteration ends only when
//   every receiver's handler has counted every message, so the time per message (and msgs/s) is
//   delivered messages, not queued ones.
// - "processed latency": one `.processed` send per iteration, which returns once all three
//   receivers' handlers have finished; the wall-clock percentiles are the round-trip latency.
import Benchmark
import Cohort
import CohortBenchSupport

let receiverCount = 3

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal, .mallocBytesCount]

    let throughput = LoopbackBench()
    Benchmark(
        "Loopback TCP async 1 KiB to \(receiverCount) receivers",
        configuration: .init(metrics: metrics, warmupIterations: 2, scalingFactor: .kilo, maxDuration: .seconds(5), maxIterations: 300)
    ) { benchmark in
        try await throughput.asyncBatch(benchmark)
    } setup: {
        try await throughput.start()
    } teardown: {
        await throughput.stop()
    }

    let latency = LoopbackBench()
    Benchmark(
        "Loopback TCP processed 1 KiB to \(receiverCount) receivers",
        configuration: .init(metrics: metrics, warmupIterations: 50, scalingFactor: .one, maxDuration: .seconds(5), maxIterations: 20_000)
    ) { benchmark in
        try await latency.processedSend(benchmark)
    } setup: {
        try await latency.start()
    } teardown: {
        await latency.stop()
    }
}

/// One sender and three receivers over TCP on loopback, for one benchmark.
///
/// Touched only by the benchmark's setup, iterations and teardown, which run one after another.
final class LoopbackBench: @unchecked Sendable {
    let counters: [DeliveryCounter] = (0..<receiverCount).map { _ in DeliveryCounter() }
    let message = BenchMessage.sample()
    private var cluster: RunningCluster?
    private var expected = 0

    func start() async throws {
        func node(_ name: String, members: [Endpoint]) throws -> GroupChannel {
            try GroupChannel(
                configuration: try benchConfiguration(name: name, members: members),
                logger: quietLogger()
            )
        }
        var receivers: [GroupChannel] = []
        for (i, counter) in counters.enumerated() {
            let receiver = try node("receiver-\(i)", members: [])
            try receiver.onMessage(BenchMessage.self) { _, _ in counter.increment() }
            receivers.append(receiver)
        }
        expected = counters.map(\.value).min() ?? 0
        // Receivers first: their ports are known only once bound. The sender gets them as its
        // static members; the receivers learn the sender from its incoming connections.
        cluster = try await RunningCluster(receivers: receivers) { endpoints in
            let sender = try node("sender", members: endpoints)
            try sender.register(BenchMessage.self)
            return sender
        }
    }

    func stop() async {
        await cluster?.stop()
        cluster = nil
    }

    private var sender: GroupChannel {
        get throws {
            guard let sender = cluster?.sender else { throw BenchFailure("the cluster did not start") }
            return sender
        }
    }

    /// Sends a batch asynchronously and waits until every receiver has handled all of it.
    func asyncBatch(_ benchmark: Benchmark) async throws {
        let sender = try self.sender
        var failed = 0
        for _ in benchmark.scaledIterations {
            let report = try await sender.send(message, options: .asynchronous)
            if !report.allSucceeded { failed += 1 }
        }
        expected += benchmark.scaledIterations.count
        let target = expected
        try await waitUntil("\(receiverCount) receivers to handle \(target) messages", timeout: .seconds(30)) {
            counters.allSatisfy { $0.value >= target }
        }
        if failed > 0 { throw BenchFailure("\(failed) asynchronous sends were not queued for every receiver") }
    }

    /// One send that waits until every receiver has processed the message.
    func processedSend(_ benchmark: Benchmark) async throws {
        let report = try await self.sender.send(message, options: .processed)
        guard report.allSucceeded, report.count == receiverCount else {
            throw BenchFailure("processed send did not reach all \(receiverCount) receivers: \(report)")
        }
    }
}
