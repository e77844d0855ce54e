import Cohort
import CohortTestKit
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing
@testable import CohortTransportTCP

/// The TCP transport's two control-plane actors, driven through their messages.
@Suite("TCP transport actors (SenderPool, Receiver)", .timeLimit(.minutes(1)))
struct TransportActorTests {
    static let local = Member(name: "local", endpoint: Endpoint(host: "127.0.0.1", port: 1), startTime: 0)
    static let b = Member(name: "b", endpoint: Endpoint(host: "127.0.0.1", port: 2), startTime: 1)
    static let c = Member(name: "c", endpoint: Endpoint(host: "127.0.0.1", port: 3), startTime: 2)

    static func core(_ delegate: any TransportDelegate) -> TransportCore {
        let core = TransportCore(settings: TransportSettings(), loop: MultiThreadedEventLoopGroup.singleton.next(), logger: Logger(label: "test"))
        core.start(local: local, delegate: delegate)
        return core
    }

    /// The last `autoRead` value set on a testing channel.
    static func autoRead(_ channel: NIOAsyncTestingChannel) -> Bool? {
        channel.options.last { $0.option is ChannelOptions.Types.AutoReadOption }?.value as? Bool
    }

    @Test func poolCreatesOneConnectionPerMemberAndPublishesItsTable() async throws {
        let delegate = RecordingTransportDelegate()
        let core = Self.core(delegate)
        let pool = SenderPool(core: core)
        let running = Task { await pool.run() }
        #expect(pool.table.withLockedValue { $0.isEmpty })
        let first = await pool.connections(to: [Self.b, Self.c])
        let again = await pool.connections(to: [Self.b])
        #expect(first.count == 2 && first[0] === again[0])
        #expect(pool.table.withLockedValue { $0[Self.b.id] } === first[0])
        #expect(await pool.open(to: [Self.b, Self.c]).count == 2)

        // A newer connection becomes the member's; the one it replaces retires (it carries
        // nothing, so it closes at once) without a loss being reported.
        let newer = OutboundConnection(endpoint: Self.b.endpoint, member: Self.b, core: core, pool: pool)
        pool.send(.ready(newer, Self.b))
        await pool.settle()
        #expect(pool.table.withLockedValue { $0[Self.b.id] } === newer)
        #expect(await eventually { first[0].isClosed })
        await pool.settle()
        #expect(pool.table.withLockedValue { $0[Self.b.id] } === newer)
        #expect(delegate.snapshot.lost.isEmpty)

        // The member's connection breaks with asynchronous messages in flight: it leaves the
        // table, the loss and the lost messages are reported.
        pool.send(.closed(newer, Self.b, reason: "connection reset", reportLoss: true, asyncLost: 3))
        await pool.settle()
        #expect(pool.table.withLockedValue { $0[Self.b.id] } == nil)
        #expect(delegate.snapshot.lost.map(\.member.id) == [Self.b.id])
        #expect(delegate.snapshot.asyncFailures.map(\.count) == [3])
        // The next send asks for a fresh one.
        let fresh = await pool.connections(to: [Self.b])
        #expect(fresh[0] !== newer && !fresh[0].isClosed)

        // Forgetting a member closes its connection and empties its entry.
        pool.send(.forget(Self.c))
        await pool.settle()
        #expect(pool.table.withLockedValue { $0[Self.c.id] } == nil)
        #expect(await eventually { first[1].isClosed })
        #expect(delegate.snapshot.lost.count == 1)

        let all = await pool.removeAll()
        #expect(all.count == 1 && pool.table.withLockedValue { $0.isEmpty })
        pool.finish()
        await running.value
    }

    @Test func receiverReportsOnlyTheLastLostConnectionOfAMember() async throws {
        let delegate = RecordingTransportDelegate()
        let receiver = Receiver(core: Self.core(delegate), budget: Receiver.Budget(maxFrameSize: 1 << 20))
        let running = Task { await receiver.run() }
        let one = NIOAsyncTestingChannel()
        let two = NIOAsyncTestingChannel()
        receiver.send(.accepted(one, Self.b))
        receiver.send(.accepted(two, Self.b))
        await receiver.settle()
        #expect(await receiver.members[Self.b.id] == 2)

        // Both sides connected at once: losing one of two connections is no news.
        receiver.send(.closed(one, Self.b, left: false))
        await receiver.settle()
        #expect(delegate.snapshot.lost.isEmpty)
        receiver.send(.closed(two, Self.b, left: false))
        await receiver.settle()
        #expect(delegate.snapshot.lost.map(\.member.id) == [Self.b.id])

        // A member that said goodbye is not lost.
        let three = NIOAsyncTestingChannel()
        receiver.send(.accepted(three, Self.c))
        receiver.send(.closed(three, Self.c, left: true))
        await receiver.settle()
        #expect(delegate.snapshot.lost.count == 1)

        // Pauses are counted; forgetting a member closes its connections, and their close is then
        // not reported as a loss.
        let four = NIOAsyncTestingChannel()
        try await four.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 3))
        receiver.send(.accepted(four, Self.c))
        receiver.send(.paused(four))
        await receiver.settle()
        #expect(await receiver.pausedConnections == 1)
        receiver.send(.resumed(four))
        await receiver.settle()
        #expect(await receiver.pausedConnections == 0)
        receiver.send(.forget(Self.c))
        await receiver.settle()
        #expect(await receiver.members.isEmpty)
        #expect(await eventually { !four.isActive })
        receiver.send(.closed(four, Self.c, left: false))
        await receiver.settle()
        #expect(delegate.snapshot.lost.count == 1)
        receiver.finish()
        await running.value
    }

    /// A connection whose waiting payloads exceed the byte budget stops reading and tells the
    /// receiver; once drained it reads again.
    @Test func aConnectionOverItsByteBudgetPausesAndResumes() async throws {
        let delegate = HoldingDelegate(heldType: MessageType(41))
        let core = Self.core(delegate)
        let receiver = Receiver(core: core, budget: Receiver.Budget(highWater: 1000, lowWater: 10, bytes: 1000))
        let running = Task { await receiver.run() }
        let channel = NIOAsyncTestingChannel()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2))
        let processor = InboundProcessor(channel: channel, member: Self.b, delegate: delegate, handlersOnEventLoop: false, budget: receiver.budget, receiver: receiver)
        receiver.send(.accepted(channel, Self.b))
        let payload = ByteBuffer(repeating: 7, count: 400)
        for seq in 1...4 {
            processor.enqueue(.init(message: InboundMessage(sender: Self.b, type: MessageType(41), codec: .binary, payload: payload, guarantee: .receipt), seq: UInt64(seq)))
        }
        // The first message is held in the handler; 3 × 400 bytes wait: above 1000.
        #expect(await eventually { await receiver.pausedConnections == 1 })
        #expect(await eventually { Self.autoRead(channel) == false })
        delegate.release()
        #expect(await eventually { await receiver.pausedConnections == 0 })
        #expect(await eventually { Self.autoRead(channel) == true })
        receiver.finish()
        await running.value
        _ = try? await channel.finish()
    }
}
