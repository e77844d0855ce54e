import Cohort
import CohortCodecBinary
import CohortCodecJSON
import CohortDiscoveryStatic
import CohortSessions
import CohortTestKit
import CohortTransportTCP
import Logging
import NIOConcurrencyHelpers
import Testing
@testable import CohortSessions

/// Nodes with a session manager each, over the in-memory network or loopback TCP, that can
/// grow (a node joins later), lose a node (killed without a goodbye), and stop.
///
/// Channels run on the system clock (heartbeats, failure detection); managers run on one shared
/// ``ManualClock``, so expiry, sweeps, the settle time and transfer stall timeouts move only when
/// the test calls ``advance(by:)``, and every node reads the same wall time. Waits are woken by
/// events (membership changes, the clock's sleepers, the managers' send queues), each bounded
/// by a generous real-time limit that only turns a hang into a failure.
final class SessionTestCluster: @unchecked Sendable {
    enum Kind: Sendable {
        case delta
        case backup
    }

    struct Node {
        var channel: GroupChannel
        var manager: SessionManager
        var tcp: TCPTransport?
        var channelTask: Task<Void, any Error>
        var managerTask: Task<Void, any Error>?
        var alive = true
    }

    let kind: Kind
    let network: InMemoryNetwork?
    /// The managers' clock; its wall time starts on a whole second, so deadlines and TTLs in
    /// tests come out exact.
    let clock = ManualClock(wallTime: .seconds(1_800_000_000))
    let logs = LogCapture(level: .info)
    private let lock = NIOLock()
    private var _nodes: [Node] = []
    let configure: @Sendable (Int, inout SessionManagerConfiguration) -> Void

    var nodes: [Node] { lock.withLock { _nodes } }
    subscript(index: Int) -> SessionManager { nodes[index].manager }
    var managers: [SessionManager] { nodes.map(\.manager) }
    var alive: [SessionManager] { nodes.filter(\.alive).map(\.manager) }
    /// Managers whose `run()` was started and that were not killed: each has one timer loop on
    /// ``clock``.
    var running: [SessionManager] { nodes.filter { $0.alive && $0.managerTask != nil }.map(\.manager) }

    init(kind: Kind, tcp: Bool = false, configure: @escaping @Sendable (Int, inout SessionManagerConfiguration) -> Void = { _, _ in }) {
        self.kind = kind
        self.network = tcp ? nil : InMemoryNetwork()
        self.configure = configure
    }

    /// Starts `count` nodes one after another, each ready before the next starts.
    static func start(_ kind: Kind, nodes count: Int, tcp: Bool = false, configure: @escaping @Sendable (Int, inout SessionManagerConfiguration) -> Void = { _, _ in }) async throws -> SessionTestCluster {
        let cluster = SessionTestCluster(kind: kind, tcp: tcp, configure: configure)
        for _ in 0..<count {
            let index = try await cluster.addNode()
            try await cluster.waitUntilReady(index)
        }
        return cluster
    }

    /// Runs `body` on a started cluster and stops it afterwards (also when `body` throws).
    static func with<T>(_ kind: Kind, nodes count: Int, tcp: Bool = false, configure: @escaping @Sendable (Int, inout SessionManagerConfiguration) -> Void = { _, _ in }, _ body: (SessionTestCluster) async throws -> T) async throws -> T {
        let cluster = try await start(kind, nodes: count, tcp: tcp, configure: configure)
        do {
            let result = try await body(cluster)
            await cluster.stop()
            return result
        } catch {
            await cluster.stop()
            print(cluster.logs.text)
            throw error
        }
    }

