import Cohort
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// A cluster node for a web app: the group channel plus a session manager, as one
/// swift-service-lifecycle `Service`. Framework-neutral: `CohortHummingbird` and `CohortVapor`
/// add their admin routes to it.
///
/// Put it **before** the HTTP server in the service list (Hummingbird's `Application(services:)`
/// does that for services it is given; `CohortVapor`'s lifecycle handler starts it on boot): it
/// starts first and stops after the server. It is not ready (``isReady``, `GET /ready`) until the
/// session state transfer is done. On graceful shutdown (SIGTERM) — or on ``leave()`` — it reports
/// not-ready, stops the session manager (which hands off what it alone holds), then leaves the
/// group — all within ``gracePeriod``.
///
/// Times (``started``, ``memberSince(_:)``, the grace period) come from the session manager's
/// clock (``SessionManagerConfiguration/clock``).
public final class ClusterNode: Service, Sendable {
    /// The group channel.
    public let channel: GroupChannel
    /// The session manager.
    public let sessions: SessionManager
    /// The longest the graceful hand-off may take before the node leaves anyway.
    public let gracePeriod: Duration
    let state: NIOLockedValueBox<State>

    struct State {
        var ready = false
        var stopping = false
        var left = false
        var leaveRequested = false
        var leaveWaiter: CheckedContinuation<Void, Never>?
        var since: [MemberID: Date] = [:]
        var started: Date
        var readyWaiters: [CheckedContinuation<Void, any Error>] = []
        var finished = false
    }

    /// The kinds of session manager.
    public enum ManagerKind: String, Sendable, CaseIterable {
        /// Every node holds every session (``DeltaSessionManager``).
        case delta
        /// Each session has a primary and backups (``BackupSessionManager``).
        case backup
    }

    /// Creates a node from a channel and a manager built on it.
    public init(channel: GroupChannel, sessions: SessionManager, gracePeriod: Duration = .seconds(20)) {
        self.channel = channel
        self.sessions = sessions
        self.gracePeriod = gracePeriod
        self.state = NIOLockedValueBox(State(started: sessions.now))
    }

    /// Creates a node from configuration, resolving plugins by id.
    ///
    /// - Throws: ``CohortError`` for bad configuration or unknown plugins.
    public convenience init(
        configuration: ClusterConfiguration,
        manager: ManagerKind = .delta,
        sessions: SessionManagerConfiguration = SessionManagerConfiguration(),
        gracePeriod: Duration = .seconds(20),
        logger: Logger? = nil,
        registry: PluginRegistry? = nil
    ) throws {
        let channel = try GroupChannel(configuration: configuration, registry: registry, logger: logger)
        let made: SessionManager
        switch manager {
        case .delta: made = try DeltaSessionManager(channel: channel, configuration: sessions)
        case .backup: made = try BackupSessionManager(channel: channel, configuration: sessions)
        }
        self.init(channel: channel, sessions: made, gracePeriod: gracePeriod)
    }

    /// Whether the node serves: state transfer done, not shutting down or leaving, and in quorum
    /// (it sees at least ``ClusterConfiguration/minimumMembers`` members, itself included).
    public var isReady: Bool { state.withLockedValue { $0.ready && !$0.stopping } && channel.isInQuorum }

    /// When each current member was first seen.
    public func memberSince(_ id: MemberID) -> Date? { state.withLockedValue { $0.since[id] } }

    /// When this node started.
    public var started: Date { state.withLockedValue { $0.started } }

    /// Returns once the session state transfer is done (the first half of ``isReady``; quorum
    /// is the channel's: see `GroupChannel.isInQuorum`).
    ///
    /// - Throws: ``CohortError/Code/notRunning`` when the node stops first.
    public func waitUntilReady() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome: Result<Void, any Error>? = state.withLockedValue { state in
                if state.ready { return .success(()) }
                if state.finished || state.stopping {
                    return .failure(CohortError(.notRunning, "node \(channel.configuration.name) stopped before it was ready"))
                }
                state.readyWaiters.append(continuation)
                return nil
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }

