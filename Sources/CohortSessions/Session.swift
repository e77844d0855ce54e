import Cohort
import Foundation
import NIOCore

/// One session as a request sees it, with the changes the request makes.
///
/// Get one from a manager (``SessionManager/withSession(_:_:)``,
/// ``SessionManager/session(_:)``), change it, and hand it back with
/// ``SessionManager/commit(_:)``: every change made to the value is replicated as **one**
/// delta when the request ends.
///
/// ```swift
/// try await manager.withSession(id) { session in
///     let count: Int = try session.attribute("count") ?? 0
///     try session.setAttribute("count", count + 1)
/// }
/// ```
///
/// Attribute values are `Codable` values encoded with the manager's codec when they are set.
/// Changing a value you read does nothing until you set it again (there is no hidden
/// dirty-tracking of objects, unlike Tomcat's in-place mutation that was silently lost).
public struct Session: Sendable {
    /// The session id (the new id once ``changeID(to:)`` was called).
    public private(set) var id: String
    /// When the session was created.
    public let creationTime: Date
    /// The last access before this request (the access of this request is recorded on commit).
    public let lastAccessedTime: Date
    /// The version: the number of changes (across the cluster) the session has seen.
    public let version: UInt64
    /// Whether this request created the session.
    public let isNew: Bool
    /// Whether ``invalidate()`` was called.
    public private(set) var isInvalidated = false

    let originalID: String
    /// The newest stamp of the copy this request read (the base of its change).
    let baseStamp: Stamp
    let codec: any MessageCodec
    private(set) var attributes: [String: ByteBuffer]
    private(set) var changes: SessionDelta
    private(set) var encodingFailure: CohortError?
    private var _maxInactive: Int64
    private var _absoluteExpiry: WallMillis?
    private var _principal: String?

    init(record: SessionRecord, codec: any MessageCodec, isNew: Bool = false) {
        self.id = record.id
        self.originalID = record.id
        self.baseStamp = record.latestStamp
        self.creationTime = Date(wallMillis: record.creationTime)
        self.lastAccessedTime = Date(wallMillis: record.lastAccessedTime)
        self.version = record.version
        self.isNew = isNew
        self.codec = codec
        self.attributes = record.liveAttributes
        self.changes = SessionDelta(sessionID: record.id)
        self._maxInactive = record.maxInactive.value
        self._absoluteExpiry = record.absoluteExpiry.value
        self._principal = record.principal.value
    }

    /// The idle limit: the session expires this long after its last access. Zero or less: never.
    public var maxInactiveInterval: Duration {
        get { .milliseconds(_maxInactive) }
        set {
            _maxInactive = newValue.milliseconds
            changes.maxInactive = _maxInactive
        }
    }

    /// An absolute deadline after which the session expires however busy it is, or nil.
    public var absoluteExpiry: Date? {
        get { _absoluteExpiry.map(Date.init(wallMillis:)) }
        set {
            _absoluteExpiry = newValue.map(\.wallMillis)
            changes.absoluteExpiry = Change(value: _absoluteExpiry)
        }
    }

    /// The authenticated user's name, or nil.
    public var principal: String? {
        get { _principal }
        set {
            _principal = newValue
            changes.principal = Change(value: newValue)
        }
    }

    /// The names of the attributes set.
    public var attributeNames: [String] { attributes.keys.sorted() }

    /// Whether the request changed anything (besides the access).
    public var hasChanges: Bool { changes.changesState || encodingFailure != nil }

    /// Decodes an attribute.
    ///
    /// - Returns: the value, or nil when the attribute is not set.
    /// - Throws: ``CohortError/Code/codecFailure`` when the stored bytes are not a `T`.
    public func attribute<T: Decodable>(_ name: String, as type: T.Type = T.self) throws -> T? {
        guard var bytes = attributes[name] else { return nil }
        do {
            return try codec.decode(T.self, from: &bytes)
        } catch {
            throw CohortError(.codecFailure, "session attribute '\(name)' is not a \(T.self): \(error)", cause: error)
        }
    }

    /// The raw encoded bytes of an attribute.
    public func encodedAttribute(_ name: String) -> ByteBuffer? { attributes[name] }

    /// Sets an attribute (encoded now, replicated on commit).
    ///
    /// - Throws: ``CohortError/Code/codecFailure`` when the value cannot be encoded; the
    ///   session is unchanged then.
    public mutating func setAttribute<T: Encodable>(_ name: String, _ value: T) throws {
        let bytes: ByteBuffer
        do {
            bytes = try codec.encode(value)
        } catch {
            throw CohortError(.codecFailure, "cannot encode session attribute '\(name)' (\(T.self)): \(error)", cause: error)
        }
        setEncodedAttribute(name, bytes)
    }

    /// Sets an attribute from bytes already encoded with the manager's codec.
    public mutating func setEncodedAttribute(_ name: String, _ bytes: ByteBuffer) {
        attributes[name] = bytes
        changes.attributes[name] = .some(bytes)
    }

    /// Removes an attribute.
    public mutating func removeAttribute(_ name: String) {
        attributes[name] = nil
        changes.attributes[name] = .some(nil)
    }

    /// Reads or writes an attribute. A value that cannot be encoded is not stored, and the
    /// commit of this session throws ``CohortError/Code/codecFailure``.
    public subscript<T: Codable>(name: String) -> T? {
        get { try? attribute(name, as: T.self) }
        set {
            guard let newValue else { return removeAttribute(name) }
            do {
                try setAttribute(name, newValue)
            } catch {
                encodingFailure = error as? CohortError ?? CohortError(.codecFailure, "\(error)", cause: error)
            }
        }
    }

    /// Ends the session everywhere on commit.
    public mutating func invalidate() {
        isInvalidated = true
        changes.invalidated = true
    }

    /// Gives the session a new id (against session fixation); the old id stops working on
    /// commit.
    public mutating func changeID(to newID: String) {
        id = newID
        changes.newID = newID == originalID ? nil : newID
    }
}

extension Date {
    init(wallMillis: WallMillis) { self.init(timeIntervalSince1970: Double(wallMillis) / 1000) }
    var wallMillis: WallMillis { WallMillis((timeIntervalSince1970 * 1000).rounded()) }
}
