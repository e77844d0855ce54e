import Cohort
import CohortTestKit
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// The failure detector's actor, driven through its messages, with time on a manual clock.
@Suite("FailureDetector (actor, messages, manual clock)", .timeLimit(.minutes(1)))
struct FailureDetectorActorTests {
    let member = Member(name: "b", endpoint: Endpoint(host: "127.0.0.1", port: 2), startTime: 1)

    /// What the actor does to the world, as streams the test reads in order.
    final class World: Sendable {
        let events: AsyncStream<MembershipEvent>
        let probes: AsyncStream<Member>
        private let eventInput: AsyncStream<MembershipEvent>.Continuation
        private let probeInput: AsyncStream<Member>.Continuation
        private let forgotten = NIOLockedValueBox<[Member]>([])
        /// What a probe answers; nil: the probe never answers (the test sends the result itself).
        let answer: FailureDetectorState.ProbeResult?

        init(answer: FailureDetectorState.ProbeResult?) {
            self.answer = answer
            (events, eventInput) = AsyncStream.makeStream(of: MembershipEvent.self)
            (probes, probeInput) = AsyncStream.makeStream(of: Member.self)
        }

        var forgottenMembers: [Member] { forgotten.withLockedValue { $0 } }

        func context(clock: ManualClock) -> InterceptorContext {
            InterceptorContext(
                probe: { [probeInput, answer] member, _ in
                    probeInput.yield(member)
                    guard let answer else {
                        try? await suspendUntilCancelled()
                        return .timedOut
                    }
                    return answer
                },
                publish: { [eventInput] event in eventInput.yield(event) },
                forget: { [forgotten] member in forgotten.withLockedValue { $0.append(member) } },
                local: Member(name: "a", endpoint: Endpoint(host: "127.0.0.1", port: 1), startTime: 0),
                now: { clock.now },
                sleep: { try await clock.sleep(for: $0) },
                logger: Logger(label: "test")
            )
        }
    }

    /// Runs the actor for the body, then stops it.
    func withDetector(
        _ settings: FailureDetectorState.Settings = .init(),
        answer: FailureDetectorState.ProbeResult?,
        _ body: (FailureDetector, World, ManualClock) async throws -> Void
    ) async throws {
        let clock = ManualClock()
        let detector = FailureDetector(settings: settings, clock: clock)
        let world = World(answer: answer)
        let context = world.context(clock: clock)
        let running = Task { try await detector.run(context: context) }
        try await body(detector, world, clock)
        running.cancel()
        _ = try? await running.value
    }

    @Test func missingMemberIsSuspectedProbedAndRecoversWhenTheProbeIsAnswered() async throws {
        try await withDetector(answer: .alive) { detector, world, _ in
            var events = world.events.makeAsyncIterator()
            var probes = world.probes.makeAsyncIterator()
            detector.send(.joined(member))
            detector.send(.missing(member, reason: "not heard from for 1 s"))
            #expect(await events.next() == .suspected(member))
            #expect(await probes.next() == member)
            // The probe's answer comes back to the actor as .probeAnswered.
            #expect(await events.next() == .recovered(member))
            await detector.settle()
            #expect(await detector.suspects.isEmpty)
            #expect(world.forgottenMembers.isEmpty)
        }
    }

    @Test func refusedProbeRemovesAndForgetsTheMember() async throws {
        try await withDetector(answer: .refused) { detector, world, _ in
            var events = world.events.makeAsyncIterator()
            detector.send(.joined(member))
            detector.send(.sendFailed(member, reason: "connection reset"))
            #expect(await events.next() == .suspected(member))
            #expect(await events.next() == .removed(member))
            await detector.settle()
            #expect(world.forgottenMembers == [member])
        }
    }

