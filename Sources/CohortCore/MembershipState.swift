/// The pure logic of the membership service, with time passed in.
///
/// It turns discovery candidates into handshakes, handshakes and accepted connections into
/// members, and silence into ``MembershipSignal/missing(_:reason:)`` signals. It never decides
/// that a member is dead: that is the failure detector's verdict, fed back with ``onRemoved(_:)``.
public struct MembershipState: Sendable {
    /// Tunables.
    public struct Settings: Sendable, Equatable, Codable {
        /// How often heartbeats are sent.
        public var heartbeatInterval: Duration
        /// A member unheard of for this long is reported missing.
        public var missingAfter: Duration
        /// Delay before retrying a candidate whose handshake failed.
        public var retryInterval: Duration
        /// How long one handshake may take.
        public var handshakeTimeout: Duration

        public init(
            heartbeatInterval: Duration = .milliseconds(250),
            missingAfter: Duration = .milliseconds(1000),
            retryInterval: Duration = .milliseconds(500),
            handshakeTimeout: Duration = .milliseconds(1000)
        ) {
            self.heartbeatInterval = heartbeatInterval
            self.missingAfter = missingAfter
            self.retryInterval = retryInterval
            self.handshakeTimeout = handshakeTimeout
        }
    }

    /// What the shell must do.
    public enum Action: Sendable, Equatable {
        /// Connect to an address and exchange member records.
        case handshake(Endpoint)
        /// Pass a signal up the interceptor chain.
        case signal(MembershipSignal)
        /// Send heartbeats to these members.
        case heartbeat([Member])
        /// Drop the transport's connection to a member.
        case disconnect(Member)
    }

    struct Entry: Sendable {
        var member: Member
        var lastHeard: ContinuousClock.Instant
        var reportedMissing: Bool
    }

    struct Candidate: Sendable {
        var inFlight: Bool
        var nextAttempt: ContinuousClock.Instant
        var memberID: MemberID?
    }

    /// The settings in force.
    public let settings: Settings
    /// The local member (its endpoint is the bound one once ``onListening(_:)`` was called).
    public private(set) var local: Member
    private var entries: [MemberID: Entry] = [:]
    private var candidates: [Endpoint: Candidate] = [:]
    private var lastHeartbeat: ContinuousClock.Instant?
    /// Members that left or were replaced by a new incarnation, so late packets from them are
    /// refused.
    private var tombstones: Set<MemberID> = []
    /// Where discovery last saw each member announce itself (for ``onDiscoveryGone(_:now:)``).
    private var announced: [MemberID: Endpoint] = [:]
    /// The last incarnation removed by a verdict at each address: retired when another one
    /// joins there.
    private var removedAt: [Endpoint: MemberID] = [:]

    public init(local: Member, settings: Settings = Settings()) {
        self.local = local
        self.settings = settings
    }

    /// The members currently known.
    public var members: [Member] { entries.values.map(\.member).sorted(by: MembershipView.oldestFirst) }

    /// Whether an id was removed earlier (an old incarnation).
    public func isTombstoned(_ id: MemberID) -> Bool { tombstones.contains(id) }

    /// The ids that left or were replaced by a new incarnation: their messages are refused.
    public var retiredIDs: Set<MemberID> { tombstones }

    /// The transport listens: the local member's address is the bound one (port 0 resolved).
    ///
    /// Until then candidates at the configured address are not recognised as the node itself.
    public mutating func onListening(_ endpoint: Endpoint) {
        local.endpoint = endpoint
    }

    // MARK: - discovery

    /// Discovery reported the full list of candidate addresses.
    public mutating func onCandidates(_ endpoints: [Endpoint], now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        for endpoint in endpoints where endpoint != local.endpoint {
            if candidates[endpoint] == nil {
                candidates[endpoint] = Candidate(inFlight: false, nextAttempt: now, memberID: nil)
            }
        }
        actions.append(contentsOf: dueHandshakes(now: now))
        return actions
    }

