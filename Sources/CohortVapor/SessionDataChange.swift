#if Vapor
/// What a request did to a session's data, found by comparing it with what the session held when
/// the request read it: the pure part of ``CohortSessionDriver``'s change detection.
///
/// Vapor's `SessionsMiddleware` hands the driver the whole `SessionData` at the end of every
/// request that has a session, changed or not; replicating it each time would send every read.
/// The driver keeps what `readSession` returned and replicates only the keys that differ.
public struct SessionDataChange: Sendable, Equatable {
    /// Keys set to a new value (added or changed).
    public var set: [String: String]
    /// Keys removed.
    public var removed: Set<String>
    /// Whether a principal key (see ``CohortSessionDriver/Configuration/isPrincipalKey``) was
    /// added, changed or removed: a login, a logout, or a switch of user.
    public var principalChanged: Bool
    /// The principal after the request: the value of the first principal key in sorted order, or
    /// nil when no principal key is set.
    public var principal: String?

    /// Whether the data changed at all.
    public var isEmpty: Bool { self.set.isEmpty && removed.isEmpty }

    /// Compares the data a request ends with against the data it started with.
    ///
    /// - Parameters:
    ///   - old: the data as read (empty for a new session).
    ///   - new: the data at the end of the request.
    ///   - isPrincipalKey: which keys name the authenticated user.
    public init(from old: [String: String], to new: [String: String], isPrincipalKey: (String) -> Bool) {
        var set: [String: String] = [:]
        var removed = Set<String>()
        var principalChanged = false
        for (key, value) in new where old[key] != value {
            set[key] = value
            if isPrincipalKey(key) { principalChanged = true }
        }
        for key in old.keys where new[key] == nil {
            removed.insert(key)
            if isPrincipalKey(key) { principalChanged = true }
        }
        self.set = set
        self.removed = removed
        self.principalChanged = principalChanged
        self.principal = new.keys.filter(isPrincipalKey).sorted().first.flatMap { new[$0] }
    }

    /// Vapor's session authentication key for a type: `_` + the type's session name + `Session`
    /// (`SessionAuthenticatable`'s `authenticate(_:)` stores the user's id under it).
    public static func isVaporAuthenticationKey(_ key: String) -> Bool {
        key.count > "_Session".count && key.hasPrefix("_") && key.hasSuffix("Session")
    }
}
#endif
