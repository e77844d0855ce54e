import CohortCodecBinary
import CohortTestKit
import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import Cohort

/// The channel's lifecycle: one state machine, and everything a transport callback can reach is
/// built before the listener opens.
@Suite("Channel lifecycle", .timeLimit(.minutes(1)))
struct ChannelLifecycleTests {
    @Test func phasesFollowTheMachine() async throws {
        var machine = ChannelLifecycle<String>()
        #expect(machine.parts == nil && machine.sending == nil)
        let started = machine.onStart("parts")
        #expect(started)
        // Starting: callbacks reach the parts, sends do not go out yet.
        #expect(machine.parts == "parts")
        #expect(machine.sending == nil)
        // A channel runs once.
        let again = machine.onStart("again")
        #expect(!again)
        let bound = Endpoint(host: "127.0.0.1", port: 7000)
        let waiters = machine.onListening(bound)
        #expect(waiters.isEmpty)
        #expect(machine.sending == "parts")
        machine.onLeave()
        guard case .leaving = machine.phase else {
            Issue.record("expected leaving, got \(machine.phase)")
            return
        }
        #expect(machine.parts == "parts")
        let late = machine.onStopped()
        #expect(late.isEmpty)
        #expect(machine.isStopped && machine.parts == nil && machine.sending == nil)
        let later = machine.onStart("later")
        #expect(!later)
    }

    @Test(arguments: [true, false])
    func waitersAreResumedWhenTheListenerOpensOrFailedWhenItCannot(opens: Bool) async throws {
        let bound = Endpoint(host: "127.0.0.1", port: 7001)
        let machine = NIOLockedValueBox(ChannelLifecycle<Int>())
        _ = machine.withLockedValue { $0.onStart(1) }
        let waiting = Task {
            try await withCheckedThrowingContinuation { (continuation: ChannelLifecycle<Int>.Waiter) in
                if case .resume(let endpoint) = machine.withLockedValue({ $0.onWait(continuation) }) {
                    continuation.resume(returning: endpoint)
                }
            }
        }
        #expect(await eventually { machine.withLockedValue { $0.waiterCount } == 1 })
        if opens {
            let waiters = machine.withLockedValue { $0.onListening(bound) }
            #expect(waiters.count == 1)
            for waiter in waiters { waiter.resume(returning: bound) }
            #expect(try await waiting.value == bound)
            #expect(machine.withLockedValue { $0.waiterCount } == 0)
        } else {
            let waiters = machine.withLockedValue { $0.onStartFailed() }
            #expect(waiters.count == 1)
            for waiter in waiters { waiter.resume(throwing: CohortError(.notRunning, "cannot listen")) }
            await #expect(throws: CohortError.self) { try await waiting.value }
            #expect(machine.withLockedValue { $0.isStopped })
        }
    }

    /// A transport whose peer is quick: a data frame arrives while `start` has not returned yet.
    /// The chain and the membership service exist before the listener opens, so the message is
    /// handled (before this change, the channel's chain was still unset and the node trapped).
    @Test func aFrameThatArrivesWhileTheChannelStartsIsHandled() async throws {
        let transport = EagerTransport()
        let received = NIOLockedValueBox<[Int]>([])
        let node = GroupChannel(
            configuration: ClusterConfiguration(name: "eager", listen: Endpoint(host: "127.0.0.1", port: 0)),
            transport: transport,
            codec: BinaryCodec(),
            discovery: NoDiscovery()
        )
        try node.onMessage(Ping.self) { ping, _ in received.withLockedValue { $0.append(ping.n) } }
        let running = Task { try await node.run() }
        _ = try await node.waitUntilRunning()
        #expect(transport.resultDuringStart == .processed)
        #expect(received.withLockedValue { $0 } == [7])
        // The member that said hello during start joins once the membership service runs.
        #expect(await eventually { node.view.members.map(\.name) == ["quick"] })
        node.shutdown()
        try await running.value
        #expect(!node.isRunning)
        // A channel runs once.
        await #expect(throws: CohortError.self) { try await node.run() }
    }

    @Test func sendIsRefusedBeforeRunAndAfterStop() async throws {
        let node = GroupChannel(
            configuration: ClusterConfiguration(name: "once", listen: Endpoint(host: "127.0.0.1", port: 0)),
            transport: EagerTransport(sendsDuringStart: false),
            codec: BinaryCodec(),
            discovery: NoDiscovery()
        )
        await #expect(throws: CohortError(.notRunning, "")) { try await node.send(Ping(n: 1)) }
        let running = Task { try await node.run() }
        _ = try await node.waitUntilRunning()
        #expect(node.isRunning)
        node.shutdown()
        try await running.value
        await #expect(throws: CohortError(.notRunning, "")) { try await node.send(Ping(n: 1)) }
        await #expect(throws: CohortError(.notRunning, "")) { _ = try await node.waitUntilRunning() }
    }
}

/// Discovery that proposes nothing.
struct NoDiscovery: DiscoveryProvider {
    var name: String { "none" }
    func run(local: Member, report: @escaping @Sendable (DiscoveryEvent) -> Void) async throws {
        try await suspendUntilCancelled()
    }
}

/// A transport that, inside `start`, delivers a hello and a data frame from a peer before it
/// returns the bound address — as a fast peer can over a real socket.
final class EagerTransport: Transport, Sendable {
    let sendsDuringStart: Bool
    /// What every send reports for every member.
    let outcome: MemberOutcome
    private let result = NIOLockedValueBox<DeliveryResult?>(nil)
    private let delegateBox = NIOLockedValueBox<(any TransportDelegate)?>(nil)

    init(sendsDuringStart: Bool = true, outcome: MemberOutcome = .delivered) {
        self.sendsDuringStart = sendsDuringStart
        self.outcome = outcome
    }

    /// The delegate the channel gave at start.
    var delegate: (any TransportDelegate)? { delegateBox.withLockedValue { $0 } }

    var resultDuringStart: DeliveryResult? { result.withLockedValue { $0 } }

    func start(local: Member, delegate: any TransportDelegate) async throws -> Endpoint {
        delegateBox.withLockedValue { $0 = delegate }
        guard sendsDuringStart else { return Endpoint(host: local.endpoint.host, port: 7100) }
        let peer = Member(name: "quick", endpoint: Endpoint(host: "127.0.0.1", port: 7101), startTime: 1)
        delegate.transport(didAccept: peer)
        var payload = ByteBuffer()
        try BinaryCodec().encode(Ping(n: 7), into: &payload)
        let message = InboundMessage(sender: peer, type: Ping.messageType, codec: .binary, payload: payload, guarantee: .processed)
        let outcome = await delegate.transport(received: message)
        result.withLockedValue { $0 = outcome }
        return Endpoint(host: local.endpoint.host, port: 7100)
    }
    func handshake(with endpoint: Endpoint, timeout: Duration) async throws -> Member { throw CohortError(.connectionFailed, "no") }
    func send(_ message: OutboundMessage, to members: [Member]) async -> SendReport { SendReport(outcomes: members.map { ($0.id, outcome) }) }
    func heartbeat(to members: [Member]) {}
    func probe(_ member: Member, timeout: Duration) async -> FailureDetectorState.ProbeResult { .alive }
    func leave(notifying members: [Member]) async {}
    func forget(_ member: Member) {}
    func shutdown() async {}
}