    /// Discovery heard a member announce itself (a multicast heartbeat: `DiscoveryEvent.alive`).
    ///
    /// Its address becomes a candidate to handshake with, unless it is a member already (the
    /// announcement is not a sign of life: liveness comes from the members' own heartbeats). An
    /// announcement by a new incarnation at a known address makes that address due again.
    public mutating func onAnnounced(_ member: Member, now: ContinuousClock.Instant) -> [Action] {
        guard member.id != local.id, member.endpoint != local.endpoint, !tombstones.contains(member.id),
              member.domain == local.domain
        else { return [] }
        if announced[member.id] == nil {
            // One address per member: forget older incarnations announced at the same address.
            for (id, endpoint) in announced where endpoint == member.endpoint { announced.removeValue(forKey: id) }
        }
        announced[member.id] = member.endpoint
        if var candidate = candidates[member.endpoint] {
            if let known = candidate.memberID, known != member.id {
                candidate.memberID = nil
                candidate.nextAttempt = now
                candidates[member.endpoint] = candidate
            }
        } else {
            candidates[member.endpoint] = Candidate(inFlight: false, nextAttempt: now, memberID: nil)
        }
        return dueHandshakes(now: now)
    }

    /// Discovery reports a member gone (unheard of for its drop time, or a leave announcement:
    /// `DiscoveryEvent.gone`).
    ///
    /// Its address stops being a candidate (no handshakes with a dead address until it is
    /// announced again), and a member still in the view is reported missing, for the failure
    /// detector to verify: discovery alone never removes anyone.
    public mutating func onDiscoveryGone(_ id: MemberID, now: ContinuousClock.Instant) -> [Action] {
        if let endpoint = announced.removeValue(forKey: id), let candidate = candidates[endpoint],
           candidate.memberID == nil || candidate.memberID == id {
            candidates.removeValue(forKey: endpoint)
        }
        for (endpoint, candidate) in candidates where candidate.memberID == id {
            candidates.removeValue(forKey: endpoint)
        }
        return onConnectionLost(id, reason: "discovery reports it gone", now: now)
    }

    // MARK: - handshakes

    /// A handshake with an address succeeded.
    public mutating func onHandshake(_ member: Member, at endpoint: Endpoint, now: ContinuousClock.Instant) -> [Action] {
        var candidate = candidates[endpoint] ?? Candidate(inFlight: false, nextAttempt: now, memberID: nil)
        candidate.inFlight = false
        candidate.memberID = member.id
        candidates[endpoint] = candidate
        return admit(member, now: now)
    }

    /// A handshake with an address failed; retry later.
    public mutating func onHandshakeFailed(_ endpoint: Endpoint, now: ContinuousClock.Instant) -> [Action] {
        if var candidate = candidates[endpoint] {
            candidate.inFlight = false
            candidate.nextAttempt = now.advanced(by: settings.retryInterval)
            candidates[endpoint] = candidate
        }
        return []
    }

    /// A member connected to us and introduced itself.
    public mutating func onAccepted(_ member: Member, now: ContinuousClock.Instant) -> [Action] {
        admit(member, now: now)
    }

    private mutating func admit(_ member: Member, now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        guard member.id != local.id, !tombstones.contains(member.id) else { return actions }
        guard member.domain == local.domain else { return actions }
        if var existing = entries[member.id] {
            existing.lastHeard = now
            entries[member.id] = existing
            return actions
        }
        // A new incarnation at the address of a member removed earlier retires that one for good.
        if let old = removedAt.removeValue(forKey: member.endpoint), old != member.id {
            tombstones.insert(old)
        }
        // A new incarnation at the address of a known member replaces it: the old one is gone.
        for (id, entry) in entries where entry.member.endpoint == member.endpoint {
            entries.removeValue(forKey: id)
            tombstones.insert(id)
            actions.append(.disconnect(entry.member))
            actions.append(.signal(.missing(entry.member, reason: "replaced by a new incarnation \(member.id)")))
        }
        entries[member.id] = Entry(member: member, lastHeard: now, reportedMissing: false)
        actions.append(.signal(.joined(member)))
        return actions
    }

