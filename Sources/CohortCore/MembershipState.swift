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
        /// The most remote members the view holds. A member that would grow the view beyond it
        /// is refused (and counted in ``MembershipState/refusedMembers``); a new incarnation
        /// that replaces a member at its address still gets in.
        public var maxMembers: Int
        /// The most candidate addresses kept for handshakes; more are refused (and counted in
        /// ``MembershipState/refusedCandidates``) until some are gone.
        public var maxCandidates: Int
        /// How long an id that left (or was replaced) stays refused. After that it is forgotten,
        /// so that the memory of departures levels off.
        public var tombstoneRetention: Duration
        /// The most departed ids remembered; the oldest are forgotten first.
        public var maxTombstones: Int

        public init(
            heartbeatInterval: Duration = .milliseconds(250),
            missingAfter: Duration = .milliseconds(1000),
            retryInterval: Duration = .milliseconds(500),
            handshakeTimeout: Duration = .milliseconds(1000),
            maxMembers: Int = 256,
            maxCandidates: Int = 1024,
            tombstoneRetention: Duration = .seconds(600),
            maxTombstones: Int = 4096
        ) {
            self.heartbeatInterval = heartbeatInterval
            self.missingAfter = missingAfter
            self.retryInterval = retryInterval
            self.handshakeTimeout = handshakeTimeout
            self.maxMembers = maxMembers
            self.maxCandidates = maxCandidates
            self.tombstoneRetention = tombstoneRetention
            self.maxTombstones = maxTombstones
        }

        private enum CodingKeys: String, CodingKey {
            case heartbeatInterval, missingAfter, retryInterval, handshakeTimeout
            case maxMembers, maxCandidates, tombstoneRetention, maxTombstones
        }

        /// Decodes settings; the caps and the retention, added later, default when absent.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let defaults = Settings()
            self.init(
                heartbeatInterval: try c.decode(Duration.self, forKey: .heartbeatInterval),
                missingAfter: try c.decode(Duration.self, forKey: .missingAfter),
                retryInterval: try c.decode(Duration.self, forKey: .retryInterval),
                handshakeTimeout: try c.decode(Duration.self, forKey: .handshakeTimeout),
                maxMembers: try c.decodeIfPresent(Int.self, forKey: .maxMembers) ?? defaults.maxMembers,
                maxCandidates: try c.decodeIfPresent(Int.self, forKey: .maxCandidates) ?? defaults.maxCandidates,
                tombstoneRetention: try c.decodeIfPresent(Duration.self, forKey: .tombstoneRetention) ?? defaults.tombstoneRetention,
                maxTombstones: try c.decodeIfPresent(Int.self, forKey: .maxTombstones) ?? defaults.maxTombstones
            )
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
    /// When each tombstone was set, in that order (for pruning; see ``Settings/tombstoneRetention``).
    private var tombstoneOrder: [(id: MemberID, at: ContinuousClock.Instant)] = []
    /// Where discovery last saw each member announce itself (for ``onDiscoveryGone(_:now:)``).
    private var announced: [MemberID: Endpoint] = [:]
    /// The last incarnation removed by a verdict at each address, and when: retired when another
    /// one joins there (forgotten after the tombstone retention).
    private var removedAt: [Endpoint: (id: MemberID, at: ContinuousClock.Instant)] = [:]
    /// The latest instant an input carried (inputs without one use it).
    private var latest: ContinuousClock.Instant?

    /// Members refused because the view was full (``Settings/maxMembers``), cumulative.
    public private(set) var refusedMembers = 0
    /// Candidate addresses refused because the candidate table was full
    /// (``Settings/maxCandidates``), cumulative.
    public private(set) var refusedCandidates = 0

    public init(local: Member, settings: Settings = Settings()) {
        self.local = local
        self.settings = settings
    }

    /// How many departed ids are remembered now.
    public var tombstoneCount: Int { tombstones.count }
    /// How many candidate addresses are kept now.
    public var candidateCount: Int { candidates.count }
    /// How many announcing members are remembered now.
    public var announcedCount: Int { announced.count }
    /// How many removal verdicts are remembered by address now.
    public var removedAddressCount: Int { removedAt.count }

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
        observe(now)
        for endpoint in endpoints where endpoint != local.endpoint {
            if candidates[endpoint] == nil {
                guard candidates.count < settings.maxCandidates else {
                    refusedCandidates &+= 1
                    continue
                }
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
        observe(now)
        guard member.id != local.id, member.endpoint != local.endpoint, !tombstones.contains(member.id),
              member.domain == local.domain
        else { return [] }
        if candidates[member.endpoint] == nil, candidates.count >= settings.maxCandidates {
            refusedCandidates &+= 1
            return []
        }
        if announced[member.id] == nil {
            // One address per member: forget older incarnations announced at the same address.
            for (id, endpoint) in announced where endpoint == member.endpoint { announced.removeValue(forKey: id) }
            // Bounded like the candidates: every announced member has a candidate address, so
            // this only trims members whose address another one took over.
            if announced.count >= settings.maxCandidates, let stale = announced.first(where: { candidates[$0.value]?.memberID != $0.key }) {
                announced.removeValue(forKey: stale.key)
            }
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
        observe(now)
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
        observe(now)
        // Only addresses this node asked for are candidates: a handshake result for another one
        // (the candidate was dropped meanwhile) does not add it back past the cap.
        if var candidate = candidates[endpoint] {
            candidate.inFlight = false
            candidate.memberID = member.id
            candidates[endpoint] = candidate
        } else if candidates.count < settings.maxCandidates {
            candidates[endpoint] = Candidate(inFlight: false, nextAttempt: now, memberID: member.id)
        }
        let actions = admit(member, now: now)
        if entries[member.id] == nil, var candidate = candidates[endpoint] {
            // Not admitted (full view, another domain, a departed id): try again later, not on
            // every tick.
            candidate.nextAttempt = now.advanced(by: settings.retryInterval)
            candidates[endpoint] = candidate
        }
        return actions
    }

    /// A handshake with an address failed; retry later.
    public mutating func onHandshakeFailed(_ endpoint: Endpoint, now: ContinuousClock.Instant) -> [Action] {
        observe(now)
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
        observe(now)
        var actions: [Action] = []
        guard member.id != local.id, !tombstones.contains(member.id) else { return actions }
        guard member.domain == local.domain else { return actions }
        if var existing = entries[member.id] {
            existing.lastHeard = now
            entries[member.id] = existing
            return actions
        }
        // The view is full: only a new incarnation that replaces a member at its address gets in.
        if entries.count >= settings.maxMembers, !entries.values.contains(where: { $0.member.endpoint == member.endpoint }) {
            refusedMembers &+= 1
            return actions
        }
        // A new incarnation at the address of a member removed earlier retires that one for good
        // (unless that one is back in the view at another address).
        if let old = removedAt.removeValue(forKey: member.endpoint), old.id != member.id, entries[old.id] == nil {
            retire(old.id)
        }
        // Back in the view: no verdict of an earlier removal stands against it any more.
        if removedAt.values.contains(where: { $0.id == member.id }) {
            removedAt = removedAt.filter { $0.value.id != member.id }
        }
        // A new incarnation at the address of a known member replaces it: the old one is gone.
        for (id, entry) in entries where entry.member.endpoint == member.endpoint {
            entries.removeValue(forKey: id)
            retire(id)
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
        observe(now)
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
        observe(now)
        var actions: [Action] = []
        guard var entry = entries[id] else { return actions }
        entry.reportedMissing = true
        entries[id] = entry
        actions.append(.signal(.missing(entry.member, reason: reason)))
        return actions
    }

    /// A member said goodbye (at the time of the latest input).
    public mutating func onLeft(_ id: MemberID) -> [Action] {
        onLeft(id, now: latest ?? ContinuousClock.now)
    }

    /// A member said goodbye.
    public mutating func onLeft(_ id: MemberID, now: ContinuousClock.Instant) -> [Action] {
        observe(now)
        var actions: [Action] = []
        guard let entry = entries.removeValue(forKey: id) else { return actions }
        retire(id)
        forgetCandidate(of: id)
        actions.append(.disconnect(entry.member))
        actions.append(.signal(.left(entry.member)))
        return actions
    }

    /// The failure detector declared a member dead.
    public mutating func onRemoved(_ id: MemberID, now: ContinuousClock.Instant) -> [Action] {
        observe(now)
        var actions: [Action] = []
        guard let entry = entries.removeValue(forKey: id) else { return actions }
        // Not tombstoned: if the verdict was wrong (a partition that healed), a fresh handshake
        // from the same incarnation brings the member back — until another incarnation joins at
        // its address (a restart), which retires it.
        removedAt[entry.member.endpoint] = (id, now)
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
        observe(now)
        pruneTombstones(now: now)
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

    // MARK: - memory of departures

    private mutating func observe(_ now: ContinuousClock.Instant) {
        if latest.map({ now > $0 }) ?? true { latest = now }
    }

    /// Refuses an id from now on (until the retention is over).
    private mutating func retire(_ id: MemberID) {
        guard tombstones.insert(id).inserted else { return }
        tombstoneOrder.append((id, latest ?? ContinuousClock.now))
    }

    /// Forgets tombstones (and removal verdicts) older than the retention, then the oldest
    /// beyond the cap.
    ///
    /// Only a tick forgets: every other input only adds, so a shell that compares the number of
    /// tombstones before and after an input sees every change.
    private mutating func pruneTombstones(now: ContinuousClock.Instant) {
        let horizon = now.advanced(by: .zero - settings.tombstoneRetention)
        var drop = 0
        while drop < tombstoneOrder.count,
              tombstoneOrder[drop].at <= horizon || tombstoneOrder.count - drop > settings.maxTombstones {
            tombstones.remove(tombstoneOrder[drop].id)
            drop += 1
        }
        if drop > 0 { tombstoneOrder.removeFirst(drop) }
        if removedAt.contains(where: { $0.value.at <= horizon }) || removedAt.count > settings.maxTombstones {
            removedAt = removedAt.filter { $0.value.at > horizon }
            if removedAt.count > settings.maxTombstones {
                let keep = removedAt.sorted { $0.value.at > $1.value.at }.prefix(settings.maxTombstones)
                removedAt = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
            }
        }
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
