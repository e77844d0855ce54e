import Cohort
import CohortCodecBinary
import CohortDiscoveryStatic
import CohortTestKit
import CohortTransportTCP
import Logging
import NIOConcurrencyHelpers
import Testing

/// MessageDispatch's queue limit and its three policies over loopback TCP. The receiver's
/// handler is held shut, so `.processed` messages stay in flight; the sender's transport runs
/// its send deadlines on a manual clock, so a `block` timeout happens only when the test moves
/// time (membership and heartbeats stay on the system clock).
@Suite("MessageDispatch policies", .timeLimit(.minutes(2)))
struct DispatchPolicyTests {
    /// A gate the receiver's handler waits on.
    final class Gate: Sendable {
        private let state = NIOLockedValueBox<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
        func wait() async {
            await withCheckedContinuation { continuation in
                let open = state.withLockedValue { state in
                    if !state.open { state.waiters.append(continuation) }
                    return state.open
                }
                if open { continuation.resume() }
            }
        }
        func open() {
            let waiters = state.withLockedValue { state in
                state.open = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    struct Pair {
        let sender: GroupChannel
        let receiver: GroupChannel
        let transport: TCPTransport
        let tasks: [Task<Void, any Error>]

        func stop() async {
            sender.shutdown()
            receiver.shutdown()
            for task in tasks { _ = try? await task.value }
        }
    }

    func start(policy: QueuePolicy, limit: Int, clock: ManualClock, gate: Gate) async throws -> Pair {
        var quiet = Logger(label: "cohort")
        quiet.logLevel = .error
        var receiverConfiguration = ClusterConfiguration(name: "receiver", listen: Endpoint(host: "127.0.0.1", port: 0))
        receiverConfiguration.discoverySettings["interval_ms"] = "100"
        let receiver = try TestCluster.makeChannel(configuration: receiverConfiguration, transport: .tcp)
        try receiver.onMessage(Ping.self) { _, _ in await gate.wait() }
        let receiverTask = Task { try await receiver.run() }
        let address = try await receiver.waitUntilRunning()
        var configuration = ClusterConfiguration(name: "sender", listen: Endpoint(host: "127.0.0.1", port: 0), members: [address])
        configuration.dispatch = .init(queueLimit: limit, policy: policy)
        let transport = TCPTransport(settings: configuration.wire, clock: clock)
        let sender = GroupChannel(
            configuration: configuration, transport: transport, codec: BinaryCodec(),
            discovery: StaticDiscovery(endpoints: [address], interval: .milliseconds(100)), logger: quiet
        )
        let senderTask = Task { try await sender.run() }
        _ = try await sender.waitUntilRunning()
        try await sender.waitForMembers(1, timeout: .seconds(60))
        try await receiver.waitForMembers(1, timeout: .seconds(60))
        return Pair(sender: sender, receiver: receiver, transport: transport, tasks: [senderTask, receiverTask])
    }

    /// Fills the receiver's queue: `limit` processed sends held by the gate.
    func fill(_ pair: Pair, limit: Int) async throws -> [Task<SendReport, any Error>] {
        let member = pair.receiver.localMember.id
        var held: [Task<SendReport, any Error>] = []
        for n in 0..<limit {
            held.append(Task { try await pair.sender.send(Ping(n: n), options: SendOptions(guarantee: .processed, timeout: .seconds(3600))) })
        }
        #expect(await eventually { pair.transport.queueDepth(of: member) == limit }, "the queue did not fill")
        return held
    }

    @Test func failFastReportsAFullQueueAtOnce() async throws {
        let gate = Gate()
        let pair = try await start(policy: .failFast, limit: 2, clock: ManualClock(), gate: gate)
        let held = try await fill(pair, limit: 2)
        let report = try await pair.sender.send(Ping(n: 99), options: .asynchronous)
        #expect(report.outcomes.first?.outcome == .queueFull)
        let accounts = await eventuallyValue { await pair.sender.asyncFailureAccounts()[pair.receiver.localMember.id] }
        #expect(accounts != nil, "the async failure was not reported")
        gate.open()
        for task in held { #expect(try await task.value.allSucceeded) }
        await pair.stop()
    }

    @Test func blockWaitsForRoomWithoutPollingAndThenSends() async throws {
        let gate = Gate()
        let clock = ManualClock()
        let pair = try await start(policy: .block, limit: 2, clock: clock, gate: gate)
        let held = try await fill(pair, limit: 2)
        let blocked = Task { try await pair.sender.send(Ping(n: 99), options: SendOptions(guarantee: .asynchronous, timeout: .seconds(30))) }
        // The blocked send parks with one timer at its deadline (it does not poll): two sleepers
        // on the transport's clock, the held sends' deadline timer and this one.
        try await clock.waitForSleepers(2)
        gate.open()
        let report = try await blocked.value
        #expect(report.outcomes.first?.outcome == .queued, "\(report)")
        for task in held { #expect(try await task.value.allSucceeded) }
        await pair.stop()
    }

    @Test func blockTimesOutAtTheSendsOwnDeadline() async throws {
        let gate = Gate()
        let clock = ManualClock()
        let pair = try await start(policy: .block, limit: 2, clock: clock, gate: gate)
        let held = try await fill(pair, limit: 2)
        let blocked = Task { try await pair.sender.send(Ping(n: 99), options: SendOptions(guarantee: .receipt, timeout: .seconds(5))) }
        try await clock.waitForSleepers(2)
        _ = clock.advance(by: .seconds(5))
        let report = try await blocked.value
        #expect(report.outcomes.first?.outcome == .timedOut, "\(report)")
        gate.open()
        for task in held { _ = try await task.value }
        await pair.stop()
    }

    @Test func sendSynchronouslyUpgradesAnAsynchronousSendToReceipt() async throws {
        let gate = Gate()
        let pair = try await start(policy: .sendSynchronously, limit: 2, clock: ManualClock(), gate: gate)
        let held = try await fill(pair, limit: 2)
        let report = try await pair.sender.send(Ping(n: 99), options: SendOptions(guarantee: .asynchronous, timeout: .seconds(300)))
        // Receipt, not just queued: the sender waited for the receiver.
        #expect(report.outcomes.first?.outcome == .delivered, "\(report)")
        gate.open()
        for task in held { #expect(try await task.value.allSucceeded) }
        await pair.stop()
    }
}

/// Polls an async value until it is non-nil (bounded; for state outside the test's control).
func eventuallyValue<T: Sendable>(timeout: Duration = .seconds(30), _ read: () async -> T?) async -> T? {
    var found: T?
    _ = await eventually(timeout: timeout) {
        found = await read()
        return found != nil
    }
    return found
}
