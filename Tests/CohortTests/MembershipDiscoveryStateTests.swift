import CohortCore
import Testing

/// MembershipState's handling of discovery announcements (multicast `.alive` / `.gone`) and of
/// incarnations replaced by a restart.
@Suite("MembershipState: announcements and incarnations (pure, injected time)")
struct MembershipDiscoveryStateTests {
    let t0 = ContinuousClock.now
    let local = Member(name: "a", endpoint: Endpoint(host: "127.0.0.1", port: 1), startTime: 1)
    let b = Member(name: "b", endpoint: Endpoint(host: "127.0.0.1", port: 2), startTime: 2)
    let settings = MembershipState.Settings(heartbeatInterval: .milliseconds(250), missingAfter: .seconds(1), retryInterval: .milliseconds(500))

    @Test func announcementLeadsToOneHandshakeAndNoneOnceAMember() {
        var state = MembershipState(local: local, settings: settings)
        #expect(state.onAnnounced(b, now: t0) == [.handshake(b.endpoint)])
        // In flight: the next heartbeats do not start another.
        #expect(state.onAnnounced(b, now: t0 + .milliseconds(500)).isEmpty)
        _ = state.onHandshake(b, at: b.endpoint, now: t0 + .milliseconds(510))
        #expect(state.onAnnounced(b, now: t0 + .seconds(1)).isEmpty)
        #expect(state.onTick(now: t0 + .seconds(1)).allSatisfy { if case .handshake = $0 { false } else { true } })
    }

    @Test func announcementsOfSelfOtherDomainsAndRetiredIncarnationsAreIgnored() {
        var state = MembershipState(local: local, settings: settings)
        #expect(state.onAnnounced(local, now: t0).isEmpty)
        var stranger = b
        stranger.domain = "other"
        #expect(state.onAnnounced(stranger, now: t0).isEmpty)
        _ = state.onAccepted(b, now: t0)
        _ = state.onLeft(b.id)
        #expect(state.onAnnounced(b, now: t0).isEmpty)
    }

    @Test func announcementIsNotASignOfLife() {
        var state = MembershipState(local: local, settings: settings)
        _ = state.onAccepted(b, now: t0)
        _ = state.onAnnounced(b, now: t0 + .milliseconds(900))
        #expect(state.onTick(now: t0 + .seconds(1)).contains { if case .signal(.missing(b, _)) = $0 { true } else { false } })
    }

    @Test func discoveryGoneReportsAMemberMissingForVerificationAndStopsRetries() {
        var state = MembershipState(local: local, settings: settings)
        _ = state.onAnnounced(b, now: t0)
        _ = state.onHandshake(b, at: b.endpoint, now: t0)
        #expect(state.onDiscoveryGone(b.id, now: t0 + .seconds(3)) == [.signal(.missing(b, reason: "discovery reports it gone"))])
        // The failure detector's verdict removes it; its address is no candidate any more.
        _ = state.onRemoved(b.id, now: t0 + .seconds(3))
        #expect(state.onTick(now: t0 + .seconds(10)).allSatisfy { if case .handshake = $0 { false } else { true } })
        // Announced again (the link is back): handshake again, and the same incarnation rejoins.
        #expect(state.onAnnounced(b, now: t0 + .seconds(11)) == [.handshake(b.endpoint)])
        #expect(state.onHandshake(b, at: b.endpoint, now: t0 + .seconds(11)) == [.signal(.joined(b))])
    }

    @Test func discoveryGoneOfAnAddressNeverReachedDropsTheCandidate() {
        var state = MembershipState(local: local, settings: settings)
        _ = state.onAnnounced(b, now: t0)
        _ = state.onHandshakeFailed(b.endpoint, now: t0)
        #expect(state.onDiscoveryGone(b.id, now: t0 + .seconds(3)).isEmpty)
        #expect(state.onTick(now: t0 + .seconds(10)).allSatisfy { if case .handshake = $0 { false } else { true } })
    }

    @Test func newIncarnationAnnouncedAtAKnownAddressIsHandshakedAndReplacesTheOld() {
        var state = MembershipState(local: local, settings: settings)
        _ = state.onAnnounced(b, now: t0)
        _ = state.onHandshake(b, at: b.endpoint, now: t0)
        let restarted = Member(name: "b", endpoint: b.endpoint, startTime: 99)
        #expect(state.onAnnounced(restarted, now: t0 + .seconds(1)) == [.handshake(b.endpoint)])
        let actions = state.onHandshake(restarted, at: b.endpoint, now: t0 + .seconds(1))
        #expect(actions.contains(.signal(.joined(restarted))))
        #expect(actions.contains(.disconnect(b)))
        #expect(state.retiredIDs == [b.id])
    }

    @Test func restartAfterAVerdictRetiresTheRemovedIncarnation() {
        var state = MembershipState(local: local, settings: settings)
        _ = state.onAccepted(b, now: t0)
        _ = state.onRemoved(b.id, now: t0)
        #expect(!state.isTombstoned(b.id))
        let restarted = Member(name: "b", endpoint: b.endpoint, startTime: 99)
        #expect(state.onAccepted(restarted, now: t0 + .seconds(1)) == [.signal(.joined(restarted))])
        #expect(state.isTombstoned(b.id))
        // The old incarnation's late hello or heartbeat is refused.
        #expect(state.onAccepted(b, now: t0 + .seconds(2)).isEmpty)
        #expect(state.onHeard(b, now: t0 + .seconds(2)).isEmpty)
        #expect(state.members == [restarted])
    }
}
