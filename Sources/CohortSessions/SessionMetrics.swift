import Cohort
import Metrics
import Synchronization

/// Counts of one session manager on one node, as a value.
public struct SessionStatistics: Sendable, Equatable {
    /// Sessions held on this node (every session for the delta manager; sessions this node
    /// owns for the backup manager).
    public var active = 0
    /// Sessions created on this node.
    public var created = 0
    /// Sessions that expired on this node (each node expires its own copies).
    public var expired = 0
    /// Sessions invalidated on this node.
    public var invalidated = 0
    /// Bytes of changes sent to other members (payload bytes times receivers).
    public var replicatedBytes = 0
    /// Changes replicated from this node.
    public var replicatedChanges = 0
    /// Messages from other nodes that could not be decoded.
    public var codecFailures = 0
    /// Changes for sessions this node never saw, discarded.
    public var droppedChanges = 0
    /// Sessions lost because every node holding a copy left (backup manager).
    public var lost = 0
    /// Messages from other members refused: transfer batches or fetch replies this node did
    /// not ask that member for.
    public var refusedMessages = 0
    /// Writes on this node whose write concern was not met (the caller got an error).
    public var concernFailures = 0
    /// Attributes written on two nodes from the same version, found by anti-entropy and
    /// resolved by the deterministic rule (the higher stamp wins).
    public var conflicts = 0
    /// Sessions received by state transfer when the node started.
    public var transferredSessions = 0
    /// How long the start-up state transfer took (nil until ready).
    public var transferTime: Duration?
}

/// The manager's swift-metrics instruments (labels `cohort.sessions.*`, dimensions `manager`
/// and `node`) and the same counts as a ``SessionStatistics`` value.
final class SessionMetrics: Sendable {
    let active: Gauge
    let created: Counter
    let expired: Counter
    let invalidated: Counter
    let replicatedBytes: Counter
    let replicationLatency: Timer
    let transferTime: Timer
    let codecFailures: Counter
    let droppedChanges: Counter
    let lost: Counter
    let refused: Counter
    let concernFailures: Counter
    let conflicts: Counter
    private let counts = Mutex(SessionStatistics())

    init(manager: String, node: String, factory: (any MetricsFactory)?) {
        let dimensions = [("manager", manager), ("node", node)]
        let factory = factory ?? MetricsSystem.factory
        active = Gauge(label: "cohort.sessions.active", dimensions: dimensions, factory: factory)
        created = Counter(label: "cohort.sessions.created", dimensions: dimensions, factory: factory)
        expired = Counter(label: "cohort.sessions.expired", dimensions: dimensions, factory: factory)
        invalidated = Counter(label: "cohort.sessions.invalidated", dimensions: dimensions, factory: factory)
        replicatedBytes = Counter(label: "cohort.sessions.replicated_bytes", dimensions: dimensions, factory: factory)
        replicationLatency = Timer(label: "cohort.sessions.replication_latency", dimensions: dimensions, factory: factory)
        transferTime = Timer(label: "cohort.sessions.transfer_time", dimensions: dimensions, factory: factory)
        codecFailures = Counter(label: "cohort.sessions.codec_failures", dimensions: dimensions, factory: factory)
        droppedChanges = Counter(label: "cohort.sessions.dropped_changes", dimensions: dimensions, factory: factory)
        lost = Counter(label: "cohort.sessions.lost", dimensions: dimensions, factory: factory)
        refused = Counter(label: "cohort.sessions.refused_messages", dimensions: dimensions, factory: factory)
        concernFailures = Counter(label: "cohort.sessions.concern_failures", dimensions: dimensions, factory: factory)
        conflicts = Counter(label: "cohort.sessions.conflicts", dimensions: dimensions, factory: factory)
    }

    var statistics: SessionStatistics { counts.withLock { $0 } }

    func record(_ events: [SessionEvent], activeDelta countsActive: (SessionEvent) -> Int) {
        var newActive = 0
        counts.withLock { counts in
            for event in events {
                counts.active += countsActive(event)
                switch event {
                case .created(_, .local):
                    counts.created += 1
                    created.increment()
                case .destroyed(_, .expired, _):
                    counts.expired += 1
                    expired.increment()
                case .destroyed(_, .removed, .local):
                    counts.invalidated += 1
                    invalidated.increment()
                default:
                    break
                }
            }
            newActive = counts.active
        }
        active.record(newActive)
    }

    func setActive(_ value: Int) {
        let changed = counts.withLock { counts in
            defer { counts.active = value }
            return counts.active != value
        }
        if changed { active.record(value) }
    }

    func replicated(bytes: Int, latency: Duration) {
        counts.withLock {
            $0.replicatedBytes += bytes
            $0.replicatedChanges += 1
        }
        replicatedBytes.increment(by: bytes)
        replicationLatency.recordNanoseconds(latency.nanoseconds)
    }

    func ready(transferred: Int, elapsed: Duration) {
        counts.withLock {
            $0.transferredSessions = transferred
            $0.transferTime = elapsed
        }
        transferTime.recordNanoseconds(elapsed.nanoseconds)
    }

    func failure(_ kind: ReplicaFailure, count: Int = 1) {
        switch kind {
        case .codec:
            counts.withLock { $0.codecFailures += count }
            codecFailures.increment(by: count)
        case .orphans:
            counts.withLock { $0.droppedChanges += count }
            droppedChanges.increment(by: count)
        case .transfer:
            break
        case .lost:
            counts.withLock { $0.lost += count }
            lost.increment(by: count)
        case .refused:
            counts.withLock { $0.refusedMessages += count }
            refused.increment(by: count)
        case .concern:
            counts.withLock { $0.concernFailures += count }
            concernFailures.increment(by: count)
        case .conflict:
            counts.withLock { $0.conflicts += count }
            conflicts.increment(by: count)
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
