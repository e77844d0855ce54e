import CohortCodecBinary
import CohortTestKit
import NIOConcurrencyHelpers
import Testing
@testable import Cohort

/// The message-dispatch actor: per-member accounts of failed asynchronous sends, reports in order.
@Suite("DispatchAccounting (actor, messages)", .timeLimit(.minutes(1)))
struct DispatchAccountingTests {
    let b = Member(name: "b", endpoint: Endpoint(host: "127.0.0.1", port: 2), startTime: 1)
    let c = Member(name: "c", endpoint: Endpoint(host: "127.0.0.1", port: 3), startTime: 2)

    @Test func failuresAreCountedPerMemberAndReportedInOrder() async throws {
        let accounting = DispatchAccounting()
        let running = Task { await accounting.run() }
        let seen = NIOLockedValueBox<[String]>([])
        accounting.send(.handler { failure in seen.withLockedValue { $0.append("\(failure.member.name):\(failure.count)") } })
        accounting.send(.failed(AsyncSendFailure(member: b, count: 1, reason: "queue full", outcome: .queueFull)))
        accounting.send(.failed(AsyncSendFailure(member: b, count: 3, reason: "connection to b closed")))
        accounting.send(.failed(AsyncSendFailure(member: c, count: 1, reason: "timed out", outcome: .timedOut)))
        await accounting.settle()
        #expect(seen.withLockedValue { $0 } == ["b:1", "b:3", "c:1"])
        let accounts = await accounting.snapshot
        #expect(accounts[b.id]?.failedMessages == 4)
        #expect(accounts[b.id]?.reports == 2)
        #expect(accounts[b.id]?.queueFull == 1)
        #expect(accounts[b.id]?.lastReason == "connection to b closed")
        #expect(accounts[c.id]?.timedOut == 1)
        // A member that leaves the view closes its account.
        accounting.send(.memberGone(b.id))
        await accounting.settle()
        #expect(await accounting.snapshot[b.id] == nil)
        #expect(await accounting.snapshot[c.id] != nil)
        running.cancel()
        await running.value
    }

    /// Through a channel: the dispatch stage reports a full queue, the transport reports messages
    /// a broken connection took with it; both reach the handler from the actor, and the accounts.
    @Test func channelReportsFailuresFromTheStageAndTheTransport() async throws {
        let transport = EagerTransport(sendsDuringStart: true, outcome: .queueFull)
        let node = GroupChannel(
            configuration: ClusterConfiguration(name: "full", listen: Endpoint(host: "127.0.0.1", port: 0)),
            transport: transport,
            codec: BinaryCodec(),
            discovery: NoDiscovery()
        )
        try node.register(Ping.self)
        try node.onMessage(Ping.self) { _, _ in }
        let (failures, input) = AsyncStream.makeStream(of: AsyncSendFailure.self)
        node.onAsyncFailure { input.yield($0) }
        let running = Task { try await node.run() }
        _ = try await node.waitUntilRunning()
        #expect(await eventually { node.view.members.count == 1 })
        let peer = node.view.members[0]

        let report = try await node.send(Ping(n: 1), options: .asynchronous)
        #expect(report.outcome(for: peer.id) == .queueFull)
        var iterator = failures.makeAsyncIterator()
        let first = await iterator.next()
        #expect(first?.member == peer && first?.outcome == .queueFull)

        transport.delegate?.transport(asyncMessagesFailed: 5, to: peer, reason: "connection to quick closed")
        let second = await iterator.next()
        #expect(second?.count == 5 && second?.outcome == nil)
        let account = await node.asyncFailureAccounts()[peer.id]
        #expect(account?.failedMessages == 6 && account?.queueFull == 1 && account?.reports == 2)
        node.shutdown()
        try await running.value
    }
}
