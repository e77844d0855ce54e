import CohortCore
import Foundation
import NIOCore

/// A type made of a run of raw bytes held in a `ByteBuffer` (a blob, an already serialized
/// payload) that ``BinaryCodec`` should write as one `bytes` value.
///
/// The binary codec then copies the buffer's readable bytes straight into the output, and on
/// decoding hands ``init(byteBuffer:)`` a slice that shares the input's storage — instead of the
/// element-by-element or Base64 path of the type's `Codable` conformance, which other codecs
/// (and the binary codec, for input that was not written as `bytes`) still use.
///
/// ```swift
/// struct Blob: ByteBufferWrapping, Codable {
///     var byteBuffer: ByteBuffer
///     init(byteBuffer: ByteBuffer) { self.byteBuffer = byteBuffer }
/// }
/// ```
public protocol ByteBufferWrapping: Codable {
    /// The bytes to write: the buffer's readable region.
    var byteBuffer: ByteBuffer { get }
    /// Creates a value from bytes read by the codec (which may share storage with its input).
    init(byteBuffer: ByteBuffer) throws
}

/// A type the binary writer writes itself, without going through an `Encoder`.
protocol BinaryDirectEncodable {
    func writeBinary(to writer: BinaryWriter)
}

/// A type the binary reader reads itself, without going through a `Decoder`.
protocol BinaryDirectDecodable {
    /// The value at `index`, or nil to fall back to `init(from:)` (a bytes type finding
    /// something other than `bytes`).
    static func readBinary(from reader: BinaryReader, at index: Int, _ path: BinaryPath) throws -> Self?
}

extension BinaryWriter {
    /// Writes a value the writer knows directly (primitives and bytes); false for other types.
    @inline(__always)
    func writeDirect<Value: Encodable>(_ value: Value) -> Bool {
        if let direct = value as? any BinaryDirectEncodable {
            direct.writeBinary(to: self)
            return true
        }
        if let wrapping = value as? any ByteBufferWrapping {
            writeBytes(wrapping.byteBuffer)
            return true
        }
        return false
    }
}

extension BinaryReader {
    /// Decodes any value at `index`, enclosed by `depth` containers.
    func decode<Value: Decodable>(_ type: Value.Type, at index: Int, depth: Int, _ path: BinaryPath) throws -> Value {
        if let direct = Value.self as? any BinaryDirectDecodable.Type {
            if let value = try direct.readBinary(from: self, at: index, path), let typed = value as? Value {
                return typed
            }
        } else if let wrapping = Value.self as? any ByteBufferWrapping.Type, let bytes = try readBytes(at: index) {
            if let typed = try wrapping.init(byteBuffer: bytes) as? Value { return typed }
        }
        return try Value(from: BinaryValueDecoder(reader: self, index: index, depth: depth, path: path))
    }
}

/// Signed integers: the `signed` tag.
protocol BinarySignedDirect: BinaryDirectEncodable, BinaryDirectDecodable, FixedWidthInteger, SignedInteger {}

extension BinarySignedDirect {
    func writeBinary(to writer: BinaryWriter) { writer.writeSigned(Int64(self)) }
    static func readBinary(from reader: BinaryReader, at index: Int, _ path: BinaryPath) throws -> Self? {
        try reader.readInteger(Self.self, at: index, path)
    }
}

/// Unsigned integers: the `unsigned` tag.
protocol BinaryUnsignedDirect: BinaryDirectEncodable, BinaryDirectDecodable, FixedWidthInteger, UnsignedInteger {}

extension BinaryUnsignedDirect {
    func writeBinary(to writer: BinaryWriter) { writer.writeUnsigned(UInt64(self)) }
    static func readBinary(from reader: BinaryReader, at index: Int, _ path: BinaryPath) throws -> Self? {
        try reader.readInteger(Self.self, at: index, path)
    }
}

extension Int: BinarySignedDirect {}
extension Int8: BinarySignedDirect {}
extension Int16: BinarySignedDirect {}
extension Int32: BinarySignedDirect {}
extension Int64: BinarySignedDirect {}
extension UInt: BinaryUnsignedDirect {}
extension UInt8: BinaryUnsignedDirect {}
extension UInt16: BinaryUnsignedDirect {}
extension UInt32: BinaryUnsignedDirect {}
extension UInt64: BinaryUnsignedDirect {}

extension Bool: BinaryDirectEncodable, BinaryDirectDecodable {
    func writeBinary(to writer: BinaryWriter) { writer.writeBool(self) }
    static func readBinary(from reader: BinaryReader, at index: Int, _ path: BinaryPath) throws -> Bool? {
        try reader.readBool(at: index, path)
    }
}

extension String: BinaryDirectEncodable, BinaryDirectDecodable {
    func writeBinary(to writer: BinaryWriter) { writer.writeString(self) }
    static func readBinary(from reader: BinaryReader, at index: Int, _ path: BinaryPath) throws -> String? {
        try reader.readString(at: index, path)
    }
}

extension Double: BinaryDirectEncodable, BinaryDirectDecodable {
    func writeBinary(to writer: BinaryWriter) { writer.writeDouble(self) }
    static func readBinary(from reader: BinaryReader, at index: Int, _ path: BinaryPath) throws -> Double? {
        try reader.readDouble(at: index, path)
    }
}

extension Float: BinaryDirectEncodable, BinaryDirectDecodable {
    func writeBinary(to writer: BinaryWriter) { writer.writeFloat(self) }
    static func readBinary(from reader: BinaryReader, at index: Int, _ path: BinaryPath) throws -> Float? {
        try reader.readFloat(at: index, path)
    }
}

extension Data: BinaryDirectEncodable, BinaryDirectDecodable {
    func writeBinary(to writer: BinaryWriter) { writer.writeBytes(self) }
    static func readBinary(from reader: BinaryReader, at index: Int, _ path: BinaryPath) throws -> Data? {
        try reader.readBytes(at: index).map { Data($0.readableBytesView) }
    }
}

extension Array: BinaryDirectEncodable, BinaryDirectDecodable where Element == UInt8 {
    func writeBinary(to writer: BinaryWriter) { writer.writeBytes(self) }
    static func readBinary(from reader: BinaryReader, at index: Int, _ path: BinaryPath) throws -> [UInt8]? {
        try reader.readBytes(at: index).map { Array($0.readableBytesView) }
    }
}

extension ByteBuffer: BinaryDirectEncodable, BinaryDirectDecodable {
    func writeBinary(to writer: BinaryWriter) { writer.writeBytes(self) }
    static func readBinary(from reader: BinaryReader, at index: Int, _ path: BinaryPath) throws -> ByteBuffer? {
        try reader.readBytes(at: index)
    }
}
