import CohortCore
import NIOCore
import Testing

@Suite("FragmentAssemblyState (pure, injected time)")
struct FragmentAssemblyStateTests {
    let t0 = ContinuousClock.now
    let a = MemberID(high: 1, low: 1)
    let b = MemberID(high: 2, low: 2)

    func bytes(_ count: Int, _ value: UInt8) -> ByteBuffer {
        ByteBuffer(bytes: Array(repeating: value, count: count))
    }

    func header(_ id: UInt64, _ index: UInt32, _ count: UInt32, _ total: UInt64) -> FragmentHeader {
        FragmentHeader(messageID: id, index: index, count: count, totalLength: total)
    }

    @Test func fragmentsAreReassembledInOrder() {
        var state = FragmentAssemblyState()
        guard case .hold = state.onFragment(header(1, 0, 3, 25), body: bytes(10, 1), from: a, now: t0) else { Issue.record("first"); return }
        guard case .hold = state.onFragment(header(1, 1, 3, 25), body: bytes(10, 2), from: a, now: t0) else { Issue.record("second"); return }
        #expect(state.pendingBytes == 20)
        guard case .complete(let whole) = state.onFragment(header(1, 2, 3, 25), body: bytes(5, 3), from: a, now: t0) else { Issue.record("last"); return }
        #expect(Array(whole.readableBytesView) == Array(repeating: 1, count: 10) + Array(repeating: 2, count: 10) + Array(repeating: 3, count: 5))
        #expect(state.pendingBytes == 0)
        #expect(state.pendingMessages == 0)
        #expect(state.completed == 1)
    }

    @Test func sendersAreKeptApart() {
        var state = FragmentAssemblyState()
        _ = state.onFragment(header(1, 0, 2, 4), body: bytes(2, 1), from: a, now: t0)
        _ = state.onFragment(header(1, 0, 2, 4), body: bytes(2, 9), from: b, now: t0)
        guard case .complete(let fromA) = state.onFragment(header(1, 1, 2, 4), body: bytes(2, 1), from: a, now: t0) else { Issue.record("a"); return }
        #expect(Array(fromA.readableBytesView) == [1, 1, 1, 1])
        #expect(state.pendingMessages == 1)
    }

    @Test func aMissingFragmentDropsTheSet() {
        var state = FragmentAssemblyState()
        _ = state.onFragment(header(1, 0, 3, 30), body: bytes(10, 1), from: a, now: t0)
        // Fragment 1 was lost with a broken connection.
        guard case .refuse(let error) = state.onFragment(header(1, 2, 3, 30), body: bytes(10, 3), from: a, now: t0) else { Issue.record("accepted"); return }
        #expect(error.code == .incompleteMessage)
        #expect(state.pendingBytes == 0)
        #expect(state.refused == 1)
    }

    @Test func announcedLengthAboveTheCapIsRefusedBeforeAnythingIsKept() {
        var state = FragmentAssemblyState(settings: .init(maxMessageSize: 1000))
        guard case .refuse = state.onFragment(header(1, 0, 2, 1_000_000), body: bytes(10, 1), from: a, now: t0) else { Issue.record("accepted"); return }
        #expect(state.pendingBytes == 0)
    }

    @Test func bytesBeyondTheAnnouncedLengthAreRefused() {
        var state = FragmentAssemblyState()
        _ = state.onFragment(header(1, 0, 3, 12), body: bytes(10, 1), from: a, now: t0)
        guard case .refuse = state.onFragment(header(1, 1, 3, 12), body: bytes(10, 1), from: a, now: t0) else { Issue.record("accepted"); return }
        #expect(state.pendingBytes == 0)
    }

    @Test func memoryIsBoundedPerSenderAndPerNode() {
        var state = FragmentAssemblyState(settings: .init(maxMessageSize: 1000, maxPendingBytesPerSender: 100, maxPendingBytes: 150))
        _ = state.onFragment(header(1, 0, 10, 1000), body: bytes(90, 1), from: a, now: t0)
        guard case .refuse = state.onFragment(header(1, 1, 10, 1000), body: bytes(20, 1), from: a, now: t0) else { Issue.record("per sender"); return }
        _ = state.onFragment(header(2, 0, 10, 1000), body: bytes(90, 1), from: a, now: t0)
        _ = state.onFragment(header(1, 0, 10, 1000), body: bytes(50, 1), from: b, now: t0)
        guard case .refuse = state.onFragment(header(2, 0, 10, 1000), body: bytes(20, 1), from: b, now: t0) else { Issue.record("per node"); return }
        #expect(state.pendingBytes <= 150)
    }

    @Test func incompleteSetsExpireOnTheInjectedClock() {
        var state = FragmentAssemblyState(settings: .init(expireAfter: .seconds(60)))
        _ = state.onFragment(header(1, 0, 2, 20), body: bytes(10, 1), from: a, now: t0)
        #expect(state.onTick(now: t0 + .seconds(59)) == 0)
        #expect(state.onTick(now: t0 + .seconds(60)) == 1)
        #expect(state.expired == 1)
        #expect(state.pendingBytes == 0)
        // The rest of the expired message is refused, not started anew.
        guard case .refuse = state.onFragment(header(1, 1, 2, 20), body: bytes(10, 1), from: a, now: t0 + .seconds(61)) else { Issue.record("accepted"); return }
    }

    @Test func aDepartedSendersSetsAreDropped() {
        var state = FragmentAssemblyState()
        _ = state.onFragment(header(1, 0, 2, 20), body: bytes(10, 1), from: a, now: t0)
        #expect(state.onMemberGone(a) == 1)
        #expect(state.pendingBytes == 0)
    }

    @Test func malformedHeadersAreRefused() {
        var truncated = ByteBuffer(bytes: [1, 0, 0])
        #expect(throws: CohortError.self) { try FragmentHeader.read(from: &truncated) }
        var buffer = ByteBuffer()
        header(1, 5, 5, 10).write(into: &buffer)
        #expect(throws: CohortError.self) { try FragmentHeader.read(from: &buffer) }
        #expect(buffer.readerIndex == 0)
    }
}