    // MARK: - liveness

    /// Any sign of life from a member.
    ///
    /// A member that is not known (and not an old incarnation or one that left) is admitted: it
    /// proves it is alive, and the two sides' views converge again after a verdict that only one
    /// side reached (for example when a partition heals between the two sides' last probes).
    public mutating func onHeard(_ member: Member, now: ContinuousClock.Instant) -> [Action] {
        guard var entry = entries[member.id] else {
            return admit(member, now: now)
        }
        entry.lastHeard = now
        entry.reportedMissing = false
        entries[member.id] = entry
        return []
    }

    /// Traffic from a member other than a heartbeat — data it sent, acknowledgements of ours.
    ///
    /// It refreshes the silence clock of a known member only: activity never admits a member,
    /// never clears a suspicion (a probe does that), and is ignored for members not in the view —
    /// a backlog drained after a member was removed must not bring it back.
    public mutating func onActivity(_ id: MemberID, now: ContinuousClock.Instant) {
        guard var entry = entries[id], !entry.reportedMissing else { return }
        if entry.lastHeard < now {
            entry.lastHeard = now
            entries[id] = entry
        }
    }

    /// A connection to or from a member broke.
    public mutating func onConnectionLost(_ id: MemberID, reason: String, now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        guard var entry = entries[id] else { return actions }
        entry.reportedMissing = true
        entries[id] = entry
        actions.append(.signal(.missing(entry.member, reason: reason)))
        return actions
    }

    /// A member said goodbye.
    public mutating func onLeft(_ id: MemberID) -> [Action] {
        var actions: [Action] = []
        guard let entry = entries.removeValue(forKey: id) else { return actions }
        tombstones.insert(id)
        forgetCandidate(of: id)
        actions.append(.disconnect(entry.member))
        actions.append(.signal(.left(entry.member)))
        return actions
    }

    /// The failure detector declared a member dead.
    public mutating func onRemoved(_ id: MemberID, now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        guard let entry = entries.removeValue(forKey: id) else { return actions }
        // Not tombstoned: if the verdict was wrong (a partition that healed), a fresh handshake
        // from the same incarnation brings the member back — until another incarnation joins at
        // its address (a restart), which retires it.
        removedAt[entry.member.endpoint] = id
        forgetCandidate(of: id, retryAt: now.advanced(by: settings.retryInterval))
        actions.append(.disconnect(entry.member))
        return actions
    }

    private mutating func forgetCandidate(of id: MemberID, retryAt: ContinuousClock.Instant? = nil) {
        for (endpoint, candidate) in candidates where candidate.memberID == id {
            candidates[endpoint] = Candidate(inFlight: false, nextAttempt: retryAt ?? candidate.nextAttempt, memberID: nil)
        }
    }

    /// Periodic tick: heartbeats, silence checks, handshake retries.
    public mutating func onTick(now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        if lastHeartbeat.map({ $0.advanced(by: settings.heartbeatInterval) <= now }) ?? true {
            lastHeartbeat = now
            if !entries.isEmpty { actions.append(.heartbeat(members)) }
        }
        for (id, var entry) in entries where !entry.reportedMissing {
            if entry.lastHeard.advanced(by: settings.missingAfter) <= now {
                entry.reportedMissing = true
                entries[id] = entry
                actions.append(.signal(.missing(entry.member, reason: "not heard from for \(settings.missingAfter)")))
            }
        }
        actions.append(contentsOf: dueHandshakes(now: now))
        return actions
    }

    private mutating func dueHandshakes(now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        for (endpoint, var candidate) in candidates {
            if candidate.inFlight || candidate.nextAttempt > now { continue }
            if let id = candidate.memberID, entries[id] != nil { continue }
            candidate.inFlight = true
            candidates[endpoint] = candidate
            actions.append(.handshake(endpoint))
        }
        return actions
    }
}
