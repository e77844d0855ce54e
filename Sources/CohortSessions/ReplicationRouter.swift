import Cohort
import Synchronization

/// A store that receives replica messages.
protocol ReplicaEndpoint: AnyObject, Sendable {
    /// Handles one message. Runs in the channel's handler for the sender, so it must not wait
    /// for a round trip to any member.
    func receive(_ message: any ReplicaMessage, from sender: Member) async throws
}

/// Routes the replica messages of one channel to its stores by name.
///
/// One router per channel registers the handlers once. A message for a store this node does
/// not run fails with ``CohortError/Code/notFound``, which its sender sees as a remote failure
/// (so a starting node asking a member without the store moves on at once).
final class ReplicationRouter: Sendable {
    private let endpoints = Mutex<[String: any ReplicaEndpoint]>([:])
    private let nodeName: String

    private static let routers = Mutex<[ObjectIdentifier: WeakRouter]>([:])

    private struct WeakRouter: @unchecked Sendable {
        weak var channel: GroupChannel?
        let router: ReplicationRouter
    }

    private init(nodeName: String) {
        self.nodeName = nodeName
    }

    /// The router of a channel, created (and its handlers registered) on first use.
    static func router(for channel: GroupChannel) throws -> ReplicationRouter {
        try routers.withLock { routers in
            let key = ObjectIdentifier(channel)
            if let existing = routers[key], existing.channel === channel { return existing.router }
            routers = routers.filter { $0.value.channel != nil }
            let router = ReplicationRouter(nodeName: channel.configuration.name)
            try router.install(on: channel)
            routers[key] = WeakRouter(channel: channel, router: router)
            return router
        }
    }

    private func install(on channel: GroupChannel) throws {
        try handle(ReplicaUpdate.self, on: channel)
        try handle(ReplicaTransferRequest.self, on: channel)
        try handle(ReplicaTransferBatch.self, on: channel)
        try handle(BackupStore.self, on: channel)
        try handle(BackupUpdate.self, on: channel)
        try handle(LocationUpdate.self, on: channel)
        try handle(LocationRemoval.self, on: channel)
        try handle(LocationsRequest.self, on: channel)
        try handle(LocationsBatch.self, on: channel)
        try handle(FetchRequest.self, on: channel)
        try handle(FetchReply.self, on: channel)
        try handle(ReplicaDigest.self, on: channel)
        try handle(ReplicaKeysRequest.self, on: channel)
        try handle(ReplicaKeysReply.self, on: channel)
    }

    private func handle<M: ReplicaMessage>(_ type: M.Type, on channel: GroupChannel) throws {
        try channel.onMessage(type) { [weak self] message, sender in
            guard let self else { return }
            try await self.route(message, from: sender)
        }
    }

    func route(_ message: any ReplicaMessage, from sender: Member) async throws {
        guard let endpoint = endpoints.withLock({ $0[message.store] }) else {
            throw CohortError(.notFound, "no replicated store named '\(message.store)' runs on \(nodeName)")
        }
        try await endpoint.receive(message, from: sender)
    }

    /// Makes a store reachable.
    ///
    /// - Throws: ``CohortError/Code/duplicate`` when a store of that name already runs.
    func register(_ name: String, _ endpoint: any ReplicaEndpoint) throws {
        try endpoints.withLock { endpoints in
            if endpoints[name] != nil {
                throw CohortError(.duplicate, "a replicated store named '\(name)' already runs on \(nodeName); give each map or session manager its own name")
            }
            endpoints[name] = endpoint
        }
    }

    /// Makes a store unreachable.
    func unregister(_ name: String) {
        _ = endpoints.withLock { $0.removeValue(forKey: name) }
    }
}
