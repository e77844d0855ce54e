import Cohort

/// How many copies must hold a change before the write that made it returns (Cassandra's
/// consistency level, MongoDB's write concern), and how long to wait for them.
///
/// A write whose concern is not met is an error the caller sees (``CohortError/Code/partialFailure``
/// naming the members that failed and why): ``SessionManager/commit(_:concern:)`` and the maps
/// throw, `ClusterSessionMiddleware` answers 503 with `Retry-After`, `ClusterPersistDriver`
/// throws. Members that leave or are removed while the write waits are excused: they are no
/// longer current members, and they get the change back when they return (state transfer or
/// anti-entropy).
///
/// In synchronous mode the change is applied on this node only once the concern is met, so a
/// write that failed is not in this node's copy: a client that retries recomputes the change
/// from the unchanged copy and sets the same values again (see docs/guarantees.md, "retries").
/// In asynchronous mode a member counts once the change is queued for it.
public struct WriteConcern: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// Which members must acknowledge.
    public enum Level: Sendable, Equatable, Hashable {
        /// Every member in the node's view when the write ends.
        case all
        /// More than half of the copies (this node's included) of the view the write was sent to.
        case majority
        /// At least this many other members (0: this node's copy is enough).
        case replicas(Int)
    }

    /// Which members must acknowledge.
    public var level: Level
    /// How long the write waits for acknowledgements; nil uses the store's `sendTimeout` (or the
    /// channel's).
    public var timeout: Duration?

    /// Creates a write concern.
    public init(_ level: Level, timeout: Duration? = nil) {
        self.level = level
        self.timeout = timeout
    }

    /// Every current member (the default of synchronous mode).
    public static let all = WriteConcern(.all)
    /// A majority of the copies.
    public static let majority = WriteConcern(.majority)
    /// At least `count` other members.
    public static func replicas(_ count: Int, timeout: Duration? = nil) -> WriteConcern {
        WriteConcern(.replicas(max(0, count)), timeout: timeout)
    }

    /// This concern with a timeout.
    public func timeout(_ timeout: Duration?) -> WriteConcern { WriteConcern(level, timeout: timeout) }

    /// Parses `all`, `majority` or a number of replicas.
    public init?(name: String, timeout: Duration? = nil) {
        switch name.lowercased() {
        case "all": self.init(.all, timeout: timeout)
        case "majority", "quorum": self.init(.majority, timeout: timeout)
        default:
            guard let count = Int(name), count >= 0 else { return nil }
            self.init(.replicas(count), timeout: timeout)
        }
    }

    public var description: String {
        let base: String
        switch level {
        case .all: base = "all"
        case .majority: base = "majority"
        case .replicas(let count): base = "\(count) replica\(count == 1 ? "" : "s")"
        }
        return timeout.map { "\(base) within \($0)" } ?? base
    }

    /// The members whose failure breaks the concern, or nil when it is met.
    ///
    /// - Parameters:
    ///   - report: what the send reported per member.
    ///   - current: the members in the view when the send returned (failures of members that
    ///     left meanwhile are excused).
    ///   - excuseStarting: whether a member that runs no replicated store yet (its channel joined
    ///     before its managers started: it rejects the message type) is excused and not counted.
    ///     True for the all-copies store, where such a node holds no copy yet and gets every
    ///     entry by its state transfer when its store starts; false where the member was placed
    ///     as a holder of the key (primary/backup).
    func unmet(_ report: SendReport, current: Set<MemberID>, excuseStarting: Bool = false) -> [(member: MemberID, outcome: MemberOutcome)]? {
        let starting = excuseStarting ? report.outcomes.filter { $0.outcome.isStartingNode }.count : 0
        let failures = report.failures.filter { current.contains($0.member) && !(excuseStarting && $0.outcome.isStartingNode) }
        switch level {
        case .all:
            return failures.isEmpty ? nil : failures
        case .majority:
            // Copies: this node's plus one per destination that runs the store. A majority of them.
            let copies = report.count - starting + 1
            let needed = copies / 2 + 1
            return report.succeeded.count + 1 >= needed ? nil : failures
        case .replicas(let count):
            return report.succeeded.count >= count ? nil : failures
        }
    }
}

extension MemberOutcome {
    /// The member refused a change made from a copy that is behind its own (a conflict).
    var isConflict: Bool {
        if case .remoteFailure(let why) = self { return why.contains("conflict:") }
        return false
    }

    /// The member rejected the message because its type is not registered there: the node runs
    /// no replicated store yet (it is starting).
    var isStartingNode: Bool {
        if case .rejected(let why) = self { return why.contains("unknownMessageType") }
        return false
    }
}

extension CohortError {
    /// The error of a write whose concern was not met: names the members that failed and why.
    static func concernNotMet(
        _ concern: WriteConcern, key: String, store: String, report: SendReport,
        failures: [(member: MemberID, outcome: MemberOutcome)], names: (MemberID) -> String
    ) -> CohortError {
        let list = failures.map { "\(names($0.member)): \($0.outcome)" }.joined(separator: "; ")
        return CohortError(
            .partialFailure,
            "write concern '\(concern)' not met for '\(key)' in store '\(store)': \(report.succeeded.count) of \(report.count) members applied the change (\(list)); the change is not acknowledged — retry it (a retry sets the same values again), or lower the write concern"
        )
    }
}
