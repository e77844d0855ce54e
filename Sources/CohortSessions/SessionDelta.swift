import Cohort
import NIOCore

/// A value together with the stamp of the change that set it (last writer wins).
struct Stamped<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    var value: Value
    var stamp: Stamp

    enum CodingKeys: String, CodingKey {
        case value = "v", stamp = "s"
    }
}

/// Boxes an optional so that "set to nil" and "not changed" differ on the wire.
struct Change<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    var value: Value
}

/// Everything one request changed in one session, replicated as one message.
///
/// A later change of the same attribute within the request replaces the earlier one, so a
/// request that sets `cart` ten times sends one value. Every field is optional: an access-only
/// request sends just the id, the stamp and the access time.
struct SessionDelta: ReplicaDelta, Equatable {
    /// What a new session needs besides its attributes.
    struct Creation: Sendable, Equatable {
        var creationTime: WallMillis
    }

    /// The session id when the request started.
    var sessionID: String
    var stamp: Stamp
    /// Set when the request created the session.
    var creation: Creation?
    /// The time of the access (every request that touched the session).
    var lastAccessedTime: WallMillis?
    /// A new idle limit in milliseconds (0 or less: never idles out).
    var maxInactive: Int64?
    /// A new absolute deadline (the inner nil clears it).
    var absoluteExpiry: Change<WallMillis?>?
    /// A new principal (the inner nil clears it).
    var principal: Change<String?>?
    /// Attribute values set (encoded bytes) or removed (nil).
    var attributes: [String: ByteBuffer?]
    /// The session was invalidated.
    var invalidated: Bool
    /// The session id changed to this one (applied after everything else).
    var newID: String?

    init(sessionID: String, stamp: Stamp = .zero) {
        self.sessionID = sessionID
        self.stamp = stamp
        self.attributes = [:]
        self.invalidated = false
    }

    var deletes: Bool { invalidated }
    var renamedKey: String? { newID }

    /// Whether the delta changes anything besides the access time.
    var changesState: Bool {
        creation != nil || maxInactive != nil || absoluteExpiry != nil || principal != nil
            || !attributes.isEmpty || invalidated || newID != nil
    }

    /// Whether the delta carries anything at all.
    var isEmpty: Bool { !changesState && lastAccessedTime == nil }
}
