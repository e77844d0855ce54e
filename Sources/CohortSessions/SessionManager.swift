import Cohort
import Foundation
import Logging
import ServiceLifecycle
import Tracing

/// The request-scoped API shared by ``DeltaSessionManager`` and ``BackupSessionManager``.
///
/// A request reads a session, changes it, and commits it once: every change is collected into
/// one delta that is replicated when the request ends (not a message per setter, not the whole
/// session each time). A commit without changes still records the access, so that the other
/// copies know when the session was last used and can expire it by themselves.
///
/// ```swift
/// // A new session:
/// var session = manager.newSession()
/// try session.setAttribute("user", "ada")
/// try await manager.commit(session)
///
/// // A later request, on any node:
/// try await manager.withSession(session.id) { session in
///     let visits: Int = try session.attribute("visits") ?? 0
///     try session.setAttribute("visits", visits + 1)
/// }
/// ```
///
/// The manager is a swift-service-lifecycle `Service`: run it next to its channel (after the
/// channel is running) and wait for ``waitUntilReady()`` before serving requests.
public class SessionManager: Service, @unchecked Sendable {
    /// The channel the manager replicates over.
    public let channel: GroupChannel
    /// The settings in force.
    public let configuration: SessionManagerConfiguration
    /// The codec of attribute values and replication messages.
    public let codec: any MessageCodec
    let wall: WallClock
    let backend: any SessionBackend
    let listeners: SessionListeners
    let metrics: SessionMetrics
    let logger: Logger
    let tracing: SessionTracing
    let transferSpan: TransferSpan

    init(
        channel: GroupChannel,
        configuration: SessionManagerConfiguration,
        activeCount: (@Sendable (SessionEvent) -> Int)?,
        makeBackend: (ReplicatorSettings, any MessageCodec, Logger, ReplicaObserver<SessionRecord>) -> any SessionBackend
    ) throws {
        self.channel = channel
        self.configuration = configuration
        let codec = configuration.codec ?? channel.codec
        self.codec = codec
        self.wall = WallClock(clock: configuration.clock)
        var logger = configuration.logger ?? Logger(label: "cohort.sessions")
        logger[metadataKey: "node"] = "\(channel.configuration.name)"
        logger[metadataKey: "manager"] = "\(configuration.name)"
        self.logger = logger
        let listeners = SessionListeners()
        let metrics = SessionMetrics(manager: configuration.name, node: channel.configuration.name, factory: configuration.metricsFactory)
        self.listeners = listeners
        self.metrics = metrics
        self.tracing = SessionTracing(tracer: configuration.tracer, node: channel.configuration.name, manager: configuration.name)
        let transferSpan = TransferSpan()
        self.transferSpan = transferSpan
        let notifyReplicated = configuration.notifyListenersOnReplication
        let observer = ReplicaObserver<SessionRecord>(
            events: { events in
                let sessionEvents = events.flatMap(SessionEvent.from)
                metrics.record(sessionEvents, activeDelta: activeCount ?? { _ in 0 })
                listeners.emit(notifyReplicated ? sessionEvents : sessionEvents.filter { $0.origin == .local })
            },
            ready: { transferred, elapsed in
                metrics.ready(transferred: transferred, elapsed: elapsed)
                transferSpan.finish(transferred: transferred)
            },
            replicated: { bytes, latency in metrics.replicated(bytes: bytes, latency: latency) },
            failure: { kind, count, _ in metrics.failure(kind, count: count) },
            owned: { count in if activeCount == nil { metrics.setActive(count) } }
        )
        self.backend = makeBackend(configuration.replicatorSettings, codec, logger, observer)
    }

    // MARK: - lifecycle

    /// Runs replication, state transfer and expiry until ``shutdown()`` or the service group's
    /// graceful shutdown. Start it once the channel runs.
    public func run() async throws {
        defer { listeners.finish() }
        transferSpan.open(tracing.startTransfer())
        defer { transferSpan.abandon() }
        try await backend.run()
    }

    /// Stops ``run()``. Call ``handOff()`` first for a graceful stop.
    public func shutdown() { backend.shutdown() }

    /// Before a graceful stop (after the node stopped taking requests): makes sure every session
    /// this node owns or alone backs has its copies elsewhere. ``BackupSessionManager`` moves
    /// ownership and data to other members and waits until they applied them;
    /// ``DeltaSessionManager`` has nothing to move (every member holds every session) and waits
    /// until its queued messages are sent. `ClusterNode` calls it on SIGTERM before leaving.
    ///
    /// - Returns: how many sessions could not be confirmed elsewhere (0 when all were).
    @discardableResult
    public func handOff() async -> Int {
        let left = await backend.handOff()
        if left > 0 { logger.warning("hand-off: \(left) session copies not confirmed by their new holders") }
        return left
    }

    /// Returns once the node holds the sessions it should: after the state transfer (delta
    /// manager) or once it knows where every session lives (backup manager).
    ///
    /// - Throws: ``CohortError/Code/notRunning`` if the manager stops first.
    public func waitUntilReady() async throws { try await backend.waitUntilReady() }

    /// The current wall time on the manager's clock (``SessionManagerConfiguration/clock``):
    /// session timestamps, idle limits and deadlines (``Session/absoluteExpiry``, the
    /// `expiresAt:` of the key/value API) are measured against it.
    public var now: Date { wall.date }

    /// Returns once nothing this node queued to send (a state transfer, backup copies, location
    /// updates) is waiting or under way, and membership changes its channel knows are applied.
    ///
    /// - Returns: whether anything was pending (false: it was idle already).
    @discardableResult
    func waitUntilIdle() async -> Bool { await backend.waitUntilIdle() }

    // MARK: - requests

