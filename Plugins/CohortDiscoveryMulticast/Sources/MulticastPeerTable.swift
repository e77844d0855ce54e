import CohortCore
import Metrics

/// The pure logic of multicast discovery, with time passed in: which members were heard, when,
/// and which datagrams to ignore.
///
/// It turns decoded datagrams into ``CohortCore/DiscoveryEvent``s — `.alive` for every heartbeat
/// of another member of the local domain, `.gone` on a leave datagram and for a member unheard of
/// for ``dropTime`` — and classifies the rest (own datagrams, other domains, late heartbeats of a
/// member that left) so the shell can count them.
public struct MulticastPeerTable: Sendable {
    /// What a received datagram turned out to be.
    public enum Outcome: Sendable, Equatable {
        /// A heartbeat of a member of the local domain (`new`: not heard before).
        case alive(new: Bool)
        /// A leave announcement.
        case leave
        /// Our own datagram, looped back.
        case own
        /// A member of another domain: invisible.
        case foreignDomain
        /// A heartbeat of a member that left less than a drop time ago (reordered datagram).
        case stale
    }

    struct Peer: Sendable {
        var member: Member
        var lastHeard: ContinuousClock.Instant
    }

    /// The local member (its id and domain filter the datagrams).
    public let local: Member
    /// A member unheard of for this long is reported gone.
    public let dropTime: Duration
    private var peers: [MemberID: Peer] = [:]
    private var departed: [MemberID: ContinuousClock.Instant] = [:]

    /// Creates an empty table.
    public init(local: Member, dropTime: Duration) {
        self.local = local
        self.dropTime = dropTime
    }

    /// The members currently heard, oldest first.
    public var members: [Member] { peers.values.map(\.member).sorted(by: MembershipView.oldestFirst) }

    /// A datagram arrived.
    public mutating func receive(_ datagram: MulticastDatagram.Decoded, now: ContinuousClock.Instant) -> (outcome: Outcome, events: [DiscoveryEvent]) {
        let member = datagram.member
        if member.id == local.id { return (.own, []) }
        if member.domain != local.domain { return (.foreignDomain, []) }
        switch datagram.kind {
        case .leave:
            peers.removeValue(forKey: member.id)
            departed[member.id] = now
            return (.leave, [.gone(member.id)])
        case .alive:
            if let left = departed[member.id], left.advanced(by: dropTime) > now { return (.stale, []) }
            let isNew = peers[member.id] == nil
            if isNew {
                // A new incarnation at the address of a heard member replaces it.
                for (id, peer) in peers where peer.member.endpoint == member.endpoint { peers.removeValue(forKey: id) }
            }
            peers[member.id] = Peer(member: member, lastHeard: now)
            return (.alive(new: isNew), [.alive(member)])
        }
    }

    /// Reports members unheard of for the drop time as gone, and forgets them.
    public mutating func expire(now: ContinuousClock.Instant) -> [DiscoveryEvent] {
        var events: [DiscoveryEvent] = []
        for (id, peer) in peers where peer.lastHeard.advanced(by: dropTime) <= now {
            peers.removeValue(forKey: id)
            events.append(.gone(id))
        }
        for (id, at) in departed where at.advanced(by: dropTime) <= now { departed.removeValue(forKey: id) }
        return events
    }
}

/// What multicast discovery has sent, heard and ignored so far (also exported as swift-metrics
/// counters `cohort.discovery.multicast.datagrams` with an `outcome` dimension, and
/// `cohort.discovery.multicast.socket_errors`).
public struct MulticastDiscoveryCounters: Sendable, Equatable, CustomStringConvertible {
    /// Datagrams sent (heartbeats and leaves).
    public var sent = 0
    /// Sends that failed.
    public var sendFailures = 0
    /// Datagrams received, of any kind.
    public var received = 0
    /// Heartbeats of other members of the domain.
    public var alive = 0
    /// Leave announcements.
    public var leaves = 0
    /// Members reported gone after the drop time.
    public var dropped = 0
    /// Ignored: not a Cohort discovery datagram, or truncated.
    public var malformed = 0
    /// Ignored: a format version this build does not read.
    public var incompatibleVersion = 0
    /// Ignored: no valid MAC under this node's cluster keys, or outside the time window.
    public var unauthenticated = 0
    /// Ignored: a member of another domain.
    public var foreignDomain = 0
    /// Ignored: our own datagrams, looped back.
    public var own = 0
    /// Ignored: a late heartbeat of a member that left.
    public var stale = 0
    /// Socket errors (open, join, receive, send) that made the socket re-open.
    public var socketErrors = 0
    /// Times the socket was re-opened after an error.
    public var reopens = 0

    /// Creates zero counters.
    public init() {}

    /// Every ignored datagram.
    public var ignored: Int { malformed + incompatibleVersion + unauthenticated + foreignDomain + own + stale }

    public var description: String {
        "sent \(sent) (failed \(sendFailures)), received \(received): alive \(alive), leave \(leaves), malformed \(malformed), incompatible \(incompatibleVersion), unauthenticated \(unauthenticated), other domain \(foreignDomain), own \(own), stale \(stale); dropped \(dropped); socket errors \(socketErrors), re-opened \(reopens)"
    }
}

/// The swift-metrics side of ``MulticastDiscoveryCounters``.
struct MulticastMetrics: Sendable {
    let sent = Counter(label: "cohort.discovery.multicast.datagrams", dimensions: [("outcome", "sent")])
    let sendFailed = Counter(label: "cohort.discovery.multicast.datagrams", dimensions: [("outcome", "send_failed")])
    let alive = Counter(label: "cohort.discovery.multicast.datagrams", dimensions: [("outcome", "alive")])
    let leave = Counter(label: "cohort.discovery.multicast.datagrams", dimensions: [("outcome", "leave")])
    let malformed = Counter(label: "cohort.discovery.multicast.datagrams", dimensions: [("outcome", "malformed")])
    let incompatible = Counter(label: "cohort.discovery.multicast.datagrams", dimensions: [("outcome", "incompatible_version")])
    let unauthenticated = Counter(label: "cohort.discovery.multicast.datagrams", dimensions: [("outcome", "unauthenticated")])
    let foreignDomain = Counter(label: "cohort.discovery.multicast.datagrams", dimensions: [("outcome", "foreign_domain")])
    let own = Counter(label: "cohort.discovery.multicast.datagrams", dimensions: [("outcome", "own")])
    let stale = Counter(label: "cohort.discovery.multicast.datagrams", dimensions: [("outcome", "stale")])
    let dropped = Counter(label: "cohort.discovery.multicast.dropped_members")
    let socketErrors = Counter(label: "cohort.discovery.multicast.socket_errors")
}