    /// Leaves the cluster gracefully without stopping the service: the node reports not-ready,
    /// hands off the sessions it alone holds, and leaves the group, as on SIGTERM; then
    /// ``run()`` keeps waiting for the service group's shutdown (so the HTTP server stays up and
    /// answers 503 on `/ready` and the session routes, and the admin routes say `left`).
    ///
    /// Returns at once; ``status()`` tells `leaving`, then `left`. Calling it again does nothing.
    public func leave() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLockedValue { state in
            guard !state.leaveRequested else { return nil }
            state.leaveRequested = true
            defer { state.leaveWaiter = nil }
            return state.leaveWaiter
        }
        waiter?.resume()
    }

    /// Returns when ``leave()`` is called (at once if it was).
    func waitForLeaveRequest() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now: Bool = state.withLockedValue { state in
                    if state.leaveRequested || Task.isCancelled { return true }
                    state.leaveWaiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state in
                defer { state.leaveWaiter = nil }
                return state.leaveWaiter
            }
            waiter?.resume()
        }
    }

    private func markReady() {
        let waiters = state.withLockedValue { state in
            state.ready = true
            defer { state.readyWaiters.removeAll() }
            return state.readyWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Stopping (shutdown or leave): waiters for readiness fail at once.
    private func markStopping() {
        let waiters = state.withLockedValue { state in
            state.stopping = true
            defer { state.readyWaiters.removeAll() }
            return state.readyWaiters
        }
        let error = CohortError(.notRunning, "node \(channel.configuration.name) stopped before it was ready")
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    private func markFinished() {
        let waiters = state.withLockedValue { state in
            state.finished = true
            defer { state.readyWaiters.removeAll() }
            return state.readyWaiters
        }
        let error = CohortError(.notRunning, "node \(channel.configuration.name) stopped before it was ready")
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    public func run() async throws {
        defer { markFinished() }
        let events = channel.membershipEvents()
        let (managerDone, managerDoneInput) = AsyncStream.makeStream(of: Void.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.channel.run(stopOnGracefulShutdown: false) }
            group.addTask {
                for await event in events { self.record(event) }
            }
            _ = try await channel.waitUntilRunning()
            group.addTask {
                defer { managerDoneInput.finish() }
                try await self.sessions.run()
            }
            group.addTask {
                try await self.sessions.waitUntilReady()
                self.markReady()
            }
            // Serve until the service group shuts down (SIGTERM), cancels, or leave() is called.
            let reason = await Self.firstOf(shutdown: { try await gracefulShutdown() }, leave: { await self.waitForLeaveRequest() })
            self.markStopping()
            channel.logger.info("\(channel.localMember.name): \(reason == .leave ? "leaving" : "stopping"); handing off sessions")
            // Hand-off first (ownership and copies moved, confirmed), then stop the manager and
            // leave: the members own and back everything this node held before they see it go.
            await Self.waitAtMost(gracePeriod, on: sessions.configuration.clock) { _ = await self.sessions.handOff() }
            sessions.shutdown()
            await Self.waitAtMost(gracePeriod, on: sessions.configuration.clock) { for await _ in managerDone {} }
            channel.shutdown()
            try await group.waitForAll()
            self.state.withLockedValue { $0.left = true }
            if reason == .leave {
                // Out of the cluster, still a service of its group: wait for the group's shutdown.
                try? await gracefulShutdown()
            }
        }
    }

    enum StopReason { case shutdown, leave }

    /// Waits for the service group's graceful shutdown (or cancellation) or a leave request.
    static func firstOf(shutdown: @escaping @Sendable () async throws -> Void, leave: @escaping @Sendable () async -> Void) async -> StopReason {
        await withTaskGroup(of: StopReason.self) { group in
            group.addTask {
                // Cancelled: the same orderly stop, as fast as it goes.
                try? await shutdown()
                return .shutdown
            }
            group.addTask {
                await leave()
                return .leave
            }
            let first = await group.next() ?? .shutdown
            group.cancelAll()
            return first
        }
    }

    private func record(_ event: MembershipEvent) {
        state.withLockedValue { state in
            switch event {
            case .added(let member): state.since[member.id] = sessions.now
            case .removed(let member), .left(let member): state.since.removeValue(forKey: member.id)
            default: break
            }
        }
    }

    static func waitAtMost(_ limit: Duration, on clock: any CohortClock, _ body: @escaping @Sendable () async -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await body() }
            group.addTask { try? await clock.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
    }
}