    /// Timed-out probes count up to the confirmations; re-probes wait for the re-probe interval
    /// on the clock.
    @Test func timedOutProbesRemoveAfterTheConfirmationsOnlyAtTheClocksPace() async throws {
        let settings = FailureDetectorState.Settings(probeTimeout: .milliseconds(500), reprobeInterval: .milliseconds(200), confirmations: 2)
        try await withDetector(settings, answer: nil) { detector, world, clock in
            var events = world.events.makeAsyncIterator()
            var probes = world.probes.makeAsyncIterator()
            detector.send(.joined(member))
            detector.send(.missing(member, reason: "silent"))
            #expect(await events.next() == .suspected(member))
            #expect(await probes.next() == member)

            detector.send(.probeFailed(member, .timedOut))
            await detector.settle()
            #expect(await detector.failedProbes(of: member.id) == 1)
            #expect(await !detector.isProbing(member.id))
            #expect(await detector.suspects == [member])

            // Not due yet: a tick at +100 ms probes nobody.
            clock.advance(by: .milliseconds(100))
            detector.send(.tick)
            await detector.settle()
            #expect(await !detector.isProbing(member.id))

            // Due at +200 ms: the actor's own timer (or this tick) re-probes, once.
            clock.advance(by: .milliseconds(100))
            detector.send(.tick)
            #expect(await probes.next() == member)
            await detector.settle()
            #expect(await detector.isProbing(member.id))

            detector.send(.probeFailed(member, .timedOut))
            #expect(await events.next() == .removed(member))
            await detector.settle()
            #expect(world.forgottenMembers == [member])
            #expect(await detector.suspects.isEmpty)
        }
    }

    /// The actor's own timer, on the injected clock, gives up on a suspect after the suspect
    /// timeout: no message but the clock's.
    @Test func suspectThatNeverAnswersIsRemovedAfterTheSuspectTimeoutByTheTimer() async throws {
        let settings = FailureDetectorState.Settings(reprobeInterval: .milliseconds(200), suspectTimeout: .seconds(5))
        try await withDetector(settings, answer: nil) { detector, world, clock in
            var events = world.events.makeAsyncIterator()
            detector.send(.joined(member))
            detector.send(.missing(member, reason: "silent"))
            #expect(await events.next() == .suspected(member))
            await detector.settle()
            // The probe never answers; time passes in re-probe steps until the suspect timeout.
            // Each step waits until the timer sleeps again, so no tick is skipped.
            for _ in 0..<25 {
                #expect(await eventually(timeout: .seconds(5), poll: .milliseconds(1)) { clock.sleeperCount >= 1 })
                clock.advance(by: .milliseconds(200))
                await detector.settle()
            }
            #expect(await events.next() == .removed(member))
            #expect(world.forgottenMembers == [member])
        }
    }

    @Test func leftMemberIsNeverProbedAndUnknownMembersAreIgnored() async throws {
        try await withDetector(answer: .refused) { detector, world, _ in
            let stranger = Member(name: "c", endpoint: Endpoint(host: "127.0.0.1", port: 3), startTime: 2)
            detector.send(.joined(member))
            detector.send(.left(member))
            detector.send(.missing(member, reason: "connection closed"))
            detector.send(.missing(stranger, reason: "never joined"))
            await detector.settle()
            #expect(await detector.suspects.isEmpty)
            // A member that joins later is judged normally: its suspicion is the first event.
            var events = world.events.makeAsyncIterator()
            detector.send(.joined(stranger))
            detector.send(.missing(stranger, reason: "silent"))
            #expect(await events.next() == .suspected(stranger))
        }
    }

    /// Through the interceptor stage: a send whose transport reports a broken connection makes
    /// the stage tell the actor, which suspects the member; no message waits for the actor.
    @Test func stageTurnsConnectionFailuresOfSendsIntoMessages() async throws {
        let clock = ManualClock()
        let stage = TcpFailureDetector(clock: clock)
        let world = World(answer: .alive)
        let running = Task { try await stage.run(context: world.context(clock: clock)) }
        let chain = InterceptorChain(stages: [stage], ends: ChainEnds(
            transmit: { _, members in SendReport(outcomes: members.map { ($0.id, .connectionFailed("reset")) }) },
            dispatch: { _ in .processed },
            signal: { _ in }
        ))
        var events = world.events.makeAsyncIterator()
        chain.membership(.joined(member))
        let message = OutboundMessage(type: MessageType(9), codec: .binary, payload: .init(), options: .asynchronous)
        let report = await chain.send(message, to: [member])
        #expect(report.outcome(for: member.id) == .connectionFailed("reset"))
        #expect(await events.next() == .suspected(member))
        #expect(await events.next() == .recovered(member))
        running.cancel()
        _ = try? await running.value
    }
}
