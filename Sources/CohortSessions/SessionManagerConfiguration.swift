import Cohort
import Logging
import Metrics
import Tracing

/// Settings of a session manager (both kinds) with defaults for production.
public struct SessionManagerConfiguration: Sendable {
    /// The manager's name; managers replicate only with managers of the same name. Run one
    /// name per application; a second manager of the same name on a channel is refused.
    public var name: String
    /// Whether ``SessionManager/commit(_:)`` waits until the change is on the other copies.
    public var mode: ReplicationMode
    /// The idle limit of new sessions.
    public var maxInactiveInterval: Duration
    /// How often expired sessions are removed (on ``clock``).
    public var expiryCheckInterval: Duration
    /// The clock of timestamps, expiry and start-up deadlines (tests pass a manual clock).
    public var clock: any CohortClock
    /// The codec of attribute values and replication messages; nil uses the channel's own codec
    /// (``GroupChannel/codec``). Every node must use the same one.
    public var codec: (any MessageCodec)?
    /// Timeout of replication sends; nil uses the channel's `sendTimeout`.
    public var sendTimeout: Duration?
    /// How long a starting node waits for members to show up before it declares itself
    /// ready without a state transfer (delta manager), or for location tables (backup manager).
    public var settleTime: Duration
    /// Sessions per state-transfer message.
    public var transferBatchSize: Int
    /// A state transfer that makes no progress for this long restarts from another member.
    public var transferStallTimeout: Duration
    /// How long ids of invalidated or expired sessions are remembered, so late changes cannot
    /// bring them back.
    public var tombstoneRetention: Duration
    /// Backup copies per session (``BackupSessionManager`` only).
    public var backupCount: Int
    /// Whether a node that serves a session held elsewhere becomes its owner
    /// (``BackupSessionManager`` only; the session then follows the requests).
    public var takeOwnershipOnAccess: Bool
    /// Whether listeners hear about changes replicated from other nodes.
    public var notifyListenersOnReplication: Bool
    /// Where metrics go; nil uses the global `MetricsSystem`.
    public var metricsFactory: (any MetricsFactory)?
    /// Where the spans of commits, fetches and the state transfer go (swift-distributed-tracing);
    /// nil uses the process's `InstrumentationSystem.tracer` (a no-op unless the app bootstraps
    /// one).
    public var tracer: (any Tracer)?
    /// Makes new session ids.
    public var idGenerator: @Sendable () -> String
    /// The manager's logger; nil logs under `cohort.sessions`.
    public var logger: Logger?
    /// How many copies a commit needs before it returns, and how long it waits; nil: every
    /// current member (see ``WriteConcern``). A commit whose concern is not met throws
    /// (`ClusterSessionMiddleware` answers 503).
    public var writeConcern: WriteConcern?
    /// What a node that sees fewer than a majority of ``clusterSize`` may do.
    public var whenSplit: SplitBrainPolicy
    /// The number of nodes the cluster is configured with, for ``whenSplit``; nil derives it
    /// from the channel's `minimumMembers` (`2 × minimumMembers − 1` when above 1).
    public var clusterSize: Int?
    /// How long a request waits for a holder of a session held elsewhere
    /// (``BackupSessionManager``), per holder tried; when none answers the read throws
    /// (`ClusterSessionMiddleware` answers 503) instead of starting a new session.
    public var fetchTimeout: Duration
    /// How often a node compares its digest with one member (anti-entropy,
    /// ``DeltaSessionManager``); nil: only when a member returns.
    public var antiEntropyInterval: Duration?

    /// Creates a configuration.
    ///
    /// - Parameters:
    ///   - name: the manager's name (the same on every node).
    ///   - mode: synchronous (default) or asynchronous replication.
    ///   - maxInactiveInterval: the idle limit of new sessions (default 30 minutes).
    public init(name: String = "sessions", mode: ReplicationMode = .synchronous, maxInactiveInterval: Duration = .seconds(1800)) {
        self.name = name
        self.mode = mode
        self.maxInactiveInterval = maxInactiveInterval
        self.expiryCheckInterval = .seconds(1)
        self.clock = SystemClock()
        self.codec = nil
        self.sendTimeout = nil
        self.settleTime = .milliseconds(500)
        self.transferBatchSize = 1000
        self.transferStallTimeout = .seconds(10)
        self.tombstoneRetention = .seconds(600)
        self.backupCount = 1
        self.takeOwnershipOnAccess = true
        self.notifyListenersOnReplication = true
        self.metricsFactory = nil
        self.tracer = nil
        self.idGenerator = SessionID.random
        self.logger = nil
        self.writeConcern = nil
        self.whenSplit = .allowReadsAndWrites
        self.clusterSize = nil
        self.fetchTimeout = .seconds(5)
        self.antiEntropyInterval = .seconds(30)
    }

    var replicatorSettings: ReplicatorSettings {
        var settings = ReplicatorSettings(name: "sessions/" + name)
        settings.mode = mode
        settings.sendTimeout = sendTimeout
        settings.tick = expiryCheckInterval
        settings.batchSize = max(1, transferBatchSize)
        settings.settle = settleTime
        settings.stallTimeout = transferStallTimeout
        settings.tombstoneRetention = tombstoneRetention
        settings.backups = max(0, backupCount)
        settings.takeOwnership = takeOwnershipOnAccess
        settings.concern = writeConcern
        settings.splitBrain = SplitBrainGuard(policy: whenSplit, clusterSize: clusterSize)
        settings.fetchTimeout = fetchTimeout
        settings.antiEntropyInterval = antiEntropyInterval
        return settings
    }
}

/// Session id generation.
public enum SessionID {
    /// 128 random bits as 32 lowercase hex digits.
    @Sendable public static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        return hex(high) + hex(low)
    }

    private static func hex(_ value: UInt64) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }
}