    /// Adds a node whose channel knows every live node; waits until the channel sees them all,
    /// then starts its manager (not waiting for it to be ready).
    @discardableResult
    func addNode(startManager: Bool = true) async throws -> Int {
        let index = nodes.count
        let endpoints = nodes.filter(\.alive).map { $0.channel.localMember.endpoint }
        var configuration = ClusterConfiguration(name: "node\(index + 1)", listen: Endpoint(host: "127.0.0.1", port: 0), members: endpoints)
        configuration.sendTimeout = .seconds(5)
        let tcp: TCPTransport? = network == nil ? TCPTransport(settings: configuration.wire) : nil
        let transport: any Transport = tcp ?? network!.makeTransport()
        var quiet = Logger(label: "cohort")
        quiet.logLevel = .error
        let channel = GroupChannel(
            configuration: configuration, transport: transport, codec: BinaryCodec(), codecs: [BinaryCodec(), JSONCodec()],
            discovery: StaticDiscovery(endpoints: endpoints, interval: .milliseconds(100)), logger: quiet
        )
        let channelTask = Task { try await channel.run() }
        _ = try await channel.waitUntilRunning()
        let expected = endpoints.count
        try await channel.waitForView("node\(index + 1) to see its \(expected) members") { $0.members.count >= expected }
        var settings = SessionManagerConfiguration(name: "app")
        settings.clock = clock
        settings.settleTime = .zero
        settings.expiryCheckInterval = .seconds(1)
        settings.logger = logs.logger("sessions")
        configure(index, &settings)
        let manager: SessionManager = kind == .delta
            ? try DeltaSessionManager(channel: channel, configuration: settings)
            : try BackupSessionManager(channel: channel, configuration: settings)
        let node = Node(channel: channel, manager: manager, tcp: tcp, channelTask: channelTask)
        lock.withLock { _nodes.append(node) }
        if startManager { self.startManager(index) }
        return index
    }

    /// Waits until a node's manager is ready (bounded: a transfer that never ends fails the test).
    func waitUntilReady(_ index: Int, timeout: Duration = .seconds(60)) async throws {
        let manager = nodes[index].manager
        try await withDeadline(timeout, "node\(index + 1)'s manager to be ready") { try await manager.waitUntilReady() }
    }

    /// Whether a node's manager is ready now.
    func isReady(_ index: Int) async -> Bool {
        switch nodes[index].manager.backend {
        case let replicator as AllCopiesReplicator<SessionRecord>: return await replicator.isReady
        case let replicator as PrimaryBackupReplicator<SessionRecord>: return await replicator.state.isReady
        default: return false
        }
    }

    /// Starts a node's manager.
    func startManager(_ index: Int) {
        let manager = nodes[index].manager
        let task = Task { try await manager.run() }
        lock.withLock { _nodes[index].managerTask = task }
    }

    /// Kills a node: no goodbye; its peers see the connections break and their failure
    /// detectors remove it. (Its channel object stays until ``stop()``, like a crashed process
    /// nobody can reach.)
    func kill(_ index: Int) async {
        let node = nodes[index]
        lock.withLock { _nodes[index].alive = false }
        if let network {
            network.kill(node.channel.localMember.endpoint)
        } else {
            await node.tcp?.abort()
        }
        node.manager.shutdown()
        _ = try? await node.managerTask?.value
    }

    /// Waits until every live node's channel sees exactly the other live nodes (woken by
    /// membership events).
    func waitForViews(timeout: Duration = .seconds(60)) async throws {
        let live = nodes.filter(\.alive)
        for node in live {
            try await node.channel.waitForMembers(live.count - 1, timeout: timeout)
        }
    }

    /// Waits until no live manager has anything queued to send (state transfers, backup copies,
    /// location updates) and each has applied the membership changes its channel knows. What one
    /// node sends can make another queue more, so this repeats until a round finds every node
    /// idle.
    func settle(timeout: Duration = .seconds(60)) async throws {
        let managers = alive
        try await withDeadline(timeout, "the managers to send what they queued") {
            for _ in 0..<1_000 {
                var busy = false
                for manager in managers {
                    if await manager.waitUntilIdle() { busy = true }
                }
                if !busy { return }
            }
            throw CohortError(.timeout, "the managers kept queueing messages for 1,000 rounds")
        }
    }

    /// Moves the managers' clock forward and returns once every timer loop that woke has run its
    /// turn (expiry sweeps, settle and stall deadlines) and everything that sent is applied.
    func advance(by duration: Duration) async throws {
        let timers = running.count
        try await clock.waitForSleepers(timers)
        try await clock.advance(by: duration, thenWaitForSleepers: timers)
        try await settle()
    }

    /// Stops every node gracefully.
    func stop() async {
        for node in nodes where node.alive { node.manager.shutdown() }
        for node in nodes { _ = try? await node.managerTask?.value }
        for node in nodes { node.channel.shutdown() }
        for node in nodes { _ = try? await node.channelTask.value }
    }
}
