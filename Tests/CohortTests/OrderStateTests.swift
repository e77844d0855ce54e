import CohortCore
import NIOCore
import Testing

@Suite("OrderState (pure, injected time)")
struct OrderStateTests {
    let t0 = ContinuousClock.now
    let a = MemberID(high: 1, low: 1)
    let b = MemberID(high: 2, low: 2)

    /// Delivers like the stage: every `deliver` is finished at once; returns what went up, in order.
    func run(_ state: inout OrderState<Int>, _ actions: [OrderState<Int>.Action], from sender: MemberID, now: ContinuousClock.Instant, into log: inout [String]) {
        var queue = actions
        while !queue.isEmpty {
            switch queue.removeFirst() {
            case .deliver(let n):
                log.append("\(n)")
                queue += state.onDelivered(from: sender, now: now)
            case .late(let n):
                log.append("late \(n)")
            case .gap(_, let missing):
                log.append("gap \(missing.lowerBound)-\(missing.upperBound)")
            }
        }
    }

    @Test func inOrderMessagesGoUpAtOnce() {
        var state = OrderState<Int>()
        var log: [String] = []
        for seq in 1...3 { run(&state, state.onMessage(Int(seq), seq: UInt64(seq), from: a, now: t0), from: a, now: t0, into: &log) }
        #expect(log == ["1", "2", "3"])
        #expect(state.held == 0)
    }

    @Test func aMessageAheadOfAGapWaitsForIt() {
        var state = OrderState<Int>()
        var log: [String] = []
        run(&state, state.onMessage(3, seq: 3, from: a, now: t0), from: a, now: t0, into: &log)
        run(&state, state.onMessage(2, seq: 2, from: a, now: t0), from: a, now: t0, into: &log)
        #expect(log.isEmpty)
        #expect(state.held == 2)
        run(&state, state.onMessage(1, seq: 1, from: a, now: t0), from: a, now: t0, into: &log)
        #expect(log == ["1", "2", "3"])
        #expect(state.gaps == 0)
    }

    @Test func oneAtATimePerSender() {
        var state = OrderState<Int>()
        // 1 goes up and is not finished yet: 2 waits even though it is next.
        let first = state.onMessage(1, seq: 1, from: a, now: t0)
        guard case .deliver(1)? = first.first else { Issue.record("\(first)"); return }
        #expect(state.onMessage(2, seq: 2, from: a, now: t0).isEmpty)
        // Another sender is not held up.
        guard case .deliver(10)? = state.onMessage(10, seq: 1, from: b, now: t0).first else { Issue.record("b held"); return }
        let next = state.onDelivered(from: a, now: t0)
        guard case .deliver(2)? = next.first else { Issue.record("\(next)"); return }
    }

    @Test func aGapIsReportedAfterTheTimeoutAndSkipped() {
        var state = OrderState<Int>(settings: .init(gapTimeout: .seconds(3)))
        var log: [String] = []
        run(&state, state.onMessage(1, seq: 1, from: a, now: t0), from: a, now: t0, into: &log)
        run(&state, state.onMessage(4, seq: 4, from: a, now: t0), from: a, now: t0, into: &log)
        run(&state, state.onMessage(5, seq: 5, from: a, now: t0 + .seconds(1)), from: a, now: t0, into: &log)
        let early = t0 + .milliseconds(2999)
        run(&state, state.onTick(now: early), from: a, now: early, into: &log)
        #expect(log == ["1"], "nothing skipped before the timeout")
        let late = t0 + .seconds(3)
        run(&state, state.onTick(now: late), from: a, now: late, into: &log)
        #expect(log == ["1", "gap 2-3", "4", "5"])
        #expect(state.gaps == 1)
        // A skipped message that arrives after all still goes up, marked late.
        run(&state, state.onMessage(2, seq: 2, from: a, now: late), from: a, now: late, into: &log)
        #expect(log.last == "late 2")
        #expect(state.lateDeliveries == 1)
        // And the order goes on after the skipped range.
        run(&state, state.onMessage(6, seq: 6, from: a, now: late), from: a, now: late, into: &log)
        #expect(log.last == "6")
    }

    @Test func aNewIncarnationStartsAtOne() {
        var state = OrderState<Int>()
        var log: [String] = []
        for seq in 1...5 { run(&state, state.onMessage(seq, seq: UInt64(seq), from: a, now: t0), from: a, now: t0, into: &log) }
        // The restarted process has a new id; its first message is 1 again and goes up at once.
        let restarted = MemberID(high: 1, low: 99)
        run(&state, state.onMessage(100, seq: 1, from: restarted, now: t0), from: restarted, now: t0, into: &log)
        #expect(log.last == "100")
        #expect(state.gaps == 0)
    }

    @Test func heldMessagesAreBoundedPerSender() {
        var state = OrderState<Int>(settings: .init(gapTimeout: .seconds(60), maxHeldPerSender: 3))
        var log: [String] = []
        for seq in 2...4 { run(&state, state.onMessage(seq, seq: UInt64(seq), from: a, now: t0), from: a, now: t0, into: &log) }
        #expect(log.isEmpty)
        // One more than the bound: the gap is skipped at once instead of waiting for the timeout.
        run(&state, state.onMessage(5, seq: 5, from: a, now: t0), from: a, now: t0, into: &log)
        #expect(log == ["gap 1-1", "2", "3", "4", "5"])
    }

    @Test func aDepartedSenderIsFlushedInOrderAndForgotten() {
        var state = OrderState<Int>()
        var log: [String] = []
        run(&state, state.onMessage(3, seq: 3, from: a, now: t0), from: a, now: t0, into: &log)
        run(&state, state.onMessage(5, seq: 5, from: a, now: t0), from: a, now: t0, into: &log)
        run(&state, state.onMemberGone(a, now: t0), from: a, now: t0, into: &log)
        #expect(log == ["gap 1-2", "3", "gap 4-4", "5"])
        #expect(state.senderCount == 0)
    }

    @Test func headerCarriesOneNumberPerDestination() throws {
        var buffer = ByteBuffer()
        OrderHeader.write([(a, 7), (b, 9)], into: &buffer)
        buffer.writeString("payload")
        var forB = buffer
        #expect(try OrderHeader.read(from: &forB, for: b) == 9)
        #expect(forB.readString(length: forB.readableBytes) == "payload")
        var forOther = buffer
        #expect(try OrderHeader.read(from: &forOther, for: MemberID(high: 3, low: 3)) == nil)
    }

    @Test func aHeaderAnnouncingMoreEntriesThanBytesIsRefused() {
        var buffer = ByteBuffer()
        buffer.writeInteger(OrderHeader.format)
        buffer.writeInteger(UInt16.max)
        buffer.writeInteger(UInt64(1))
        #expect(throws: CohortError.self) { try OrderHeader.read(from: &buffer, for: a) }
        #expect(buffer.readerIndex == 0, "a refused header moves nothing")
    }
}
