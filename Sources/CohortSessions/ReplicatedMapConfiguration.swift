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
        return settings
    }
}

/// Something that happened to a key of a replicated map.
public enum MapEvent: Sendable, Equatable, CustomStringConvertible {
    /// A value was written.
    case put(key: String, origin: ChangeOrigin)
    /// A key went away.
    case removed(key: String, reason: RemovalReason, origin: ChangeOrigin)

    /// The key.
    public var key: String {
        switch self {
        case .put(let key, _), .removed(let key, _, _): return key
        }
    }

    public var description: String {
        switch self {
        case .put(let key, let origin): return "put \(key) (\(origin))"
        case .removed(let key, let reason, let origin): return "removed \(key): \(reason) (\(origin))"
        }
    }

    static func from(_ event: ReplicaEvent<MapEntry>) -> MapEvent? {
        switch event {
        case .created(let key, _, let origin), .updated(let key, _, _, let origin): return .put(key: key, origin: origin)
        case .removed(let key, _, let reason, let origin): return .removed(key: key, reason: reason, origin: origin)
        case .renamed: return nil
        }
    }
}

extension ReplicatedMapConfiguration {
    /// The observer that feeds a map's listeners.
    static func observer(_ hub: EventHub<MapEvent>) -> ReplicaObserver<MapEntry> {
        ReplicaObserver(events: { events in hub.emit(events.compactMap(MapEvent.from)) })
    }
}
