import Cohort
import CohortCodecBinary
import CohortCodecJSON
import CohortDiscoveryStatic
import CohortTransportTCP
import Logging
import NIOConcurrencyHelpers

/// Polls a condition until it holds or the deadline passes (no fixed sleeps: the poll period is
/// short and the wait ends as soon as the condition is true).
///
/// For what happens outside the process — real sockets, child processes, a kernel's timers —
/// with a generous timeout: it bounds a hang, it does not measure speed. Inside the process,
/// wait on the event itself instead (``GroupChannel/waitForView(_:timeout:_:)``, a listener, a
/// ``ManualClock``'s sleepers, ``withDeadline(_:_:_:)``).
///
/// - Returns: whether the condition held in time.
@discardableResult
public func eventually(
    timeout: Duration = .seconds(30),
    poll: Duration = .milliseconds(5),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: poll)
    }
    return try await condition()
}

/// Suspends until the current task is cancelled, then throws `CancellationError`.
///
/// A stand-in for work that never ends by itself — a resolver that hangs, a discovery that has
/// nothing to report — without a timer: the task wakes only when it is cancelled.
public func suspendUntilCancelled() async throws {
    let (stream, continuation) = AsyncStream<Never>.makeStream()
    // Iterating an AsyncStream ends when the iterating task is cancelled.
    for await _ in stream {}
    withExtendedLifetime(continuation) {}
    throw CancellationError()
}

/// Several nodes in one process, over loopback TCP or an in-memory network, for tests and
/// examples.
///
/// ```swift
/// try await TestCluster.with(nodes: 3, transport: .tcp) { cluster in
///     let report = try await cluster[0].send(TextMessage("hi"))
///     #expect(report.allSucceeded)
/// }
/// ```
public final class TestCluster: Sendable {
    /// How the nodes talk.
    public enum TransportKind: Sendable {
        /// Real TCP on 127.0.0.1, ports picked by the kernel.
        case tcp
        /// An in-memory network (no sockets).
        case inMemory(InMemoryNetwork)
    }

    /// The nodes, in start order.
    public let nodes: [GroupChannel]
    /// The in-memory network, if any.
    public let network: InMemoryNetwork?
    private let tasks: NIOLockedValueBox<[Task<Void, any Error>]>

    private init(nodes: [GroupChannel], network: InMemoryNetwork?, tasks: [Task<Void, any Error>]) {
        self.nodes = nodes
        self.network = network
        self.tasks = NIOLockedValueBox(tasks)
    }

    /// The node at an index.
    public subscript(index: Int) -> GroupChannel { nodes[index] }

    /// Starts `count` nodes, waits until each sees all others, runs `body`, then stops them all.
    ///
    /// - Parameters:
    ///   - count: how many nodes.
    ///   - transport: TCP on loopback or in-memory.
    ///   - codec: the codec for sending (`binary` or `json`).
    ///   - clock: the channels' clock (heartbeats, failure detection, timeouts).
    ///   - configure: adjusts each node's configuration (index, configuration).
    ///   - prepare: runs on each channel before it starts (register handlers here).
    ///   - body: the test.
    public static func with<T: Sendable>(
        nodes count: Int,
        transport: TransportKind = .tcp,
        codec: any MessageCodec = BinaryCodec(),
        clock: any CohortClock = SystemClock(),
        configure: (Int, inout ClusterConfiguration) -> Void = { _, _ in },
        prepare: (Int, GroupChannel) throws -> Void = { _, _ in },
        logger: ((Int) -> Logger)? = nil,
        _ body: (TestCluster) async throws -> T
    ) async throws -> T {
        let cluster = try await start(nodes: count, transport: transport, codec: codec, clock: clock, configure: configure, prepare: prepare, logger: logger)
        do {
            let result = try await body(cluster)
            await cluster.stop()
            return result
        } catch {
            await cluster.stop()
            throw error
        }
    }

