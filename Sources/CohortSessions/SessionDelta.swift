import Cohort

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
    struct Creation: Codable, Sendable, Equatable {
        var creationTime: WallMillis
        enum CodingKeys: String, CodingKey { case creationTime = "c" }
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

    enum CodingKeys: String, CodingKey {
        case sessionID = "i", stamp = "s", creation = "c", lastAccessedTime = "a", maxInactive = "m"
        case absoluteExpiry = "x", principal = "p", attributes = "t", invalidated = "d", newID = "n"
    }

    init(sessionID: String, stamp: Stamp = .zero) {
        self.sessionID = sessionID
        self.stamp = stamp
        self.attributes = [:]
        self.invalidated = false
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sessionID = try c.decode(String.self, forKey: .sessionID)
        stamp = try c.decode(Stamp.self, forKey: .stamp)
        creation = try c.decodeIfPresent(Creation.self, forKey: .creation)
        lastAccessedTime = try c.decodeIfPresent(WallMillis.self, forKey: .lastAccessedTime)
        maxInactive = try c.decodeIfPresent(Int64.self, forKey: .maxInactive)
        absoluteExpiry = try c.decodeIfPresent(Change<WallMillis?>.self, forKey: .absoluteExpiry)
        principal = try c.decodeIfPresent(Change<String?>.self, forKey: .principal)
        attributes = try c.decodeIfPresent([String: ByteBuffer?].self, forKey: .attributes) ?? [:]
        invalidated = try c.decodeIfPresent(Bool.self, forKey: .invalidated) ?? false
        newID = try c.decodeIfPresent(String.self, forKey: .newID)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(sessionID, forKey: .sessionID)
        try c.encode(stamp, forKey: .stamp)
        try c.encodeIfPresent(creation, forKey: .creation)
        try c.encodeIfPresent(lastAccessedTime, forKey: .lastAccessedTime)
        try c.encodeIfPresent(maxInactive, forKey: .maxInactive)
        try c.encodeIfPresent(absoluteExpiry, forKey: .absoluteExpiry)
        try c.encodeIfPresent(principal, forKey: .principal)
        if !attributes.isEmpty { try c.encode(attributes, forKey: .attributes) }
        if invalidated { try c.encode(true, forKey: .invalidated) }
        try c.encodeIfPresent(newID, forKey: .newID)
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
