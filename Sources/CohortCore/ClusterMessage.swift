/// A stable numeric id that names a message type on the wire.
///
/// Ids below 1024 are reserved for Cohort itself; applications and plugins use 1024 and up.
/// Nothing is ever decoded by type name: a receiver decodes only ids it has registered.
import NIOCore

public struct MessageType: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    /// The first id free for applications.
    public static let firstApplicationID: UInt32 = 1024
    public var description: String { "#\(rawValue)" }
}

/// A typed message that can travel between members.
///
/// Conform a `Codable` struct and give it a unique ``messageType``:
/// ```swift
/// struct Greeting: ClusterMessage {
///     static let messageType = MessageType(2001)
///     var text: String
/// }
/// ```
public protocol ClusterMessage: Codable, Sendable {
    /// The stable id of this type on the wire.
    static var messageType: MessageType { get }
}

/// A line of text; used by `cohort node` and in examples.
public struct TextMessage: ClusterMessage, Equatable {
    public static let messageType = MessageType(1)
    /// The text.
    public var text: String
    public init(_ text: String) { self.text = text }
}

/// The allow-list of message types a node can decode.
///
/// Registering the same id twice with different types is an error, so two libraries cannot
/// silently fight over an id.
public struct MessageRegistry: Sendable {
    private var entries: [UInt32: any ClusterMessage.Type] = [:]

    /// A registry holding Cohort's own message types.
    public init() {
        entries[TextMessage.messageType.rawValue] = TextMessage.self
    }

    /// Registers a type.
    ///
    /// - Throws: ``CohortError/Code/duplicate`` when another type already holds the id.
    public mutating func register<M: ClusterMessage>(_ type: M.Type) throws {
        let id = M.messageType.rawValue
        if let existing = entries[id] {
            if existing == type { return }
            throw CohortError(
                .duplicate,
                "message type id \(id) is already registered for \(existing); give \(M.self) another id (1024 and up are free for applications)"
            )
        }
        entries[id] = type
    }

    /// The type registered for an id.
    public func type(for id: MessageType) -> (any ClusterMessage.Type)? { entries[id.rawValue] }

    /// All registered ids, ascending.
    public var registeredTypes: [MessageType] { entries.keys.sorted().map(MessageType.init(rawValue:)) }

    /// Decodes a payload of the given type id with a codec.
    ///
    /// - Throws: ``CohortError/Code/unknownMessageType`` for an id not in the allow-list, or the
    ///   codec's error.
    public func decode(_ id: MessageType, codec: any MessageCodec, from buffer: inout ByteBuffer) throws -> any ClusterMessage {
        guard let type = entries[id.rawValue] else {
            throw CohortError(
                .unknownMessageType,
                "message type \(id) is not registered on this node; register it with channel.register(_:) on every member"
            )
        }
        return try codec.decode(type, from: &buffer)
    }
}