    /// Starts nodes and waits for the full mesh (woken by membership events, bounded by
    /// `meshTimeout`); call ``stop()`` when done.
    public static func start(
        nodes count: Int,
        transport: TransportKind = .tcp,
        codec: any MessageCodec = BinaryCodec(),
        clock: any CohortClock = SystemClock(),
        configure: (Int, inout ClusterConfiguration) -> Void = { _, _ in },
        prepare: (Int, GroupChannel) throws -> Void = { _, _ in },
        logger: ((Int) -> Logger)? = nil,
        meshTimeout: Duration = .seconds(60)
    ) async throws -> TestCluster {
        var nodes: [GroupChannel] = []
        var tasks: [Task<Void, any Error>] = []
        var endpoints: [Endpoint] = []
        let network: InMemoryNetwork?
        if case .inMemory(let net) = transport { network = net } else { network = nil }
        for i in 0..<count {
            var configuration = ClusterConfiguration(
                name: "node\(i + 1)",
                listen: Endpoint(host: "127.0.0.1", port: 0),
                members: endpoints
            )
            configuration.discoverySettings["interval_ms"] = "200"
            configuration.applyTestTiming()
            configure(i, &configuration)
            let node = try makeChannel(configuration: configuration, transport: transport, codec: codec, clock: clock, logger: logger?(i))
            try prepare(i, node)
            nodes.append(node)
            tasks.append(Task { try await node.run() })
            endpoints.append(try await node.waitUntilRunning())
        }
        let cluster = TestCluster(nodes: nodes, network: network, tasks: tasks)
        let started = nodes
        do {
            try await withDeadline(meshTimeout, "the full mesh") {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for node in started { group.addTask { try await node.waitForMembers(count - 1, timeout: meshTimeout) } }
                    try await group.waitForAll()
                }
            }
        } catch {
            let views = nodes.map { "\($0.view)" }.joined(separator: "; ")
            await cluster.stop()
            throw CohortError(.timeout, "the \(count) nodes did not all see each other within \(meshTimeout): \(views)")
        }
        return cluster
    }

    /// Makes one channel with the chosen transport (not started).
    public static func makeChannel(
        configuration: ClusterConfiguration,
        transport: TransportKind,
        codec: any MessageCodec = BinaryCodec(),
        clock: any CohortClock = SystemClock(),
        logger: Logger? = nil
    ) throws -> GroupChannel {
        let transportInstance: any Transport
        switch transport {
        case .tcp: transportInstance = TCPTransport(settings: configuration.wire)
        case .inMemory(let network): transportInstance = network.makeTransport()
        }
        let discovery = StaticDiscovery(endpoints: configuration.members, interval: .milliseconds(200))
        var quiet = Logger(label: "cohort")
        quiet.logLevel = .error
        return GroupChannel(
            configuration: configuration,
            transport: transportInstance,
            codec: codec,
            codecs: [BinaryCodec(), JSONCodec()],
            discovery: discovery,
            clock: clock,
            logger: logger ?? quiet
        )
    }

    /// Stops one node gracefully and waits until its `run()` returned.
    public func stop(_ index: Int) async {
        nodes[index].shutdown()
        let task = tasks.withLockedValue { $0[index] }
        _ = try? await task.value
    }

    /// Stops every node.
    public func stop() async {
        for node in nodes { node.shutdown() }
        for task in tasks.withLockedValue({ $0 }) { _ = try? await task.value }
    }
}

extension ClusterConfiguration {
    /// Timing for tests on a shared, loaded machine, where a process can stall for a second or
    /// more: connections and handshakes get 10 s instead of 1 s, and a member is reported missing
    /// after 5 s of silence instead of 1 s, so that a busy machine does not make living members
    /// look suspect. A crash is still seen at once (a reset connection, a refused probe). Tests
    /// about detection by silence set `membership.missingAfter` themselves.
    /// ``TestCluster/start(nodes:transport:codec:clock:configure:prepare:logger:meshTimeout:)``
    /// applies it before its `configure` closure.
    public mutating func applyTestTiming() {
        wire.connectTimeout = .seconds(10)
        membership.handshakeTimeout = .seconds(10)
        membership.missingAfter = .seconds(5)
    }
}
