import CohortCore
import Testing

@Suite("MembershipState (pure, injected time)")
struct MembershipStateTests {
    let t0 = ContinuousClock.now
    let local = Member(name: "a", endpoint: Endpoint(host: "127.0.0.1", port: 1), startTime: 1)
    let b = Member(name: "b", endpoint: Endpoint(host: "127.0.0.1", port: 2), startTime: 2)
    let settings = MembershipState.Settings(heartbeatInterval: .milliseconds(250), missingAfter: .seconds(1), retryInterval: .milliseconds(500))

    @Test func candidatesBecomeHandshakesOnceAndNotForSelf() {
        var state = MembershipState(local: local, settings: settings)
        let actions = state.onCandidates([local.endpoint, b.endpoint], now: t0)
        #expect(actions == [.handshake(b.endpoint)])
        // In flight: not repeated.
        #expect(state.onCandidates([b.endpoint], now: t0).isEmpty)
    }

    @Test func handshakeAdmitsMemberAndSignalsJoin() {
        var state = MembershipState(local: local, settings: settings)
        _ = state.onCandidates([b.endpoint], now: t0)
        #expect(state.onHandshake(b, at: b.endpoint, now: t0) == [.signal(.joined(b))])
        #expect(state.members == [b])
        // A second handshake result of the same member is not a second join.
        #expect(state.onAccepted(b, now: t0) == [])
    }

    @Test func failedHandshakeIsRetriedAfterTheInterval() {
        var state = MembershipState(local: local, settings: settings)
        _ = state.onCandidates([b.endpoint], now: t0)
        _ = state.onHandshakeFailed(b.endpoint, now: t0)
        #expect(!state.onTick(now: t0 + .milliseconds(100)).contains(.handshake(b.endpoint)))
        #expect(state.onTick(now: t0 + .milliseconds(500)).contains(.handshake(b.endpoint)))
    }

    @Test func silenceBeyondMissingAfterIsReportedOnce() {
        var state = MembershipState(local: local, settings: settings)
        _ = state.onAccepted(b, now: t0)
        _ = state.onHeard(b, now: t0 + .milliseconds(500))
        #expect(!state.onTick(now: t0 + .milliseconds(1400)).contains { if case .signal(.missing) = $0 { true } else { false } })
        let late = state.onTick(now: t0 + .milliseconds(1500))
        #expect(late.contains(.signal(.missing(b, reason: "not heard from for 1.0 seconds"))))
        #expect(!state.onTick(now: t0 + .milliseconds(1600)).contains { if case .signal(.missing) = $0 { true } else { false } })
        // Heard again: a later silence is reported again.
        _ = state.onHeard(b, now: t0 + .seconds(2))
        #expect(state.onTick(now: t0 + .seconds(3)).contains { if case .signal(.missing) = $0 { true } else { false } })
    }

    @Test func heartbeatsGoOutEveryInterval() {
        var state = MembershipState(local: local, settings: settings)
        _ = state.onAccepted(b, now: t0)
        #expect(state.onTick(now: t0).contains(.heartbeat([b])))
        #expect(!state.onTick(now: t0 + .milliseconds(100)).contains(.heartbeat([b])))
        #expect(state.onTick(now: t0 + .milliseconds(250)).contains(.heartbeat([b])))
    }

    @Test func gracefulLeaveRemovesAndTombstones() {
        var state = MembershipState(local: local, settings: settings)
        _ = state.onAccepted(b, now: t0)
        #expect(state.onLeft(b.id) == [.disconnect(b), .signal(.left(b))])
        #expect(state.members.isEmpty)
        // The old incarnation cannot come back.
        #expect(state.onAccepted(b, now: t0) == [])
        #expect(state.isTombstoned(b.id))
    }

    @Test func newIncarnationAtSameAddressReplacesTheOld() {
        var state = MembershipState(local: local, settings: settings)
        _ = state.onAccepted(b, now: t0)
        let restarted = Member(name: "b", endpoint: b.endpoint, startTime: 99)
        let actions = state.onAccepted(restarted, now: t0)
        #expect(actions.contains(.disconnect(b)))
        #expect(actions.contains(.signal(.joined(restarted))))
        #expect(state.members == [restarted])
        #expect(state.isTombstoned(b.id))
    }

    @Test func otherDomainIsInvisible() {
        var state = MembershipState(local: local, settings: settings)
        var stranger = b
        stranger.domain = "other"
        #expect(state.onAccepted(stranger, now: t0).isEmpty)
        #expect(state.members.isEmpty)
    }

    @Test func removedByVerdictMayRejoinWithSameIncarnation() {
        var state = MembershipState(local: local, settings: settings)
        _ = state.onAccepted(b, now: t0)
        #expect(state.onRemoved(b.id, now: t0) == [.disconnect(b)])
        #expect(state.onAccepted(b, now: t0 + .seconds(1)) == [.signal(.joined(b))])
    }

    @Test func heartbeatFromUnknownMemberAdmitsItButNotAnOldIncarnation() {
        var state = MembershipState(local: local, settings: settings)
        #expect(state.onHeard(b, now: t0) == [.signal(.joined(b))])
        _ = state.onLeft(b.id)
        #expect(state.onHeard(b, now: t0).isEmpty)
    }

    /// Traffic other than heartbeats keeps a known member from looking silent, but never admits
    /// a member, never brings back a removed one, and never clears a suspicion.
    @Test func activityRefreshesKnownMembersOnly() {
        func missing(_ actions: [MembershipState.Action]) -> Bool {
            actions.contains { if case .signal(.missing) = $0 { true } else { false } }
        }
        var state = MembershipState(local: local, settings: settings)
        state.onActivity(b.id, now: t0)
        #expect(state.members.isEmpty)
        _ = state.onAccepted(b, now: t0)
        state.onActivity(b.id, now: t0 + .milliseconds(900))
        #expect(!missing(state.onTick(now: t0 + .milliseconds(1500))))
        #expect(missing(state.onTick(now: t0 + .milliseconds(1900))))
        // Once reported missing, activity (perhaps an old backlog being drained) changes nothing:
        // only a heartbeat or a probe answers the suspicion.
        state.onActivity(b.id, now: t0 + .seconds(2))
        _ = state.onRemoved(b.id, now: t0 + .seconds(2))
        state.onActivity(b.id, now: t0 + .seconds(3))
        #expect(state.members.isEmpty)
    }

    @Test func viewOrdersOldestFirst() {
        let c = Member(name: "c", endpoint: Endpoint(host: "127.0.0.1", port: 3), startTime: 0)
        let view = MembershipView(local: local, members: [b, c], version: 1)
        #expect(view.members.map(\.name) == ["c", "b"])
        #expect(view.allMembers.map(\.name) == ["c", "a", "b"])
    }
}
