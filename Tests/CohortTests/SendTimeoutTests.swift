import Cohort
import CohortTestKit
import NIOCore
import Synchronization
import Testing
@testable import CohortTransportTCP

/// Timeouts of acknowledged sends: one queue of deadlines and one timer per transport.
@Suite("Send timeouts", .timeLimit(.minutes(1)))
struct SendTimeoutTests {
    private static func ticket() -> SendTicket { SendTicket(members: [MemberID(high: 1, low: 2)]) }

    @Test func deadlinesAreKeptInOrderAndOnlyDueSendsExpire() {
        var deadlines = SendDeadlines()
        let t0 = ContinuousClock.now
        let late = Self.ticket()
        let middle = Self.ticket()
        let early = Self.ticket()
        deadlines.add(late, deadline: t0 + .milliseconds(300))
        deadlines.add(middle, deadline: t0 + .milliseconds(300))
        #expect(deadlines.earliest == t0 + .milliseconds(300))
        #expect(deadlines.count == 2)
        // A shorter timeout behind longer ones becomes the earliest deadline.
        deadlines.add(early, deadline: t0 + .milliseconds(100))
        #expect(deadlines.earliest == t0 + .milliseconds(100))

        let notYet = deadlines.expire(now: t0 + .milliseconds(99))
        #expect(notYet == t0 + .milliseconds(100))
        #expect(!early.isFinished)
        let afterEarly = deadlines.expire(now: t0 + .milliseconds(100))
        #expect(afterEarly == t0 + .milliseconds(300))
        #expect(early.isFinished)
        #expect(!late.isFinished && !middle.isFinished)
        let afterAll = deadlines.expire(now: t0 + .seconds(1))
        #expect(afterAll == nil)
        #expect(late.isFinished && middle.isFinished)
        #expect(deadlines.count == 0)
    }

    @Test func answeredSendsAreDroppedWithoutExpiring() {
        var deadlines = SendDeadlines()
        let t0 = ContinuousClock.now
        var tickets: [SendTicket] = []
        for i in 0..<100 {
            let ticket = Self.ticket()
            tickets.append(ticket)
            deadlines.add(ticket, deadline: t0 + .milliseconds(Int64(i)))
            // Answered before the next send, as synchronous sends are.
            ticket.resolve(slot: 0, .delivered)
        }
        // Each add dropped the answered sends in front of it: only the last one is left.
        #expect(deadlines.count == 1)
        let waiting = Self.ticket()
        deadlines.add(waiting, deadline: t0 + .seconds(5))
        #expect(deadlines.count == 1)
        let next = deadlines.expire(now: t0 + .seconds(1))
        #expect(next == t0 + .seconds(5))
        #expect(!waiting.isFinished)
    }

    /// Over TCP, time on a manual clock: a member whose handler never finishes makes processed
    /// sends time out, each at its own timeout, the shorter one first even when it was sent
    /// second; a send that is answered is delivered. Nothing here waits for real time to pass.
    @Test func sendsToAMemberThatNeverAnswersTimeOutAtTheirOwnDeadlines() async throws {
        let clock = ManualClock()
        let sender = TCPTransport(clock: clock)
        let receiver = TCPTransport()
        let holding = HoldingDelegate(heldType: MessageType(41))
        _ = try await sender.start(local: TransportConformance.localMember(0), delegate: RecordingTransportDelegate())
        var local = TransportConformance.localMember(1)
        local.endpoint = try await receiver.start(local: local, delegate: holding)
        let target = local
        func message(_ type: UInt32, timeout: Duration) -> OutboundMessage {
            OutboundMessage(type: MessageType(type), codec: .binary, payload: ByteBuffer(string: "x"), options: SendOptions(guarantee: .processed, timeout: timeout))
        }
        // Connect first, so that the held sends only wait for their answers.
        let warm = await sender.send(message(42, timeout: .seconds(5)), to: [target])
        #expect(warm.outcome(for: target.id) == .delivered)
        let start = clock.now

        let long = Task { await sender.send(message(41, timeout: .milliseconds(900)), to: [target]) }
        #expect(await eventually { await sender.deadlineQueue().armedAt == start + .milliseconds(900) })
        let short = Task { await sender.send(message(41, timeout: .milliseconds(150)), to: [target]) }
        // The shorter deadline, sent second, re-arms the one timer.
        #expect(await eventually { await sender.deadlineQueue().armedAt == start + .milliseconds(150) })
        #expect(await sender.deadlineQueue().waiting == 2)

        clock.advance(by: .milliseconds(149))
        clock.advance(by: .milliseconds(1))
        let shortReport = await short.value
        #expect(shortReport.outcome(for: target.id) == .timedOut)
        // The long one still waits, its deadline armed next.
        #expect(await eventually { await sender.deadlineQueue().armedAt == start + .milliseconds(900) })
        clock.advance(by: .milliseconds(749))
        #expect(await sender.deadlineQueue().armedAt == start + .milliseconds(900))
        clock.advance(by: .milliseconds(1))
        let longReport = await long.value
        #expect(longReport.outcome(for: target.id) == .timedOut)

        holding.release()
        let after = await sender.send(message(42, timeout: .seconds(5)), to: [target])
        #expect(after.outcome(for: target.id) == .delivered)
        await sender.shutdown()
        await receiver.shutdown()
    }
}

/// Holds messages of one type in the handler until ``release()``; answers the others at once.
final class HoldingDelegate: TransportDelegate, Sendable {
    private struct State {
        var released = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    let heldType: MessageType
    private let state = Mutex(State())

    init(heldType: MessageType) {
        self.heldType = heldType
    }

    func release() {
        let waiters = state.withLock { state in
            state.released = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func transport(didAccept member: Member) {}
    func transport(heardFrom member: Member) {}
    func transport(received message: InboundMessage) async -> DeliveryResult {
        if message.type == heldType {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state in
                    if state.released { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
        return .processed
    }
    func transport(lostConnectionTo member: Member, reason: String) {}
    func transport(memberLeft member: Member) {}
    func transport(asyncMessagesFailed count: Int, to member: Member, reason: String) {}
}
