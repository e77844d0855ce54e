import Cohort

/// A session manager that keeps a copy of every session on every node (Tomcat's DeltaManager,
/// without its flaws).
///
/// - Each request's changes travel as one delta to every member, synchronously by default.
/// - Deltas carry stamps: a duplicate or late delta changes nothing and never rolls a session
///   back; copies that saw the same deltas in any order are equal.
/// - Every node expires its own copies from the replicated last-access time: expiry sends no
///   message at all.
/// - A starting node copies all sessions from a member in batches while applying the deltas
///   that arrive meanwhile, then reports ready. Members answer transfer requests even while
///   starting, so nodes started together never wait on each other; a transfer whose source
///   dies restarts from another member.
///
/// Use it for small clusters where every node may serve every session. For large clusters,
/// ``BackupSessionManager`` keeps only a primary and backups of each session.
public final class DeltaSessionManager: SessionManager, @unchecked Sendable {
    /// Creates a manager on a channel (the channel need not run yet).
    ///
    /// - Throws: ``CohortError`` when the channel's codec cannot be resolved.
    public init(channel: GroupChannel, configuration: SessionManagerConfiguration = SessionManagerConfiguration()) throws {
        try super.init(
            channel: channel,
            configuration: configuration,
            activeCount: { event in
                switch event {
                case .created: return 1
                case .destroyed: return -1
                default: return 0
                }
            },
            makeBackend: { settings, codec, logger, observer in
                AllCopiesReplicator<SessionRecord>(
                    settings: settings, channel: channel, codec: codec, clock: configuration.clock, logger: logger, observer: observer
                )
            }
        )
    }
}
