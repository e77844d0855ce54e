import CohortCore

/// The tag byte that starts every value in the binary format.
///
/// The format is self-describing: a value is one tag byte followed by a body whose size the tag
/// and the body's own length fields tell, so a reader can skip any value it does not want.
///
/// | tag    | name     | body                                                                 |
/// |--------|----------|----------------------------------------------------------------------|
/// | `0x00` | nil      | none                                                                 |
/// | `0x01` | false    | none                                                                 |
/// | `0x02` | true     | none                                                                 |
/// | `0x03` | signed   | zigzag-encoded LEB128 varint (1–10 bytes): 0→0, -1→1, 1→2, -2→3, …   |
/// | `0x04` | unsigned | LEB128 varint (1–10 bytes), 7 bits a byte, least significant first   |
/// | `0x05` | float32  | IEEE-754 bit pattern, 4 bytes big-endian                             |
/// | `0x06` | float64  | IEEE-754 bit pattern, 8 bytes big-endian                             |
/// | `0x07` | string   | byte length (unsigned varint), then that many bytes of UTF-8         |
/// | `0x08` | bytes    | byte length (unsigned varint), then the raw bytes                    |
/// | `0x09` | array    | element count (UInt32 big-endian), then the elements                 |
/// | `0x0A` | map      | pair count (UInt32 big-endian), then key, value, key, value, …       |
///
/// A map key is itself a tagged `string` or `signed` value. A key is written as `signed` when
/// its `CodingKey.intValue` is set and its `stringValue` is that number's decimal text (the keys
/// of `[Int: T]`, or `"42"` in a `[String: T]`); otherwise as `string`, so `"007"` stays `"007"`.
///
/// All Swift integer types use `signed` or `unsigned` by their signedness; a reader accepts
/// either tag for any integer type when the number fits. `[UInt8]`, `Data` and `ByteBuffer`
/// are written as `bytes`. Array and map counts are fixed-width so the encoder can reserve the
/// slot and patch it when the container is done: encoding is a single pass into the buffer.
///
/// There is no header: the frame around a payload already names the codec. A value nests at
/// most ``BinaryFormat/maxDepth`` containers deep.
enum BinaryTag: UInt8, CustomStringConvertible {
    case null = 0x00
    case falseValue = 0x01
    case trueValue = 0x02
    case signed = 0x03
    case unsigned = 0x04
    case float32 = 0x05
    case float64 = 0x06
    case string = 0x07
    case bytes = 0x08
    case array = 0x09
    case map = 0x0A

    /// A name for error messages.
    var description: String {
        switch self {
        case .null: return "nil"
        case .falseValue, .trueValue: return "a Bool"
        case .signed: return "a signed integer"
        case .unsigned: return "an unsigned integer"
        case .float32: return "a Float"
        case .float64: return "a Double"
        case .string: return "a string"
        case .bytes: return "bytes"
        case .array: return "an array"
        case .map: return "a keyed container"
        }
    }
}

/// Constants and small helpers of the binary format.
enum BinaryFormat {
    /// The deepest nesting of arrays and maps a value may have, when writing and when reading.
    static let maxDepth = 64
    /// The longest LEB128 varint of a 64-bit number.
    static let maxVarintBytes = 10
    /// Size of an array or map count.
    static let countSize = 4

    /// Maps a signed number onto an unsigned one so that small magnitudes stay small.
    @inline(__always)
    static func zigzag(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value &<< 1) ^ (value >> 63))
    }

    /// The inverse of ``zigzag(_:)``.
    @inline(__always)
    static func unzigzag(_ value: UInt64) -> Int64 {
        Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
    }

    /// Whether a key is written as an integer (see the table on ``BinaryTag``).
    @inline(__always)
    static func integerKey(_ key: some CodingKey) -> Int? {
        guard let value = key.intValue, key.stringValue == String(value) else { return nil }
        return value
    }

    /// A coding path as `root.field[2].other`, for error messages.
    static func describe(_ codingPath: [any CodingKey]) -> String {
        var text = "root"
        for key in codingPath {
            if let index = key.intValue, key.stringValue.hasPrefix("Index ") {
                text += "[\(index)]"
            } else {
                text += ".\(key.stringValue)"
            }
        }
        return text
    }
}

/// A coding key for positions in an array and for `super`.
struct BinaryIndexKey: CodingKey {
    let stringValue: String
    let intValue: Int?

    init(index: Int) {
        stringValue = "Index \(index)"
        intValue = index
    }

    init(name: String) {
        stringValue = name
        intValue = nil
    }

    init?(stringValue: String) {
        self.init(name: stringValue)
    }

    init?(intValue: Int) {
        self.init(index: intValue)
    }

    /// The key `superEncoder()` and `superDecoder()` use.
    static let `super` = BinaryIndexKey(name: "super")
}
