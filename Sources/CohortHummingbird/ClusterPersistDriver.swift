import Cohort
import CohortSessions
import Foundation
import Hummingbird
import ServiceLifecycle

/// A Hummingbird `PersistDriver` whose values live in a replicated session manager, so every
/// existing Hummingbird app's sessions (hummingbird-auth's `SessionStorage`) survive the loss of
/// a node with one line of setup:
///
/// ```swift
/// let persist = ClusterPersistDriver(manager: node.sessions)
/// router.add(middleware: SessionMiddleware(storage: persist))   // hummingbird-auth
/// ```
///
/// Semantics match Hummingbird's `MemoryPersistDriver`: `create` on an existing key throws
/// `PersistError.duplicate`; `set` with `expires == nil` keeps the key's existing expiry;
/// `get` returns nil for a missing or expired key and throws `PersistError.invalidConversion` for
/// a value of another type. Expiry is stored as an absolute deadline so every replica agrees,
/// measured on the manager's clock (``SessionManagerConfiguration/clock``).
/// Cluster failures (a replication that times out, a node that is not ready) are thrown as
/// ``ClusterPersistError`` — never turned into "no session".
public struct ClusterPersistDriver: PersistDriver {
    /// The manager holding the values.
    public let manager: SessionManager

    /// Creates a driver over a session manager (a ``DeltaSessionManager`` or ``BackupSessionManager``).
    public init(manager: SessionManager) {
        self.manager = manager
    }

    public func create<Object: Codable & Sendable>(key: String, value: Object, expires: Duration?) async throws {
        try await mapped { try await manager.create(key: key, value: value, expiresAt: expires.map(deadline)) }
    }

    public func set<Object: Codable & Sendable>(key: String, value: Object, expires: Duration?) async throws {
        try await mapped { try await manager.set(key: key, value: value, expiresAt: expires.map(deadline)) }
    }

    public func get<Object: Codable & Sendable>(key: String, as type: Object.Type) async throws -> Object? {
        try await mapped { try await manager.get(key: key, as: type) }
    }

    public func getWithTTL<Object: Codable & Sendable>(key: String, as type: Object.Type) async throws -> (object: Object, ttl: Duration?)? {
        try await mapped {
            guard let found = try await manager.getWithTTL(key: key, as: type) else { return nil }
            return (found.value, found.ttl)
        }
    }

    public func remove(key: String) async throws {
        try await mapped { try await manager.remove(key: key) }
    }

    /// The manager is run by its node; the driver has no work of its own.
    public func run() async throws {
        try? await gracefulShutdown()
    }

    /// The deadline `duration` from now, on the manager's clock.
    func deadline(_ duration: Duration) -> Date {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return manager.now.addingTimeInterval(seconds)
    }

    private func mapped<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as CohortError {
            switch error.code {
            case .duplicate: throw PersistError.duplicate
            case .codecFailure: throw PersistError.invalidConversion
            default: throw ClusterPersistError(error)
            }
        }
    }
}

/// A cluster failure under a persist operation: the operation may not be on the other replicas.
public struct ClusterPersistError: Error, CustomStringConvertible {
    /// The underlying Cohort error (its code says what kind of failure).
    public let underlying: CohortError

    public init(_ underlying: CohortError) {
        self.underlying = underlying
    }

    public var description: String { "session store: \(underlying.message) [\(underlying.code)]" }
}
