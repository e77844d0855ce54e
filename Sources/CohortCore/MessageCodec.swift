/// The id of a codec on the wire (one byte in every frame).
import NIOCore

public struct CodecID: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The built-in binary codec.
    public static let binary = CodecID(rawValue: 1)
    /// The built-in JSON codec.
    public static let json = CodecID(rawValue: 2)
    public var description: String { "codec#\(rawValue)" }
}

/// A serialization plugin: turns `Codable` values into bytes and back.
///
/// Implementations must be stateless or thread-safe; one instance encodes for every member.
/// Encode appends to the buffer; decode consumes exactly the value's bytes from the reader index.
public protocol MessageCodec: Sendable {
    /// The id written into every frame this codec encodes.
    var id: CodecID { get }
    /// A short name (`binary`, `json`).
    var name: String { get }
    /// Appends the encoding of `value` to `buffer`.
    func encode<Value: Encodable>(_ value: Value, into buffer: inout ByteBuffer) throws
    /// Decodes one value from `buffer`, moving its reader index past it.
    func decode<Value: Decodable>(_ type: Value.Type, from buffer: inout ByteBuffer) throws -> Value
}

extension MessageCodec {
    /// Encodes a value into a new buffer.
    public func encode<Value: Encodable>(_ value: Value, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 256)
        try encode(value, into: &buffer)
        return buffer
    }
}

/// The codecs a node knows, by wire id.
public struct CodecSet: Sendable {
    private var byID: [UInt8: any MessageCodec] = [:]

    /// Creates a set from codecs; later ones with the same id replace earlier ones.
    public init(_ codecs: [any MessageCodec] = []) {
        for codec in codecs { byID[codec.id.rawValue] = codec }
    }

    /// Adds a codec.
    public mutating func add(_ codec: any MessageCodec) { byID[codec.id.rawValue] = codec }

    /// The codec with a wire id.
    ///
    /// - Throws: ``CohortError/Code/unknownCodec``.
    public func codec(_ id: CodecID) throws -> any MessageCodec {
        guard let codec = byID[id.rawValue] else {
            throw CohortError(
                .unknownCodec,
                "a peer sent a frame written by \(id), which this node does not have (known: \(byID.values.map(\.name).sorted().joined(separator: ", "))); run every member with the same codec or load its plugin"
            )
        }
        return codec
    }

    /// All codecs.
    public var all: [any MessageCodec] { byID.keys.sorted().compactMap { byID[$0] } }
}
