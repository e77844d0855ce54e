// Session replication over real TCP on 127.0.0.1, with the delta session manager.
//
// - "change sync": three nodes; each iteration is one request on node 1 that sets a 1 KiB
//   attribute and commits it synchronously, so it returns only when both peers applied the
//   delta. The wall-clock percentiles are the replication latency (p50/p99), throughput is
//   requests per second.
// - "change async": the same request in asynchronous mode, 1,000 per iteration; the iteration
//   ends only when both peers have the last change, so throughput counts replicated changes.
// - "state transfer": node 1 holds 100,000 sessions of 1 KiB; each iteration starts a new node
//   and measures from the start of its session manager until it reports ready with all
//   sessions (the target is 2 s).
//
// Depends only on Cohort, CohortSessions, CohortTestKit and Benchmark.
import Benchmark
import Cohort
import CohortBenchSupport
import CohortSessions
import CohortTestKit
import Logging

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]

    let sync = ReplicationBench(mode: .synchronous)
    Benchmark(
        "Replication of a 1 KiB session change to 2 peers, TCP, sync",
        configuration: .init(metrics: metrics, warmupIterations: 200, scalingFactor: .one, maxDuration: .seconds(5), maxIterations: 20_000)
    ) { benchmark in
        try await sync.change(benchmark)
    } setup: {
        try await sync.start()
    } teardown: {
        await sync.stop()
    }

    let asynchronous = ReplicationBench(mode: .asynchronous)
    Benchmark(
        "Replication of a 1 KiB session change to 2 peers, TCP, async",
        configuration: .init(metrics: metrics, warmupIterations: 2, scalingFactor: .kilo, maxDuration: .seconds(5), maxIterations: 200)
    ) { benchmark in
        try await asynchronous.changeBatch(benchmark)
    } setup: {
        try await asynchronous.start()
    } teardown: {
        await asynchronous.stop()
    }

    let transfer = TransferBench(sessions: 100_000)
    Benchmark(
        "State transfer of 100,000 sessions of 1 KiB to a joining node, TCP",
        configuration: .init(metrics: [.wallClock, .mallocCountTotal], warmupIterations: 0, scalingFactor: .one, maxDuration: .seconds(120), maxIterations: 3)
    ) { benchmark in
        try await transfer.join(benchmark)
    } setup: {
        try await transfer.start()
    } teardown: {
        await transfer.stop()
    }
}

/// A failure that ends a benchmark.
struct ReplicationBenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One node: a TCP channel and a delta session manager, each running in a task.
struct SessionNode: Sendable {
    let channel: GroupChannel
    let manager: DeltaSessionManager
    let tasks: [Task<Void, any Error>]

    /// Starts a node that knows `members`; returns once its channel sees them all.
    static func start(_ name: String, members: [Endpoint], mode: ReplicationMode, batchSize: Int = 1000, startManager: Bool = true) async throws -> SessionNode {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let channel = try GroupChannel(
            configuration: try benchConfiguration(name: name, members: members),
            logger: logger
        )
        var configuration = SessionManagerConfiguration(name: "bench", mode: mode)
        configuration.settleTime = .zero
        configuration.transferBatchSize = batchSize
        configuration.logger = logger
        let manager = try DeltaSessionManager(channel: channel, configuration: configuration)
        var tasks = [Task { try await channel.run() }]
        _ = try await channel.waitUntilRunning()
        let expected = members.count
        guard await eventually(timeout: .seconds(20), { channel.view.members.count >= expected }) else {
            throw ReplicationBenchFailure("\(name) did not see its \(expected) members")
        }
        if startManager { tasks.append(Task { try await manager.run() }) }
        return SessionNode(channel: channel, manager: manager, tasks: tasks)
    }

    func stop() async {
        manager.shutdown()
        for task in tasks.dropFirst() { _ = try? await task.value }
        channel.shutdown()
        _ = try? await tasks.first?.value
    }
}

/// Three nodes; node 1 changes one session, the others hold copies.
final class ReplicationBench: @unchecked Sendable {
    let mode: ReplicationMode
    let payload = [UInt8](repeating: 0xA5, count: 1024)
    private var nodes: [SessionNode] = []
    private var sessionID = ""
    private var round = 0

