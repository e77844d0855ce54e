import Cohort
import CohortTestKit
import Logging
import Metrics
import MetricsTestKit
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// The stages alone, in a chain whose ends are the test's, with time on a manual clock.
@Suite("Interceptor stages (manual clock)", .timeLimit(.minutes(1)))
struct InterceptorStageTests {
    let sender = Member(name: "a", endpoint: Endpoint(host: "127.0.0.1", port: 1), startTime: 1)
    let local = Member(name: "b", endpoint: Endpoint(host: "127.0.0.1", port: 2), startTime: 2)

    final class Ends: Sendable {
        let delivered = NIOLockedValueBox<[Int]>([])
        let sent = NIOLockedValueBox<[OutboundMessage]>([])

        func chain(_ stages: [any Interceptor]) -> InterceptorChain {
            InterceptorChain(stages: stages, ends: ChainEnds(
                transmit: { message, members in
                    self.sent.withLockedValue { $0.append(message) }
                    return SendReport(outcomes: members.map { ($0.id, .delivered) })
                },
                dispatch: { message in
                    self.delivered.withLockedValue { $0.append(Int(message.payload.getInteger(at: message.payload.readerIndex, as: UInt32.self) ?? 0)) }
                    return .processed
                },
                signal: { _ in }
            ))
        }
    }

    func context(_ clock: ManualClock) -> InterceptorContext {
        InterceptorContext(
            probe: { _, _ in .alive }, publish: { _ in }, forget: { _ in }, local: local,
            now: { clock.now }, sleep: { try await clock.sleep(for: $0) }, logger: Logger(label: "test")
        )
    }

    func ordered(_ seq: UInt64, _ value: UInt32, guarantee: DeliveryGuarantee = .asynchronous) -> InboundMessage {
        var payload = ByteBuffer()
        OrderHeader.write([(local.id, seq)], into: &payload)
        payload.writeInteger(value)
        return InboundMessage(sender: sender, type: MessageType(2001), codec: CodecID(rawValue: 1), payload: payload, guarantee: guarantee, flags: MessageFlags.ordered | MessageFlags.sequenced)
    }

    @Test func orderHoldsAGapThenReportsItAtTheTimeoutOnTheInjectedClock() async throws {
        let clock = ManualClock()
        let order = Order(settings: .init(gapTimeout: .seconds(3)), local: local.id, clock: clock)
        let ends = Ends()
        let chain = ends.chain([order])
        #expect(await chain.receive(ordered(1, 1)) == .processed)
        // 2 is lost; 3 and 4 are acknowledged (asynchronous) but held.
        #expect(await chain.receive(ordered(3, 3)) == .processed)
        #expect(await chain.receive(ordered(4, 4)) == .processed)
        #expect(ends.delivered.withLockedValue { $0 } == [1])
        #expect(order.held == 2)
        let timer = Task { try await order.run(context: context(clock)) }
        try await clock.waitForSleepers(1)
        try await clock.advance(by: .seconds(2), thenWaitForSleepers: 1)
        #expect(ends.delivered.withLockedValue { $0 } == [1], "nothing skipped before the gap timeout")
        try await clock.advance(by: .seconds(1), thenWaitForSleepers: 1)
        #expect(ends.delivered.withLockedValue { $0 } == [1, 3, 4])
        #expect(order.gapsReported == 1)
        // The lost one turns up after all: handed up late, not dropped.
        #expect(await chain.receive(ordered(2, 2)) == .processed)
        #expect(ends.delivered.withLockedValue { $0 } == [1, 3, 4, 2])
        #expect(order.lateDeliveries == 1)
        timer.cancel()
    }

    @Test func aHeldProcessedMessageIsAcknowledgedOnlyOnceHandled() async throws {
        let clock = ManualClock()
        let order = Order(local: local.id, clock: clock)
        let ends = Ends()
        let chain = ends.chain([order])
        let waiting = Task { await chain.receive(ordered(2, 2, guarantee: .processed)) }
        #expect(await eventually { order.held == 1 })
        #expect(ends.delivered.withLockedValue { $0 }.isEmpty)
        #expect(await chain.receive(ordered(1, 1)) == .processed)
        #expect(await waiting.value == .processed)
        #expect(ends.delivered.withLockedValue { $0 } == [1, 2])
    }