    /// A new session, not stored until it is committed.
    ///
    /// - Parameter id: the id, or nil for a fresh random one.
    public func newSession(id: String? = nil) -> Session {
        let now = wall.now
        let record = SessionRecord(
            id: id ?? configuration.idGenerator(),
            creationTime: now,
            lastAccessedTime: now,
            maxInactive: Stamped(value: configuration.maxInactiveInterval.milliseconds, stamp: .zero),
            absoluteExpiry: Stamped(value: nil, stamp: .zero),
            principal: Stamped(value: nil, stamp: .zero),
            attributes: [:],
            version: 0,
            latestStamp: .zero
        )
        return Session(record: record, codec: codec, isNew: true)
    }

    /// The session with an id, to read and change; nil when there is none (or it expired).
    ///
    /// Reading does not count as an access; committing does.
    public func session(_ id: String) async throws -> Session? {
        try await tracing.span("cohort.session.fetch") { span in
            let found = try await backend.record(id).map { Session(record: $0, codec: codec) }
            if span.isRecording { span.attributes["cohort.session.found"] = found != nil }
            return found
        }
    }

    /// Stores what a request did to a session, as one delta, and replicates it (waiting for
    /// the other copies in synchronous mode).
    ///
    /// In synchronous mode the change is applied on this node only once the write concern is
    /// met; a commit that throws left this node's copy as the request read it, so retrying the
    /// request sets the same values again rather than applying the change twice.
    ///
    /// - Parameter concern: the write concern of this commit; nil uses the manager's
    ///   (``SessionManagerConfiguration/writeConcern``, every current member by default).
    /// - Returns: what the members reported.
    /// - Throws: ``CohortError/Code/partialFailure`` when the write concern is not met (the
    ///   message names the members that failed and why; a member whose copy is newer than the
    ///   one the request read refuses the change as a conflict), ``CohortError/Code/noQuorum``
    ///   when the split-brain policy refuses writes on this side of a split,
    ///   ``CohortError/Code/notFound`` when the session is gone (invalidated or expired
    ///   meanwhile), ``CohortError/Code/duplicate`` when a new session's id is taken,
    ///   ``CohortError/Code/codecFailure`` when an attribute set through the subscript did not
    ///   encode (nothing is stored), or the channel's error when the channel is not running.
    @discardableResult
    public func commit(_ session: Session, concern: WriteConcern? = nil) async throws -> ReplicationReport {
        if let failure = session.encodingFailure { throw failure }
        var delta = session.changes
        delta.sessionID = session.originalID
        if session.isInvalidated {
            guard !session.isNew else { return ReplicationReport() }
            delta = SessionDelta(sessionID: session.originalID)
            delta.invalidated = true
        } else {
            delta.lastAccessedTime = wall.now
            if session.isNew {
                delta.creation = .init(creationTime: session.creationTime.wallMillis)
                delta.maxInactive = session.maxInactiveInterval.milliseconds
            }
        }
        let mustCreate = session.isNew
        let base = session.isNew ? nil : session.baseStamp
        return try await tracing.span("cohort.session.commit") { span in
            if span.isRecording {
                span.attributes["cohort.session.new"] = mustCreate
                span.attributes["cohort.session.invalidated"] = delta.invalidated
            }
            let report = try await backend.commit(session.originalID, delta, mustCreate: mustCreate, base: base, concern: concern)
            if span.isRecording {
                span.attributes["cohort.session.replicas"] = report.replicas
                span.attributes["cohort.session.failures"] = report.failures.count
            }
            return report
        }
    }

    /// Runs `body` on a session and commits what it did (one delta).
    ///
    /// If `body` throws, nothing is committed.
    ///
    /// - Throws: ``CohortError/Code/notFound`` when there is no such session, `body`'s error,
    ///   or the errors of ``commit(_:)``.
    public func withSession<Result>(_ id: String, _ body: (inout Session) async throws -> Result) async throws -> Result {
        guard var session = try await session(id) else {
            throw CohortError(.notFound, "no session '\(id)' in manager '\(configuration.name)' (never created, invalidated, or expired)")
        }
        let result = try await body(&session)
        try await commit(session)
        return result
    }

    /// Creates a session, lets `body` fill it, and commits it (one delta).
    ///
    /// - Returns: the committed session.
    @discardableResult
    public func createSession(id: String? = nil, _ body: (inout Session) async throws -> Void = { _ in }) async throws -> Session {
        var session = newSession(id: id)
        try await body(&session)
        try await commit(session)
        return session
    }

    /// Invalidates a session everywhere. Does nothing when it does not exist.
    public func invalidate(_ id: String) async throws {
        var delta = SessionDelta(sessionID: id)
        delta.invalidated = true
        do {
            _ = try await backend.commit(id, delta, mustCreate: false, base: nil, concern: nil)
        } catch let error as CohortError where error.code == .notFound {
            return
        }
    }

    // MARK: - observing

    /// The ids of the active sessions on this node.
    public func sessionIDs() async -> [String] { await backend.sessionIDs() }

    /// Counts of this node (also published through swift-metrics as `cohort.sessions.*`).
    public var statistics: SessionStatistics { metrics.statistics }

    /// Calls `listener` for every session event on this node, local or replicated (see
    /// ``SessionEvent/origin``). Listeners run on the manager's executor: keep them quick.
    @discardableResult
    public func addListener(_ listener: @escaping @Sendable (SessionEvent) -> Void) -> SessionListenerToken {
        listeners.add(listener)
    }

    /// Removes a listener.
    public func removeListener(_ token: SessionListenerToken) { listeners.remove(token) }

    /// Session events from now on, as an async sequence (the newest 65,536 are buffered).
    public func events() -> AsyncStream<SessionEvent> { listeners.stream() }
}