    init(mode: ReplicationMode) {
        self.mode = mode
    }

    func start() async throws {
        var endpoints: [Endpoint] = []
        for i in 0..<3 {
            let node = try await SessionNode.start("node\(i + 1)", members: endpoints, mode: mode)
            try await node.manager.waitUntilReady()
            nodes.append(node)
            endpoints.append(node.channel.localMember.endpoint)
        }
        guard await eventually(timeout: .seconds(20), { self.nodes.allSatisfy { $0.channel.view.members.count == 2 } }) else {
            throw ReplicationBenchFailure("the three nodes did not mesh")
        }
        sessionID = try await nodes[0].manager.createSession { try $0.setAttribute("blob", self.payload) }.id
        guard await eventually(timeout: .seconds(10), { await self.peersHave(version: 1) }) else {
            throw ReplicationBenchFailure("the peers did not get the session")
        }
    }

    func stop() async {
        for node in nodes { await node.stop() }
        nodes.removeAll()
    }

    private func peersHave(version: UInt64) async -> Bool {
        for node in nodes.dropFirst() {
            guard let session = try? await node.manager.session(sessionID), session.version >= version else { return false }
        }
        return true
    }

    /// One synchronous request; checks that both peers applied it.
    func change(_ benchmark: Benchmark) async throws {
        round += 1
        let value = round
        try await nodes[0].manager.withSession(sessionID) { session in
            try session.setAttribute("blob", self.payload)
            try session.setAttribute("round", value)
        }
        if round % 1000 == 0, !(await peersHave(version: UInt64(round + 1))) {
            benchmark.error("a synchronous change returned before both peers applied it")
        }
    }

    /// 1,000 asynchronous requests; waits until both peers have the last one.
    func changeBatch(_ benchmark: Benchmark) async throws {
        let manager = nodes[0].manager
        for _ in benchmark.scaledIterations {
            round += 1
            let value = round
            try await manager.withSession(sessionID) { session in
                try session.setAttribute("blob", self.payload)
                try session.setAttribute("round", value)
            }
        }
        let target = UInt64(round + 1)
        guard await eventually(timeout: .seconds(30), { await self.peersHave(version: target) }) else {
            throw ReplicationBenchFailure("the peers did not reach version \(target)")
        }
    }
}

/// One node holding many sessions; each iteration a new node joins and copies them.
final class TransferBench: @unchecked Sendable {
    let sessions: Int
    private var source: SessionNode?

    init(sessions: Int) {
        self.sessions = sessions
    }

    func start() async throws {
        let node = try await SessionNode.start("source", members: [], mode: .synchronous)
        try await node.manager.waitUntilReady()
        let blob = [UInt8](repeating: 0x5A, count: 1024)
        for _ in 0..<sessions {
            try await node.manager.createSession { try $0.setAttribute("blob", blob) }
        }
        source = node
    }

    func stop() async {
        await source?.stop()
        source = nil
    }

    /// Starts a joining node and measures from its manager's start to ready.
    func join(_ benchmark: Benchmark) async throws {
        guard let source else { throw ReplicationBenchFailure("no source node") }
        let joiner = try await SessionNode.start("joiner", members: [source.channel.localMember.endpoint], mode: .synchronous, startManager: false)
        guard await eventually(timeout: .seconds(20), { source.channel.view.members.count == 1 }) else {
            throw ReplicationBenchFailure("the source did not see the joiner")
        }
        benchmark.startMeasurement()
        let task = Task { try await joiner.manager.run() }
        try await joiner.manager.waitUntilReady()
        benchmark.stopMeasurement()
        let copied = await joiner.manager.sessionIDs().count
        joiner.manager.shutdown()
        _ = try? await task.value
        await joiner.stop()
        _ = await eventually(timeout: .seconds(10)) { source.channel.view.members.isEmpty }
        if copied != sessions { benchmark.error("the joiner has \(copied) of \(sessions) sessions") }
    }
}
