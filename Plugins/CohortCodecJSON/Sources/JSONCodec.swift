import CohortCore
import Foundation
import NIOCore

/// A codec that writes messages as JSON with Foundation's `JSONEncoder` and `JSONDecoder`.
///
/// Readable on the wire and easy to debug, but larger and slower than ``CohortCore/CodecID/binary``.
/// Output uses sorted keys and unescaped slashes; dates are written the Foundation default way
/// (seconds since 2001 as a number) so that they round-trip exactly; `Data` is Base64; infinite
/// and NaN floating-point values are written as the strings `"+Infinity"`, `"-Infinity"` and
/// `"NaN"`.
///
/// JSON is not self-delimiting, so ``decode(_:from:)`` reads the whole readable region of the
/// buffer: the payload handed to a codec is always the slice of exactly one message.
public struct JSONCodec: MessageCodec {
    /// The wire id, ``CohortCore/CodecID/json``.
    public var id: CodecID { .json }
    /// `"json"`.
    public var name: String { "json" }

    /// Creates the codec.
    public init() {}

    /// Appends the JSON text of `value` to `buffer`; on failure the buffer is left unchanged.
    ///
    /// - Throws: ``CohortCore/CohortError`` with code `codecFailure`, the `EncodingError` as cause.
    public func encode<Value: Encodable>(_ value: Value, into buffer: inout ByteBuffer) throws {
        let data: Data
        do {
            data = try Self.makeEncoder().encode(value)
        } catch {
            throw CohortError(
                .codecFailure,
                "json codec: cannot encode \(Value.self): \(JSONErrorText.describe(error))",
                cause: error
            )
        }
        buffer.writeBytes(data)
    }

    /// Decodes one value from all readable bytes of `buffer` and consumes them; on failure the
    /// reader index does not move.
    ///
    /// - Throws: ``CohortCore/CohortError`` with code `codecFailure`, naming the type and the
    ///   coding path, with the `DecodingError` as cause.
    public func decode<Value: Decodable>(_ type: Value.Type, from buffer: inout ByteBuffer) throws -> Value {
        let data = buffer.withUnsafeReadableBytes { Data($0) }
        let value: Value
        do {
            value = try Self.makeDecoder().decode(Value.self, from: data)
        } catch {
            throw CohortError(
                .codecFailure,
                "json codec: cannot decode \(Value.self) from \(data.count) bytes: \(JSONErrorText.describe(error))",
                cause: error
            )
        }
        buffer.moveReaderIndex(forwardBy: data.count)
        return value
    }

    private static let nonConformingFloats = (positive: "+Infinity", negative: "-Infinity", nan: "NaN")

    private static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: nonConformingFloats.positive,
            negativeInfinity: nonConformingFloats.negative,
            nan: nonConformingFloats.nan
        )
        return encoder
    }

    private static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: nonConformingFloats.positive,
            negativeInfinity: nonConformingFloats.negative,
            nan: nonConformingFloats.nan
        )
        return decoder
    }
}

/// Turns Foundation's coding errors into one readable line.
enum JSONErrorText {
    /// A description of `error` that names what went wrong and where.
    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing key '\(key.stringValue)' at \(path(context.codingPath))"
        case DecodingError.typeMismatch(let type, let context):
            return "expected \(type) at \(path(context.codingPath)): \(context.debugDescription)"
        case DecodingError.valueNotFound(let type, let context):
            return "expected \(type) but found null at \(path(context.codingPath))"
        case DecodingError.dataCorrupted(let context):
            return "\(context.debugDescription) at \(path(context.codingPath))\(underlying(context.underlyingError))"
        case EncodingError.invalidValue(let value, let context):
            return "invalid value \(value) at \(path(context.codingPath)): \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }

    /// A coding path as `root.field[2].other`.
    static func path(_ codingPath: [any CodingKey]) -> String {
        var text = "root"
        for key in codingPath {
            if let index = key.intValue, key.stringValue.hasPrefix("Index ") || key.stringValue == String(index) {
                text += "[\(index)]"
            } else {
                text += ".\(key.stringValue)"
            }
        }
        return text
    }

    private static func underlying(_ error: (any Error)?) -> String {
        guard let error else { return "" }
        return " (\(error))"
    }
}

/// The factory that registers ``JSONCodec`` as the plugin `codec.json`.
public struct JSONCodecPlugin: PluginFactory {
    /// Creates the factory.
    public init() {}
    /// `"codec.json"`.
    public var id: String { "codec.json" }
    /// ``CohortCore/PluginKind/codec``.
    public var kind: PluginKind { .codec }
    /// The plugin's version.
    public var version: String { "1.0.0" }
    /// A one-line description for `cohort plugins`.
    public var summary: String { "JSON via Foundation (sorted keys); readable, larger than binary" }
    /// Makes a ``JSONCodec``; it takes no settings.
    public func makeCodec(settings: PluginSettings) throws -> any MessageCodec { JSONCodec() }
}
