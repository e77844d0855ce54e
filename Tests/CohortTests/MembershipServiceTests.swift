import Cohort
import CohortTestKit
import Logging
import NIOConcurrencyHelpers
import Testing

/// The membership service's actor, driven through its messages, with time on a manual clock and
/// a transport that only records what it is asked to do.
@Suite("MembershipService (actor, messages, manual clock)", .timeLimit(.minutes(1)))
struct MembershipServiceTests {
    let local = Member(name: "a", endpoint: Endpoint(host: "127.0.0.1", port: 1), startTime: 0)
    let peer = Member(name: "b", endpoint: Endpoint(host: "127.0.0.1", port: 2), startTime: 1)

    /// A transport that records heartbeats and disconnects and answers handshakes from a table.
    final class RecordingTransport: Transport, Sendable {
        struct Calls: Sendable {
            var heartbeats: [[Member]] = []
            var forgotten: [Member] = []
            var handshakes: [Endpoint] = []
        }
        private let calls = NIOLockedValueBox(Calls())
        private let peers: [Endpoint: Member]

        init(peers: [Endpoint: Member] = [:]) { self.peers = peers }

        var recorded: Calls { calls.withLockedValue { $0 } }

        func start(local: Member, delegate: any TransportDelegate) async throws -> Endpoint { local.endpoint }
        func handshake(with endpoint: Endpoint, timeout: Duration) async throws -> Member {
            calls.withLockedValue { $0.handshakes.append(endpoint) }
            guard let member = peers[endpoint] else { throw CohortError(.connectionFailed, "refused") }
            return member
        }
        func send(_ message: OutboundMessage, to members: [Member]) async -> SendReport { SendReport() }
        func heartbeat(to members: [Member]) { calls.withLockedValue { $0.heartbeats.append(members) } }
        func probe(_ member: Member, timeout: Duration) async -> FailureDetectorState.ProbeResult { .alive }
        func leave(notifying members: [Member]) async {}
        func forget(_ member: Member) { calls.withLockedValue { $0.forgotten.append(member) } }
        func shutdown() async {}
    }

    func withService(
        transport: RecordingTransport = RecordingTransport(),
        _ body: (MembershipService, AsyncStream<MembershipSignal>, ManualClock) async throws -> Void
    ) async throws {
        let clock = ManualClock()
        let settings = MembershipState.Settings(heartbeatInterval: .milliseconds(250), missingAfter: .milliseconds(1000), retryInterval: .milliseconds(500))
        let service = MembershipService(local: local, settings: settings, transport: transport, clock: clock, logger: Logger(label: "test"))
        let (signals, input) = AsyncStream.makeStream(of: MembershipSignal.self)
        let running = Task { [local] in try await service.run(local: local) { input.yield($0) } }
        try await body(service, signals, clock)
        running.cancel()
        _ = try? await running.value
    }

    @Test func acceptedMemberJoinsAndIsReportedMissingOnlyAfterTheSilenceOnTheClock() async throws {
        let transport = RecordingTransport()
        try await withService(transport: transport) { service, signals, clock in
            var signals = signals.makeAsyncIterator()
            service.send(.accepted(peer))
            #expect(await signals.next() == .joined(peer))
            #expect(await service.members == [peer])

            // A tick sends heartbeats to every known member.
            service.send(.tick)
            await service.settle()
            #expect(transport.recorded.heartbeats.last == [peer])

            // 999 ms of silence: not missing yet.
            clock.advance(by: .milliseconds(999))
            service.send(.tick)
            await service.settle()
            // A heartbeat resets the silence clock (handled before time moves on).
            service.send(.heard(peer))
            await service.settle()
            clock.advance(by: .milliseconds(999))
            service.send(.tick)
            await service.settle()
            clock.advance(by: .milliseconds(1))
            service.send(.tick)
            #expect(await signals.next() == .missing(peer, reason: "not heard from for 1.0 seconds"))
        }
    }

    @Test func candidateIsHandshakenAndAFailedHandshakeIsRetriedAfterTheRetryInterval() async throws {
        let good = Endpoint(host: "127.0.0.1", port: 2)
        let bad = Endpoint(host: "127.0.0.1", port: 3)
        let transport = RecordingTransport(peers: [good: peer])
        try await withService(transport: transport) { service, signals, clock in
            var signals = signals.makeAsyncIterator()
            // Its own address is skipped.
            service.send(.discovered(.candidates([local.endpoint, good, bad])))
            #expect(await signals.next() == .joined(peer))
            #expect(await eventually { transport.recorded.handshakes.filter { $0 == bad }.count == 1 })
            await service.settle()
            #expect(!transport.recorded.handshakes.contains(local.endpoint))

            // The failed address is due again only after the retry interval.
            clock.advance(by: .milliseconds(499))
            service.send(.tick)
            await service.settle()
            #expect(transport.recorded.handshakes.filter { $0 == bad }.count == 1)
            clock.advance(by: .milliseconds(1))
            service.send(.tick)
            #expect(await eventually { transport.recorded.handshakes.filter { $0 == bad }.count == 2 })
        }
    }

    @Test func leftMemberIsDisconnectedRetiredAndNotAdmittedAgain() async throws {
        let transport = RecordingTransport()
        try await withService(transport: transport) { service, signals, _ in
            var signals = signals.makeAsyncIterator()
            service.send(.accepted(peer))
            #expect(await signals.next() == .joined(peer))
            service.send(.left(peer))
            #expect(await signals.next() == .left(peer))
            await service.settle()
            #expect(transport.recorded.forgotten == [peer])
            #expect(service.isRetired(peer.id))
            // A late heartbeat of that incarnation does not bring it back.
            service.send(.heard(peer))
            await service.settle()
            #expect(await service.members.isEmpty)
        }
    }

    @Test func verdictRemovesAndAHeartbeatOfTheSameIncarnationHealsIt() async throws {
        let transport = RecordingTransport()
        try await withService(transport: transport) { service, signals, _ in
            var signals = signals.makeAsyncIterator()
            service.send(.accepted(peer))
            #expect(await signals.next() == .joined(peer))
            service.send(.connectionLost(peer.id, reason: "connection from b closed"))
            #expect(await signals.next() == .missing(peer, reason: "connection from b closed"))
            service.send(.removed(peer))
            await service.settle()
            #expect(await service.members.isEmpty)
            #expect(transport.recorded.forgotten == [peer])
            #expect(!service.isRetired(peer.id))
            service.send(.heard(peer))
            #expect(await signals.next() == .joined(peer))
        }
    }

    /// The timer of the service runs on the injected clock: advancing it is what makes the
    /// heartbeats go out.
    @Test func heartbeatsFollowTheInjectedClock() async throws {
        let transport = RecordingTransport()
        try await withService(transport: transport) { service, signals, clock in
            var signals = signals.makeAsyncIterator()
            service.send(.accepted(peer))
            #expect(await signals.next() == .joined(peer))
            await service.settle()
            let before = transport.recorded.heartbeats.count
            for _ in 0..<3 {
                #expect(await eventually(timeout: .seconds(5), poll: .milliseconds(1)) { clock.sleeperCount >= 1 })
                clock.advance(by: .milliseconds(250))
            }
            #expect(await eventually { transport.recorded.heartbeats.count >= before + 2 })
        }
    }
}
