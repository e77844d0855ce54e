import CohortCore
import NIOCore

/// Cohort's default codec: a compact, self-describing binary format for any `Codable` value.
///
/// Every value starts with a tag byte (see ``BinaryTag`` for the table), so a reader can skip
/// what it does not know: maps are decoded by key in any order, and keys a type does not ask for
/// are ignored, which lets members of different versions talk. Integers are varints (zigzag for
/// signed types), strings and bytes are length-prefixed, arrays and maps count-prefixed.
/// `[UInt8]`, `Data`, `ByteBuffer` and ``ByteBufferWrapping`` types are written as raw bytes.
///
/// Encoding is a single pass straight into the caller's buffer: container counts are reserved
/// and patched when the container is done, and nothing is built in between. Decoding reads the
/// caller's buffer in place; a decoded `ByteBuffer` is a slice sharing its storage.
///
/// Input is never trusted: lengths and counts larger than the bytes left, containers nested more
/// than 64 deep, unknown tags and invalid UTF-8 are refused with ``CohortCore/CohortError``
/// (code `codecFailure`) saying what was wrong and where.
public struct BinaryCodec: MessageCodec {
    /// The wire id, ``CohortCore/CodecID/binary``.
    public var id: CodecID { .binary }
    /// `"binary"`.
    public var name: String { "binary" }

    /// Creates the codec.
    public init() {}

    /// Appends the encoding of `value` to `buffer`; on failure the buffer is left as it was.
    ///
    /// - Throws: ``CohortCore/CohortError`` with code `codecFailure` (the value's own error, or
    ///   an `EncodingError`, as cause).
    public func encode<Value: Encodable>(_ value: Value, into buffer: inout ByteBuffer) throws {
        let writer = BinaryWriter()
        let start = buffer.writerIndex
        // The writer takes the caller's storage over (no copy) and hands it back afterwards.
        swap(&writer.buffer, &buffer)
        defer { swap(&writer.buffer, &buffer) }
        do {
            try writer.encode(value, level: 0, path: .root)
            try writer.finish()
        } catch {
            writer.buffer.moveWriterIndex(to: start)
            throw BinaryErrorText.failure("cannot encode \(Value.self)", error)
        }
    }

    /// Decodes one value starting at the reader index and moves the reader index past it; bytes
    /// after the value stay unread. On failure the reader index does not move.
    ///
    /// - Throws: ``CohortCore/CohortError`` with code `codecFailure`: for malformed input, or
    ///   with the `DecodingError` (missing key, type mismatch, …) as cause.
    public func decode<Value: Decodable>(_ type: Value.Type, from buffer: inout ByteBuffer) throws -> Value {
        let reader = BinaryReader(buffer: buffer)
        do {
            // Check the whole value first: bounds, depth, tags. Decoding then only meets type errors.
            let end = try reader.skip(at: reader.start, depth: 0)
            let value = try reader.decode(Value.self, at: reader.start, depth: 0, .root)
            buffer.moveReaderIndex(to: end)
            return value
        } catch {
            throw BinaryErrorText.failure("cannot decode \(Value.self)", error)
        }
    }
}

/// Turns coding errors into Cohort's error type with one readable line.
enum BinaryErrorText {
    /// A `codecFailure` error: `what`, then what went wrong and where.
    static func failure(_ what: String, _ error: any Error) -> CohortError {
        if let error = error as? CohortError, error.code == .codecFailure {
            // Already ours (malformed input): keep its text and cause.
            return CohortError(.codecFailure, "binary codec: \(what): \(error.message)", cause: error.cause)
        }
        return CohortError(.codecFailure, "binary codec: \(what): \(describe(error))", cause: error)
    }

    /// A description of `error` that names what went wrong and where.
    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing key '\(key.stringValue)' at \(BinaryFormat.describe(context.codingPath)): \(context.debugDescription)"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
            DecodingError.dataCorrupted(let context):
            return "\(context.debugDescription) at \(BinaryFormat.describe(context.codingPath))"
        case EncodingError.invalidValue(_, let context):
            return "\(context.debugDescription) at \(BinaryFormat.describe(context.codingPath))"
        default:
            return "\(error)"
        }
    }
}
