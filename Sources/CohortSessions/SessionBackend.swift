import Cohort

/// What a session manager needs from its replication strategy.
protocol SessionBackend: Sendable {
    /// Runs the replication until shut down.
    func run() async throws
    /// Stops ``run()``.
    func shutdown()
    /// Returns once the node has the sessions it should have.
    func waitUntilReady() async throws
    /// The live record of a session, fetched from its owner if it is held elsewhere.
    func record(_ id: String) async throws -> SessionRecord?
    /// Applies a change here and replicates it under a write concern (nil: the store's);
    /// `base` is the newest stamp of the copy the request read.
    func commit(_ id: String, _ delta: SessionDelta, mustCreate: Bool, base: Stamp?, concern: WriteConcern?) async throws -> ReplicationReport
    /// The ids of the sessions this node counts as active.
    func sessionIDs() async -> [String]
    /// Returns once nothing this node queued to send is waiting or under way; returns whether
    /// anything was.
    @discardableResult
    func waitUntilIdle() async -> Bool
    /// Before a graceful stop: makes sure what this node alone holds has copies elsewhere;
    /// returns how many keys could not be confirmed there.
    func handOff() async -> Int
}

extension AllCopiesReplicator: SessionBackend where Entry == SessionRecord {
    func record(_ id: String) async throws -> SessionRecord? {
        try settings.splitBrain.checkRead(channel, store: settings.name)
        return entry(id)
    }

    func sessionIDs() async -> [String] { Array(entries().keys) }
}

extension PrimaryBackupReplicator: SessionBackend where Entry == SessionRecord {
    func record(_ id: String) async throws -> SessionRecord? {
        try await read(id, take: settings.takeOwnership)
    }

    func sessionIDs() async -> [String] { Array(ownedEntries().keys) }
}
