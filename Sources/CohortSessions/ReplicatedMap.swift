import Cohort
import Foundation
import Logging
import ServiceLifecycle

/// A map keyed by `String` with a copy of every entry on every node (Tomcat's ReplicatedMap).
///
/// Values are `Codable`, encoded once with the map's codec; a write is stamped, applied here,
/// and sent to every member (waiting for them in synchronous mode). Concurrent writes of one key
/// on two nodes resolve the same way everywhere (the higher stamp wins). A starting node copies
/// all entries from a member (see ``DeltaSessionManager`` for the protocol).
///
/// ```swift
/// let map = try ReplicatedMap<Int>(name: "counters", channel: channel)
/// // run `map` in the service group, after the channel
/// try await map.waitUntilReady()
/// try await map.put("visits", 1)
/// ```
public final class ReplicatedMap<Value: Codable & Sendable>: Service, Sendable {
    /// The map's name; maps replicate only with maps of the same name.
    public let name: String
    /// The codec of values.
    public let codec: any MessageCodec
    let replicator: AllCopiesReplicator<MapEntry>
    let hub = EventHub<MapEvent>()
    let wall: WallClock

    /// Creates a map on a channel (the channel need not run yet).
    ///
    /// - Throws: ``CohortError`` when the channel's codec cannot be resolved.
    public init(name: String, channel: GroupChannel, configuration: ReplicatedMapConfiguration = ReplicatedMapConfiguration()) throws {
        self.name = name
        let codec = configuration.codec ?? channel.codec
        self.codec = codec
        self.wall = WallClock(clock: configuration.clock)
        var logger = configuration.logger ?? Logger(label: "cohort.maps")
        logger[metadataKey: "map"] = "\(name)"
        replicator = AllCopiesReplicator(
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

    /// Returns once the map holds its entries (after the start-up transfer).
    public func waitUntilReady() async throws { try await replicator.waitUntilReady() }

    /// Returns once nothing this node queued to send is waiting or under way (see
    /// `SessionManager.waitUntilIdle()`); returns whether anything was.
    @discardableResult
    func waitUntilIdle() async -> Bool { await replicator.waitUntilIdle() }

    /// The current wall time on the map's clock (``ReplicatedMapConfiguration/clock``):
    /// deadlines given as `expiresAt:` are measured against it.
    public var now: Date { wall.date }

    /// The value of a key, or nil (also when it expired).
    ///
    /// - Throws: ``CohortError/Code/codecFailure`` when the stored bytes are not a `Value`,
    ///   ``CohortError/Code/noQuorum`` when the split-brain policy refuses reads here.
    public func get(_ key: String) async throws -> Value? {
        try replicator.settings.splitBrain.checkRead(replicator.channel, store: replicator.settings.name)
        guard let entry = await replicator.entry(key) else { return nil }
        return try codec.decodeValue(Value.self, from: entry.value, what: "map '\(name)' key '\(key)'")
    }

    /// Writes a value everywhere.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - value: the value.
    ///   - expiresAt: when the key expires, or nil for never.
    ///   - concern: the write concern of this write; nil uses the map's
    ///     (``ReplicatedMapConfiguration/writeConcern``).
    /// - Returns: what the members reported.
    /// - Throws: ``CohortError/Code/partialFailure`` when the write concern is not met (naming
    ///   the members that failed and why; in synchronous mode the value is then not applied on
    ///   this node), ``CohortError/Code/noQuorum`` when the split-brain policy refuses writes
    ///   here, ``CohortError/Code/codecFailure`` when the value does not encode, or the
    ///   channel's error when it is not running.
    @discardableResult
    public func put(_ key: String, _ value: Value, expiresAt: Date? = nil, concern: WriteConcern? = nil) async throws -> ReplicationReport {
        let bytes = try codec.encodeValue(value, what: "map '\(name)' key '\(key)'")
        return try await replicator.commit(key, MapEntry.Delta(stamp: .zero, value: bytes, expiresAt: expiresAt?.wallMillis), concern: concern)
    }

    /// Removes a key everywhere; does nothing when it does not exist.
    ///
    /// - Throws: as ``put(_:_:expiresAt:concern:)``.
    @discardableResult
    public func remove(_ key: String, concern: WriteConcern? = nil) async throws -> ReplicationReport {
        do {
            return try await replicator.commit(key, MapEntry.Delta(stamp: .zero, value: nil, expiresAt: nil), concern: concern)
        } catch let error as CohortError where error.code == .notFound {
            return ReplicationReport()
        }
    }

    /// Every live entry.
    ///
    /// - Throws: ``CohortError/Code/codecFailure`` when a stored value is not a `Value`.
    public func entries() async throws -> [String: Value] {
        try await replicator.entries().mapValues { entry in
            try codec.decodeValue(Value.self, from: entry.value, what: "map '\(name)'")
        }
    }

    /// The number of entries held (expired ones not swept yet included).
    public var count: Int { get async { await replicator.count } }

    /// Calls `listener` for every change on this node. Listeners run on the map's executor:
    /// keep them quick.
    @discardableResult
    public func addListener(_ listener: @escaping @Sendable (MapEvent) -> Void) -> ListenerToken { hub.add(listener) }

    /// Removes a listener.
    public func removeListener(_ token: ListenerToken) { hub.remove(token) }

    /// Changes from now on, as an async sequence.
    public func events() -> AsyncStream<MapEvent> { hub.stream() }
}
