#if Vapor
import Cohort
import CohortSessions
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import Vapor

/// Runs a ``ClusterNode`` through a Vapor application's lifecycle:
///
/// ```swift
/// app.lifecycle.use(ClusterNodeLifecycle(node: node))
/// ```
///
/// - **Boot** (before the HTTP server starts): starts the channel and the session manager and, by
///   default, waits until the node is ready — its state transfer done — so the server never
///   answers from a node without the sessions. Boot fails when the node cannot start (its
///   cluster port is taken, for example).
/// - **Shutdown** (`app.asyncShutdown()`, after `execute()` returned on SIGTERM or SIGINT): stops
///   the HTTP server first, so no request arrives any more and those under way finish; then the
///   node reports not-ready, stops the session manager — which hands off what only it holds —
///   and leaves the group, within the node's ``ClusterNode/gracePeriod``.
///
/// Vapor calls the handlers of `app.asyncShutdown()` before it stops its server; this handler
/// stops the server itself (`application.server.shutdown()`, which Vapor's own shutdown then
/// finds done) so that the hand-off cannot race new requests.
public final class ClusterNodeLifecycle: LifecycleHandler, Sendable {
    /// The node.
    public let node: ClusterNode
    /// Whether boot waits until the node is ready.
    public let waitsUntilReady: Bool
    private let running: NIOLockedValueBox<Running?>

    private struct Running {
        var group: ServiceGroup
        var task: Task<Void, any Error>
    }

    /// Creates the handler.
    ///
    /// - Parameters:
    ///   - node: the node to run.
    ///   - waitUntilReady: whether boot waits until the node is ready (default). With false, the
    ///     server starts at once and answers 503 (``ClusterReadinessMiddleware``, the driver) and
    ///     `GET /ready` 503 until the node is ready.
    public init(node: ClusterNode, waitUntilReady: Bool = true) {
        self.node = node
        self.waitsUntilReady = waitUntilReady
        self.running = NIOLockedValueBox(nil)
    }

    public func willBootAsync(_ application: Application) async throws {
        try await start(logger: application.logger)
    }

    public func shutdownAsync(_ application: Application) async {
        await application.server.shutdown()
        await stop()
    }

    /// For apps on Vapor's synchronous API (`app.run()`): blocks the booting thread until the
    /// node runs (and is ready).
    public func willBoot(_ application: Application) throws {
        let logger = application.logger
        try Self.blocking { try await self.start(logger: logger) }
    }

    /// For apps on Vapor's synchronous API: blocks until the hand-off is done.
    public func shutdown(_ application: Application) {
        application.server.shutdown()
        try? Self.blocking { await self.stop() }
    }

    /// Starts the node (once) and, if so configured, waits until it is ready.
    ///
    /// - Throws: ``CohortError`` when the node stops before it is ready.
    public func start(logger: Logger) async throws {
        let node = self.node
        let started: Bool = running.withLockedValue { running in
            guard running == nil else { return false }
            let group = ServiceGroup(
                configuration: .init(services: [.init(service: node)], gracefulShutdownSignals: [], logger: logger)
            )
            let task = Task {
                do {
                    try await group.run()
                } catch {
                    logger.error("cluster node \(node.channel.configuration.name) stopped: \(error)")
                    throw error
                }
            }
            running = Running(group: group, task: task)
            return true
        }
        guard started, waitsUntilReady else { return }
        try await node.waitUntilReady()
    }

    /// Stops the node: hand-off, then leave. Returns when it is done.
    public func stop() async {
        guard let current = running.withLockedValue({ $0 }) else { return }
        await current.group.triggerGracefulShutdown()
        _ = try? await current.task.value
    }

    /// Runs async work from synchronous code, blocking the calling thread.
    private static func blocking(_ body: @escaping @Sendable () async throws -> Void) throws {
        let done = DispatchSemaphore(value: 0)
        let outcome = NIOLockedValueBox<Result<Void, any Error>>(.success(()))
        Task {
            do { try await body() } catch { outcome.withLockedValue { $0 = .failure(error) } }
            done.signal()
        }
        done.wait()
        try outcome.withLockedValue { $0 }.get()
    }
}
#endif
