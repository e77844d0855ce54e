import Cohort
import CohortSessions
import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// A cluster node for a web app: the group channel plus a session manager, as one
/// swift-service-lifecycle `Service`.
///
/// Put it **before** the HTTP server in the service list (Hummingbird's `Application(services:)`
/// does that for services it is given): it starts first and stops after the server. It is not
/// ready (``isReady``, `GET /ready`) until the session state transfer is done. On graceful
/// shutdown (SIGTERM) it reports not-ready, stops the session manager (which hands off what it
/// alone holds), then leaves the group — all within ``gracePeriod``.
public final class ClusterNode: Service, Sendable {
    /// The group channel.
    public let channel: GroupChannel
    /// The session manager.
    public let sessions: SessionManager
    /// The longest the graceful hand-off may take before the node leaves anyway.
    public let gracePeriod: Duration
    private let state = NIOLockedValueBox(State())

    struct State {
        var ready = false
        var stopping = false
        var since: [MemberID: Date] = [:]
        var started = Date()
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

    /// Whether the node serves: state transfer done, not shutting down, and in quorum (it sees at
    /// least ``ClusterConfiguration/minimumMembers`` members, itself included).
    public var isReady: Bool { state.withLockedValue { $0.ready && !$0.stopping } && channel.isInQuorum }

    /// When each current member was first seen.
    public func memberSince(_ id: MemberID) -> Date? { state.withLockedValue { $0.since[id] } }

    /// When this node started.
    public var started: Date { state.withLockedValue { $0.started } }

    public func run() async throws {
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
                self.state.withLockedValue { $0.ready = true }
            }
            // Serve until the service group shuts down (SIGTERM) or cancels.
            do {
                try await gracefulShutdown()
            } catch {
                // Cancelled: fall through to the same orderly stop, as fast as it goes.
            }
            self.state.withLockedValue { $0.stopping = true }
            channel.logger.info("\(channel.localMember.name): stopping; handing off sessions")
            sessions.shutdown()
            await Self.waitAtMost(gracePeriod) { for await _ in managerDone {} }
            channel.shutdown()
            try await group.waitForAll()
        }
    }

    private func record(_ event: MembershipEvent) {
        state.withLockedValue { state in
            switch event {
            case .added(let member): state.since[member.id] = Date()
            case .removed(let member), .left(let member): state.since.removeValue(forKey: member.id)
            default: break
            }
        }
    }

    static func waitAtMost(_ limit: Duration, _ body: @escaping @Sendable () async -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await body() }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
    }
}
