/// The pure logic of the TCP failure detector (Tribes' TcpFailureDetector), with time passed in.
///
/// A member reported missing (silent, connection lost) or failing a send becomes a *suspect* and
/// is probed. Only a failed probe — a fresh connection and handshake that does not succeed —
/// counts against it; ``Settings/confirmations`` failed probes in a row (or one refused
/// connection) remove it. A suspect that answers a probe recovers. A member is never removed on a
/// missed heartbeat alone.
public struct FailureDetectorState: Sendable {
    /// Tunables.
    public struct Settings: Sendable, Equatable, Codable {
        /// How long one probe may take.
        public var probeTimeout: Duration
        /// Delay between probes of a suspect.
        public var reprobeInterval: Duration
        /// Failed (timed-out) probes in a row that remove a suspect. A refused connection removes at once.
        public var confirmations: Int
        /// Give up on a suspect that neither answers nor fails after this long (nil: never).
        public var suspectTimeout: Duration?

        public init(
            probeTimeout: Duration = .milliseconds(500),
            reprobeInterval: Duration = .milliseconds(200),
            confirmations: Int = 2,
            suspectTimeout: Duration? = .seconds(30)
        ) {
            self.probeTimeout = probeTimeout
            self.reprobeInterval = reprobeInterval
            self.confirmations = confirmations
            self.suspectTimeout = suspectTimeout
        }
    }

    /// The outcome of one probe.
    public enum ProbeResult: Sendable, Equatable {
        /// The member answered.
        case alive
        /// Nothing listens at its address (connection refused).
        case refused
        /// No answer within the timeout.
        case timedOut
    }

    /// What the shell must do.
    public enum Action: Sendable, Equatable {
        /// Publish that the member is suspected.
        case publishSuspected(Member)
        /// Publish that the member recovered.
        case publishRecovered(Member)
        /// Publish that the member is dead, and forget it.
        case publishRemoved(Member)
        /// Probe the member now.
        case probe(Member)
    }

    struct Suspect: Sendable {
        var member: Member
        var since: ContinuousClock.Instant
        var failedProbes: Int
        var probing: Bool
        var nextProbe: ContinuousClock.Instant
    }

    /// The settings in force.
    public let settings: Settings
    private var suspects: [MemberID: Suspect] = [:]
    private var known: Set<MemberID> = []

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// Members currently suspected.
    public var suspectedMembers: [Member] { suspects.values.map(\.member) }

    /// Whether a member is suspected.
    public func isSuspected(_ id: MemberID) -> Bool { suspects[id] != nil }

    /// Whether a probe of a suspect is running.
    public func isProbing(_ id: MemberID) -> Bool { suspects[id]?.probing ?? false }

    /// Timed-out probes of a suspect so far (0 for a member that is not suspected).
    public func failedProbes(of id: MemberID) -> Int { suspects[id]?.failedProbes ?? 0 }

    // MARK: - inputs

    /// A member joined: it is tracked from now on.
    public mutating func onJoined(_ member: Member) -> [Action] {
        known.insert(member.id)
        var actions: [Action] = []
        if let suspect = suspects.removeValue(forKey: member.id) {
            actions.append(.publishRecovered(suspect.member))
        }
        return actions
    }

    /// A member left gracefully: stop tracking, no probe.
    public mutating func onLeft(_ id: MemberID) -> [Action] {
        known.remove(id)
        suspects.removeValue(forKey: id)
        return []
    }

    /// A member was reported missing or failed a send.
    public mutating func onMissing(_ member: Member, now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        guard known.contains(member.id) else { return actions }
        if var suspect = suspects[member.id] {
            // Already suspected: probe again soon if none is running.
            if !suspect.probing {
                suspect.probing = true
                suspects[member.id] = suspect
                actions.append(.probe(member))
            }
            return actions
        }
        suspects[member.id] = Suspect(member: member, since: now, failedProbes: 0, probing: true, nextProbe: now)
        actions.append(.publishSuspected(member))
        actions.append(.probe(member))
        return actions
    }

    /// A probe finished.
    public mutating func onProbeResult(_ id: MemberID, _ result: ProbeResult, now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        guard var suspect = suspects[id] else { return actions }
        suspect.probing = false
        switch result {
        case .alive:
            suspects.removeValue(forKey: id)
            actions.append(.publishRecovered(suspect.member))
        case .refused:
            suspects.removeValue(forKey: id)
            known.remove(id)
            actions.append(.publishRemoved(suspect.member))
        case .timedOut:
            suspect.failedProbes += 1
            if suspect.failedProbes >= settings.confirmations {
                suspects.removeValue(forKey: id)
                known.remove(id)
                actions.append(.publishRemoved(suspect.member))
            } else {
                suspect.nextProbe = now.advanced(by: settings.reprobeInterval)
                suspects[id] = suspect
            }
        }
        return actions
    }

    /// Periodic tick: re-probe suspects that are due, give up on stale ones.
    public mutating func onTick(now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        for (id, var suspect) in suspects {
            if let limit = settings.suspectTimeout, suspect.since.advanced(by: limit) <= now {
                suspects.removeValue(forKey: id)
                known.remove(id)
                actions.append(.publishRemoved(suspect.member))
                continue
            }
            if !suspect.probing && suspect.nextProbe <= now {
                suspect.probing = true
                suspects[id] = suspect
                actions.append(.probe(suspect.member))
            }
        }
        return actions
    }
}
