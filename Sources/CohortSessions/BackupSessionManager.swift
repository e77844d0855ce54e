import Cohort

/// A session manager that keeps each session on an owner and a few backups (Tomcat's
/// BackupManager over a LazyReplicatedMap, without its flaws).
///
/// - The owner applies a request's delta and sends it to the backups only (default one
///   backup, ``SessionManagerConfiguration/backupCount``); every other node only learns where
///   the session lives, so a session costs the same whatever the cluster size.
/// - A request on a node without a copy fetches the session from its owner and, by default
///   (``SessionManagerConfiguration/takeOwnershipOnAccess``), becomes its owner: the session
///   follows the requests.
/// - Backups are chosen by rendezvous hashing over the view, so every node agrees where copies
///   are without asking. When an owner dies, its first live backup takes over; when a holder
///   dies, the owner (old or new) puts a new backup on a surviving node. A session is lost
///   only if every holder dies before a new backup is made.
/// - Only the owner expires a session, and announces the expired ids in one message per sweep.
///
/// ``SessionStatistics/active`` counts the sessions this node owns.
public final class BackupSessionManager: SessionManager, @unchecked Sendable {
    /// Creates a manager on a channel (the channel need not run yet).
    ///
    /// - Throws: ``CohortError`` when the channel's codec cannot be resolved.
    public init(channel: GroupChannel, configuration: SessionManagerConfiguration = SessionManagerConfiguration()) throws {
        try super.init(
            channel: channel,
            configuration: configuration,
            activeCount: nil,
            makeBackend: { settings, codec, logger, observer in
                PrimaryBackupReplicator<SessionRecord>(
                    settings: settings, channel: channel, codec: codec, clock: configuration.clock, logger: logger, observer: observer
                )
            }
        )
    }
}