    @Test func orderedSendsGetOneNumberPerDestinationInOneBuffer() async throws {
        let order = Order(local: sender.id, clock: ManualClock())
        let ends = Ends()
        let chain = ends.chain([order])
        var options = SendOptions.processed
        options.ordered = true
        let message = OutboundMessage(type: MessageType(2001), codec: CodecID(rawValue: 1), payload: ByteBuffer(integer: UInt32(9)), options: options)
        _ = await chain.send(message, to: [local])
        _ = await chain.send(message, to: [local, sender])
        let sent = ends.sent.withLockedValue { $0 }
        #expect(sent.count == 2)
        var second = sent[1].payload
        #expect(try OrderHeader.read(from: &second, for: local.id) == 2)
        var again = sent[1].payload
        #expect(try OrderHeader.read(from: &again, for: sender.id) == 1)
        #expect(second.readInteger(as: UInt32.self) == 9)
        // Unordered messages pass by untouched.
        let plain = OutboundMessage(type: MessageType(2001), codec: CodecID(rawValue: 1), payload: ByteBuffer(integer: UInt32(9)), options: .processed)
        _ = await chain.send(plain, to: [local])
        #expect(ends.sent.withLockedValue { $0.last?.payload } == ByteBuffer(integer: UInt32(9)))
    }

    @Test func fragmentationExpiresIncompleteSetsOnTheInjectedClock() async throws {
        let clock = ManualClock()
        let stage = Fragmentation(settings: .init(fragmentSize: 4, assembly: .init(expireAfter: .seconds(60))), clock: clock)
        let ends = Ends()
        let chain = ends.chain([stage])
        var fragment = ByteBuffer()
        FragmentHeader(messageID: 1, index: 0, count: 2, totalLength: 8).write(into: &fragment)
        fragment.writeInteger(UInt32(5))
        let inbound = InboundMessage(sender: sender, type: MessageType(2001), codec: CodecID(rawValue: 1), payload: fragment, guarantee: .receipt, flags: MessageFlags.fragment)
        #expect(await chain.receive(inbound) == .processed)
        #expect(stage.statistics.pendingBytes == 4)
        let timer = Task { try await stage.run(context: context(clock)) }
        try await clock.waitForSleepers(1)
        try await clock.advance(by: .seconds(60), thenWaitForSleepers: 1)
        #expect(stage.statistics.expired == 1)
        #expect(stage.statistics.pendingBytes == 0)
        #expect(ends.delivered.withLockedValue { $0 }.isEmpty)
        timer.cancel()
    }

    @Test func fragmentationKeepsOneDeadlineForTheWholeSend() async throws {
        let stage = Fragmentation(settings: .init(fragmentSize: 4), clock: ManualClock())
        let ends = Ends()
        let chain = ends.chain([stage])
        let message = OutboundMessage(type: MessageType(2001), codec: CodecID(rawValue: 1), payload: ByteBuffer(bytes: Array(0..<10)), options: SendOptions(guarantee: .processed, timeout: .seconds(7)))
        let report = await chain.send(message, to: [local])
        #expect(report.allSucceeded)
        let sent = ends.sent.withLockedValue { $0 }
        #expect(sent.count == 3)
        #expect(sent.map(\.options.guarantee) == [.receipt, .receipt, .processed])
        #expect(sent.allSatisfy { $0.options.timeout <= .seconds(7) && $0.options.flags & MessageFlags.fragment != 0 })
    }

    @Test func throughputRecordsPerTypeAndMemberWithMetricsTestKit() async throws {
        let metrics = TestMetrics()
        let stage = Throughput(clock: ManualClock(), queueDepth: { _ in 3 }, factory: metrics)
        let chain = InterceptorChain(stages: [stage], ends: ChainEnds(
            transmit: { _, members in SendReport(outcomes: members.enumerated().map { ($1.id, $0 == 0 ? .delivered : .timedOut) }) },
            dispatch: { _ in .processed },
            signal: { _ in }
        ))
        let message = OutboundMessage(type: MessageType(2001), codec: CodecID(rawValue: 1), payload: ByteBuffer(bytes: Array(repeating: 1, count: 100)), options: .processed)
        _ = await chain.send(message, to: [local, sender])
        _ = await chain.receive(InboundMessage(sender: sender, type: MessageType(2001), codec: CodecID(rawValue: 1), payload: ByteBuffer(bytes: [1, 2, 3]), guarantee: .processed))
        let sentToB = try metrics.expectCounter("cohort.throughput.messages", [("direction", "sent"), ("type", "2001"), ("member", "b")])
        #expect(sentToB.totalValue == 1)
        #expect(try metrics.expectCounter("cohort.throughput.bytes", [("direction", "sent"), ("type", "2001"), ("member", "a")]).totalValue == 100)
        #expect(try metrics.expectCounter("cohort.throughput.bytes", [("direction", "received"), ("type", "2001"), ("member", "a")]).totalValue == 3)
        #expect(try metrics.expectCounter("cohort.send.failures", [("cause", "timedOut"), ("member", "a")]).totalValue == 1)
        #expect(try metrics.expectTimer("cohort.send.latency", [("guarantee", "processed")]).values.count == 1)
        #expect(try metrics.expectGauge("cohort.send.queue_depth", [("member", "b")]).lastValue == 3)
        #expect(stage.statistics == Throughput.Statistics(sentMessages: 2, sentBytes: 200, receivedMessages: 1, receivedBytes: 3, failures: 1))
    }
}
