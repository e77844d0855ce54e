import CohortCore
import Testing

@Suite("FailureDetectorState (pure, injected time)")
struct FailureDetectorStateTests {
    let t0 = ContinuousClock.now
    let member = Member(name: "b", endpoint: Endpoint(host: "127.0.0.1", port: 2), startTime: 1)

    func joined(_ settings: FailureDetectorState.Settings = .init()) -> FailureDetectorState {
        var state = FailureDetectorState(settings: settings)
        _ = state.onJoined(member)
        return state
    }

    @Test func missingMemberIsSuspectedAndProbedNotRemoved() {
        var state = joined()
        let actions = state.onMissing(member, now: t0)
        #expect(actions == [.publishSuspected(member), .probe(member)])
        #expect(state.isSuspected(member.id))
    }

    @Test func secondMissingReportDoesNotRepublishOrDoubleProbe() {
        var state = joined()
        _ = state.onMissing(member, now: t0)
        #expect(state.onMissing(member, now: t0 + .milliseconds(10)) == [])
    }

    @Test func aliveProbeRecovers() {
        var state = joined()
        _ = state.onMissing(member, now: t0)
        #expect(state.onProbeResult(member.id, .alive, now: t0) == [.publishRecovered(member)])
        #expect(!state.isSuspected(member.id))
    }

    @Test func refusedProbeRemovesAtOnce() {
        var state = joined()
        _ = state.onMissing(member, now: t0)
        #expect(state.onProbeResult(member.id, .refused, now: t0) == [.publishRemoved(member)])
    }

    @Test func oneTimedOutProbeIsNotEnough() {
        var state = joined(.init(reprobeInterval: .milliseconds(200), confirmations: 2))
        _ = state.onMissing(member, now: t0)
        #expect(state.onProbeResult(member.id, .timedOut, now: t0) == [])
        #expect(state.isSuspected(member.id))
        // Not yet due.
        #expect(state.onTick(now: t0 + .milliseconds(100)) == [])
        // Due: re-probe.
        #expect(state.onTick(now: t0 + .milliseconds(200)) == [.probe(member)])
        #expect(state.onProbeResult(member.id, .timedOut, now: t0 + .milliseconds(250)) == [.publishRemoved(member)])
    }

    @Test func suspectThatNeverAnswersIsRemovedAfterSuspectTimeout() {
        var state = joined(.init(suspectTimeout: .seconds(5)))
        _ = state.onMissing(member, now: t0)
        #expect(state.onTick(now: t0 + .seconds(4)) == [])
        #expect(state.onTick(now: t0 + .seconds(5)) == [.publishRemoved(member)])
    }

    @Test func unknownMembersAreIgnored() {
        var state = FailureDetectorState()
        #expect(state.onMissing(member, now: t0) == [])
        #expect(state.onProbeResult(member.id, .refused, now: t0) == [])
    }

    @Test func leftMemberIsNotProbed() {
        var state = joined()
        _ = state.onLeft(member.id)
        #expect(state.onMissing(member, now: t0) == [])
    }

    @Test func rejoinWhileSuspectedRecovers() {
        var state = joined()
        _ = state.onMissing(member, now: t0)
        #expect(state.onJoined(member) == [.publishRecovered(member)])
    }
}
