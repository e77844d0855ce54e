import Cohort
import Foundation
import Logging
import ServiceLifecycle

/// A map keyed by `String` that keeps each entry on an owner and ``ReplicatedMapConfiguration/backupCount``
/// backups, with a location table of every key on every node (Tomcat's LazyReplicatedMap).
///
/// - A write makes the writing node the key's owner; the value goes to the backups, the new
///   location to everyone.
/// - A read on a node without a copy fetches the value from a holder (and becomes the owner
///   when ``ReplicatedMapConfiguration/takeOwnershipOnRead`` is set).
/// - Backups are placed by rendezvous hashing; when a holder leaves, a backup takes over and
///   a new backup is made on a surviving node. An entry is lost only when every holder left.
public final class PrimaryBackupMap<Value: Codable & Sendable>: Service, Sendable {
    /// The map's name; maps replicate only with maps of the same name.
    public let name: String
    /// The codec of values.
    public let codec: any MessageCodec
    let replicator: PrimaryBackupReplicator<MapEntry>
    let hub = EventHub<MapEvent>()
    let takeOwnershipOnRead: Bool

    /// Creates a map on a channel (the channel need not run yet).
    ///
    /// - Throws: ``CohortError`` when the channel's codec cannot be resolved.
    public init(name: String, channel: GroupChannel, configuration: ReplicatedMapConfiguration = ReplicatedMapConfiguration()) throws {
        self.name = name
        let codec = configuration.codec ?? channel.codec
        self.codec = codec
        self.takeOwnershipOnRead = configuration.takeOwnershipOnRead
        var logger = configuration.logger ?? Logger(label: "cohort.maps")
        logger[metadataKey: "map"] = "\(name)"
        replicator = PrimaryBackupReplicator(
            settings: configuration.settings(name: name), channel: channel, codec: codec,
            clock: configuration.clock, logger: logger, observer: ReplicatedMapConfiguration.observer(hub)
        )
    }

    /// Runs replication until ``shutdown()`` or graceful shutdown.
    public func run() async throws {
        defer { hub.finish() }
        try await replicator.run()
    }

    /// Stops ``run()``.
    public func shutdown() { replicator.shutdown() }

    /// Returns once the node knows where every key lives.
    public func waitUntilReady() async throws { try await replicator.waitUntilReady() }

    /// Returns once nothing this node queued to send is waiting or under way (see
    /// `SessionManager.waitUntilIdle()`); returns whether anything was.
    @discardableResult
    func waitUntilIdle() async -> Bool { await replicator.waitUntilIdle() }

    /// The current wall time on the map's clock (``ReplicatedMapConfiguration/clock``):
    /// deadlines given as `expiresAt:` are measured against it.
    public var now: Date { replicator.wall.date }

    /// The value of a key: the local copy, or one fetched from its owner or a backup.
    ///
    /// - Throws: ``CohortError/Code/codecFailure`` when the stored bytes are not a `Value`,
    ///   ``CohortError/Code/timeout`` when the key's holders did not answer within the fetch
    ///   timeout (the key is not known to be lost), ``CohortError/Code/noQuorum`` when the
    ///   split-brain policy refuses reads here.
    public func get(_ key: String) async throws -> Value? {
        guard let entry = try await replicator.read(key, take: takeOwnershipOnRead) else { return nil }
        return try codec.decodeValue(Value.self, from: entry.value, what: "map '\(name)' key '\(key)'")
    }

    /// Writes a value; this node becomes the key's owner.
    ///
    /// - Parameter concern: the write concern of this write; nil uses the map's
    ///   (``ReplicatedMapConfiguration/writeConcern``).
    /// - Returns: what the backups reported.
    /// - Throws: ``CohortError/Code/partialFailure`` when the write concern is not met (naming
    ///   the backups that failed), ``CohortError/Code/noQuorum`` when the split-brain policy
    ///   refuses writes here, ``CohortError/Code/codecFailure`` when the value does not encode.
    @discardableResult
    public func put(_ key: String, _ value: Value, expiresAt: Date? = nil, concern: WriteConcern? = nil) async throws -> ReplicationReport {
        let bytes = try codec.encodeValue(value, what: "map '\(name)' key '\(key)'")
        return try await replicator.commit(key, MapEntry.Delta(stamp: .zero, value: bytes, expiresAt: expiresAt?.wallMillis), mustCreate: false, concern: concern)
    }

    /// Removes a key everywhere; does nothing when it does not exist.
    ///
    /// - Throws: as ``put(_:_:expiresAt:concern:)``.
    @discardableResult
    public func remove(_ key: String, concern: WriteConcern? = nil) async throws -> ReplicationReport {
        do {
            return try await replicator.commit(key, MapEntry.Delta(stamp: .zero, value: nil, expiresAt: nil), mustCreate: false, concern: concern)
        } catch let error as CohortError where error.code == .notFound {
            return ReplicationReport()
        }
    }

    /// The entries this node owns.
    public func ownedEntries() async throws -> [String: Value] {
        try await replicator.ownedEntries().mapValues { entry in
            try codec.decodeValue(Value.self, from: entry.value, what: "map '\(name)'")
        }
    }

    /// Every key of the location table (keys owned anywhere).
    public func keys() async -> [String] { await replicator.keys() }

    /// Where a key lives: its owner and backups.
    public func holders(of key: String) async -> (owner: MemberID, backups: [MemberID])? {
        await replicator.location(of: key).map { ($0.owner, $0.backups) }
    }

    /// Calls `listener` for every change of a copy held on this node.
    @discardableResult
    public func addListener(_ listener: @escaping @Sendable (MapEvent) -> Void) -> ListenerToken { hub.add(listener) }

    /// Removes a listener.
    public func removeListener(_ token: ListenerToken) { hub.remove(token) }

    /// Changes from now on, as an async sequence.
    public func events() -> AsyncStream<MapEvent> { hub.stream() }
}
