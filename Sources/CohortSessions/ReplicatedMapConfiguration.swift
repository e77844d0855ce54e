import Cohort
import Logging

/// Settings of a ``ReplicatedMap`` or ``PrimaryBackupMap``.
public struct ReplicatedMapConfiguration: Sendable {
    /// Whether a write waits until the other copies applied it.
    public var mode: ReplicationMode = .synchronous
    /// Backups per key (``PrimaryBackupMap`` only).
    public var backupCount = 1
    /// Whether a node that reads a key held elsewhere becomes its owner
    /// (``PrimaryBackupMap`` only; writes always move ownership to the writer).
    public var takeOwnershipOnRead = false
    /// The clock of deadlines and start-up timers (tests pass a manual clock).
    public var clock: any CohortClock = SystemClock()
    /// The codec of values and messages; nil uses the channel's configured codec.
    public var codec: (any MessageCodec)?
    /// Timeout of replication sends; nil uses the channel's `sendTimeout`.
    public var sendTimeout: Duration?
    /// How long a starting node waits for members before it is ready on its own.
    public var settleTime: Duration = .milliseconds(500)
    /// Entries per state-transfer message (``ReplicatedMap`` only).
    public var transferBatchSize = 1000
    /// A state transfer without progress for this long restarts from another member.
    public var transferStallTimeout: Duration = .seconds(10)
    /// How long removed keys are remembered, so late writes cannot bring them back.
    public var tombstoneRetention: Duration = .seconds(600)
    /// How often expired keys are removed.
    public var expiryCheckInterval: Duration = .seconds(1)
    /// How many copies a write needs before it returns, and how long it waits; nil: every
    /// current member (see ``WriteConcern``). A write whose concern is not met throws.
    public var writeConcern: WriteConcern?
    /// What a node that sees fewer than a majority of ``clusterSize`` may do.
    public var whenSplit: SplitBrainPolicy = .allowReadsAndWrites
    /// The number of nodes the cluster is configured with, for ``whenSplit``; nil derives it
    /// from the channel's `minimumMembers` (`2 × minimumMembers − 1` when above 1).
    public var clusterSize: Int?
    /// How long a read waits for a holder of a key held elsewhere (``PrimaryBackupMap``), per
    /// holder tried.
    public var fetchTimeout: Duration = .seconds(5)
    /// How often a node compares its digest with one member (anti-entropy, ``ReplicatedMap``);
    /// nil: only when a member returns.
    public var antiEntropyInterval: Duration? = .seconds(30)
    /// The logger; nil logs under `cohort.maps`.
    public var logger: Logger?

    /// Creates a configuration with defaults.
    public init(mode: ReplicationMode = .synchronous) {
        self.mode = mode
    }

    func settings(name: String) -> ReplicatorSettings {
        var settings = ReplicatorSettings(name: "map/" + name)
        settings.mode = mode
        settings.sendTimeout = sendTimeout
        settings.tick = expiryCheckInterval
        settings.batchSize = max(1, transferBatchSize)
        settings.settle = settleTime
        settings.stallTimeout = transferStallTimeout
        settings.tombstoneRetention = tombstoneRetention
        settings.backups = max(0, backupCount)
        settings.takeOwnership = takeOwnershipOnRead
        settings.concern = writeConcern
        settings.splitBrain = SplitBrainGuard(policy: whenSplit, clusterSize: clusterSize)
        settings.fetchTimeout = fetchTimeout
        settings.antiEntropyInterval = antiEntropyInterval
        return settings
    }
}

/// Something that happened to a key of a replicated map.
public enum MapEvent: Sendable, Equatable, CustomStringConvertible {
    /// A value was written.
    case put(key: String, origin: ChangeOrigin)
    /// A key went away.
    case removed(key: String, reason: RemovalReason, origin: ChangeOrigin)
    /// Anti-entropy found the key written on two nodes from the same version; the higher stamp
    /// won on every node.
    case conflict(key: String)

    /// The key.
    public var key: String {
        switch self {
        case .put(let key, _), .removed(let key, _, _), .conflict(let key): return key
        }
    }

    public var description: String {
        switch self {
        case .put(let key, let origin): return "put \(key) (\(origin))"
        case .removed(let key, let reason, let origin): return "removed \(key): \(reason) (\(origin))"
        case .conflict(let key): return "conflict \(key)"
        }
    }

    static func from(_ event: ReplicaEvent<MapEntry>) -> MapEvent? {
        switch event {
        case .created(let key, _, let origin), .updated(let key, _, _, let origin): return .put(key: key, origin: origin)
        case .removed(let key, _, let reason, let origin): return .removed(key: key, reason: reason, origin: origin)
        case .renamed: return nil
        case .conflict(let key, _, _): return .conflict(key: key)
        }
    }
}

extension ReplicatedMapConfiguration {
    /// The observer that feeds a map's listeners.
    static func observer(_ hub: EventHub<MapEvent>) -> ReplicaObserver<MapEntry> {
        ReplicaObserver(events: { events in hub.emit(events.compactMap(MapEvent.from)) })
    }
}
