import CohortCore

/// The tag byte that starts every value in the binary format.
///
/// The format is self-describing: a value is one tag byte followed by a body whose size the tag
/// and the body's own length fields tell, so a reader can skip any value it does not want.
///
/// | tag    | name     | body                                                                  |
/// |--------|----------|-----------------------------------------------------------------------|
/// | `0x00` | nil      | none                                                                  |
/// | `0x01` | false    | none                                                                  |
/// | `0x02` | true     | none                                                                  |
/// | `0x03` | signed   | zigzag-encoded LEB128 varint (1–10 bytes): 0→0, -1→1, 1→2, -2→3, …    |
/// | `0x04` | unsigned | LEB128 varint (1–10 bytes), 7 bits a byte, least significant first    |
/// | `0x05` | float32  | IEEE-754 bit pattern, 4 bytes big-endian                              |
/// | `0x06` | float64  | IEEE-754 bit pattern, 8 bytes big-endian                              |
/// | `0x07` | string   | byte length (unsigned varint), then that many bytes of UTF-8          |
/// | `0x08` | bytes    | byte length (unsigned varint), then the raw bytes                     |
/// | `0x09` | array    | element count (UInt32 big-endian), then the elements                  |
/// | `0x0A` | map      | entry count (UInt32 big-endian), then key, value, key, value, …       |
/// | `0x0B` | array8   | element count (UInt8), then the elements                              |
/// | `0x0C` | map8     | entry count (UInt8), then key, value, key, value, …                   |
///
/// **Keys** carry no tag of their own: a key is one unsigned varint `h`, then for a string key
/// `h >> 1` bytes of UTF-8 (`h` even), while an integer key is the zigzag number `h >> 1` (`h`
/// odd). A key is written as an integer when its `CodingKey.intValue` is set and its
/// `stringValue` is that number's decimal text (the keys of `[Int: T]`, or `"42"` in a
/// `[String: T]`), and its zigzag form fits in 63 bits; otherwise as a string, so that `"007"`
/// stays `"007"`.
///
/// **Numbers**: all Swift integer types use `signed` or `unsigned` by their signedness. A
/// `Double` or `Float` holding a whole number of magnitude below 2^53 (and not -0) is written as
/// `signed`, one that a `Float` holds exactly as `float32`, anything else as `float64`; the value
/// always comes back bit for bit. A reader accepts any number tag for any number type: an integer
/// type when the value is whole and in range, a floating-point type rounding to nearest (a
/// `Float` refuses a value beyond its range).
///
/// **Bytes**: `[UInt8]`, `Data`, `ByteBuffer` and ``ByteBufferWrapping`` types are `bytes`.
///
/// **Containers** are opened as `array8`/`map8` with a one-byte count slot that is patched when
/// the container is done, so encoding is a single pass into the output. The rare container that
/// grows past 255 elements is widened once to `array`/`map` (its body moves up three bytes).
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
    case array8 = 0x0B
    case map8 = 0x0C

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
        case .array, .array8: return "an array"
        case .map, .map8: return "a keyed container"
        }
    }
}

/// Constants and small helpers of the binary format.
enum BinaryFormat {
    /// The deepest nesting of arrays and maps a value may have, when writing and when reading.
    static let maxDepth = 64
    /// The longest LEB128 varint of a 64-bit number.
    static let maxVarintBytes = 10
    /// The largest count of an `array8` or `map8`.
    static let smallCountLimit = UInt32(UInt8.max)

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

    /// The number a key is written as, or nil for a string key (see ``BinaryTag``).
    @inline(__always)
    static func integerKey(_ key: some CodingKey) -> Int? {
        guard let value = key.intValue, zigzag(Int64(value)) >> 63 == 0, key.stringValue == String(value) else { return nil }
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

/// A coding path built only when it is asked for (errors, `codingPath`): the enclosing
/// container's path and the key within it, so that reading or writing a field allocates nothing.
struct BinaryPath {
    /// The path of the enclosing container.
    let base: [any CodingKey]
    /// The key of the value within it; nil for the container itself.
    let key: (any CodingKey)?

    /// The root.
    static let root = BinaryPath(base: [], key: nil)

    /// The full path.
    var codingPath: [any CodingKey] {
        guard let key else { return base }
        return base + [key]
    }
}

/// A coding key for positions in an array and for `super`; the text is made only when asked.
struct BinaryIndexKey: CodingKey {
    private let name: String?
    private let index: Int

    init(index: Int) {
        name = nil
        self.index = index
    }

    init(name: String) {
        self.name = name
        index = 0
    }

    init?(stringValue: String) {
        self.init(name: stringValue)
    }

    init?(intValue: Int) {
        self.init(index: intValue)
    }

    var stringValue: String { name ?? "Index \(index)" }
    var intValue: Int? { name == nil ? index : nil }

    /// The key `superEncoder()` and `superDecoder()` use.
    static let `super` = BinaryIndexKey(name: "super")
}
