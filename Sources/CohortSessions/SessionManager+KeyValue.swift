import Cohort
import Foundation

/// A key/value view of a session manager, for persistence drivers (a Hummingbird
/// `PersistDriver`, for example): each key is a session with one value, no idle limit, and an
/// optional absolute deadline. Values are `Codable`, encoded with the manager's codec, and
/// replicated like any session change.
extension SessionManager {
    static let valueAttribute = "value"

    /// Stores a value under a new key.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - value: the value.
    ///   - expiresAt: when the key expires, or nil for never.
    /// - Throws: ``CohortError/Code/duplicate`` when the key exists (on this node's copy),
    ///   ``CohortError/Code/codecFailure`` when the value does not encode.
    public func create<Value: Encodable>(key: String, value: Value, expiresAt: Date? = nil) async throws {
        _ = try await backend.commit(key, valueDelta(key, value, expiresAt: expiresAt, creating: true), mustCreate: true, base: nil, concern: nil)
    }

    /// Stores a value under a key, creating it if needed.
    ///
    /// - Parameters:
    ///   - key: the key.
    ///   - value: the value.
    ///   - expiresAt: the new deadline; nil keeps the existing one (none for a new key).
    /// - Throws: ``CohortError/Code/codecFailure`` when the value does not encode.
    public func set<Value: Encodable>(key: String, value: Value, expiresAt: Date? = nil) async throws {
        _ = try await backend.commit(key, valueDelta(key, value, expiresAt: expiresAt, creating: true), mustCreate: false, base: nil, concern: nil)
    }

    /// The value of a key, or nil when it does not exist (or expired).
    ///
    /// - Throws: ``CohortError/Code/codecFailure`` when the stored value is not a `Value`.
    public func get<Value: Decodable>(key: String, as type: Value.Type = Value.self) async throws -> Value? {
        try await getWithTTL(key: key, as: type)?.value
    }

    /// The value of a key and the time it has left (nil: no deadline).
    ///
    /// - Throws: ``CohortError/Code/codecFailure`` when the stored value is not a `Value`.
    public func getWithTTL<Value: Decodable>(key: String, as type: Value.Type = Value.self) async throws -> (value: Value, ttl: Duration?)? {
        guard let record = try await backend.record(key), let stored = record.attributes[Self.valueAttribute]?.value else {
            return nil
        }
        let value = try codec.decodeValue(Value.self, from: stored, what: "the value of key '\(key)' as \(Value.self)")
        let ttl = record.deadline.map { Duration.milliseconds(max(0, $0 - wall.now)) }
        return (value, ttl)
    }

    /// Removes a key; does nothing when it does not exist.
    public func remove(key: String) async throws {
        try await invalidate(key)
    }

    private func valueDelta<Value: Encodable>(_ key: String, _ value: Value, expiresAt: Date?, creating: Bool) throws -> SessionDelta {
        let bytes = try codec.encodeValue(value, what: "the value of key '\(key)' (\(Value.self))")
        let now = wall.now
        var delta = SessionDelta(sessionID: key)
        if creating { delta.creation = .init(creationTime: now) }
        delta.lastAccessedTime = now
        delta.attributes[Self.valueAttribute] = .some(bytes)
        if let expiresAt { delta.absoluteExpiry = Change(value: expiresAt.wallMillis) }
        return delta
    }
}
