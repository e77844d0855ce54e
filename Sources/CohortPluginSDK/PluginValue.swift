import Foundation

/// A `Codable` value as a tree: how a message crosses the plugin boundary to a codec loaded from a
/// shared library.
///
/// A host cannot hand a Swift `Encodable` to a codec in another image (the two share no Swift
/// types), so it first turns the value into a `PluginValue` with ``PluginValueEncoder``, sends the
/// tree's bytes, and the plugin encodes the tree with its codec. Decoding runs the other way: the
/// plugin decodes its wire bytes into a tree (``init(from:)``), and the host decodes the message
/// type from the tree with ``PluginValueDecoder``.
///
/// The tree keeps every primitive's exact type, so a self-describing codec writes the same bytes
/// through the tree as it does directly. A codec loaded from a plugin must be self-describing
/// (JSON, the binary codec, CBOR, MessagePack): decoding a tree asks the codec what each value is.
public enum PluginValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case int8(Int8)
    case int16(Int16)
    case int32(Int32)
    case int64(Int64)
    case uint(UInt)
    case uint8(UInt8)
    case uint16(UInt16)
    case uint32(UInt32)
    case uint64(UInt64)
    case float(Float)
    case double(Double)
    case string(String)
    /// Bytes that the value held as `[UInt8]` (`isData == false`) or as Foundation's `Data`.
    case bytes([UInt8], isData: Bool)
    case array([PluginValue])
    /// Keys in the order they were written.
    case object([PluginValueEntry])
}

/// One key and value of a ``PluginValue/object(_:)``.
public struct PluginValueEntry: Sendable, Hashable {
    public var key: String
    public var value: PluginValue

    public init(key: String, value: PluginValue) {
        self.key = key
        self.value = value
    }
}

extension PluginValue {
    /// The value as a signed 64-bit number, when it is a number that fits.
    var asInt64: Int64? {
        switch self {
        case .int(let v): return Int64(v)
        case .int8(let v): return Int64(v)
        case .int16(let v): return Int64(v)
        case .int32(let v): return Int64(v)
        case .int64(let v): return v
        case .uint(let v): return Int64(exactly: v)
        case .uint8(let v): return Int64(v)
        case .uint16(let v): return Int64(v)
        case .uint32(let v): return Int64(v)
        case .uint64(let v): return Int64(exactly: v)
        case .float(let v): return Int64(exactly: v)
        case .double(let v): return Int64(exactly: v)
        default: return nil
        }
    }

    /// The value as an unsigned 64-bit number, when it is a number that fits.
    var asUInt64: UInt64? {
        switch self {
        case .uint(let v): return UInt64(v)
        case .uint8(let v): return UInt64(v)
        case .uint16(let v): return UInt64(v)
        case .uint32(let v): return UInt64(v)
        case .uint64(let v): return v
        case .float(let v): return UInt64(exactly: v)
        case .double(let v): return UInt64(exactly: v)
        default: return asInt64.flatMap { UInt64(exactly: $0) }
        }
    }

    /// The value as a `Double`, when it is a number.
    var asDouble: Double? {
        switch self {
        case .float(let v): return Double(v)
        case .double(let v): return v
        case .uint(let v): return Double(v)
        case .uint64(let v): return Double(v)
        default: return asInt64.map(Double.init)
        }
    }

    /// What the value is, for error messages.
    var kindName: String {
        switch self {
        case .null: return "nil"
        case .bool: return "a Bool"
        case .int, .int8, .int16, .int32, .int64, .uint, .uint8, .uint16, .uint32, .uint64: return "an integer"
        case .float, .double: return "a floating-point number"
        case .string: return "a string"
        case .bytes: return "bytes"
        case .array: return "an array"
        case .object: return "a keyed container"
        }
    }
}

// MARK: - Codable: how a plugin's codec writes and reads a tree

struct PluginValueKey: CodingKey {
    var stringValue: String
    var intValue: Int?

    init(stringValue: String) {
        self.stringValue = stringValue
        self.intValue = Int(stringValue)
    }

    init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

extension PluginValue: Codable {
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .array(let items):
            var container = encoder.unkeyedContainer()
            for item in items { try container.encode(item) }
        case .object(let entries):
            var container = encoder.container(keyedBy: PluginValueKey.self)
            for entry in entries { try container.encode(entry.value, forKey: PluginValueKey(stringValue: entry.key)) }
        case .bytes(let bytes, let isData):
            var container = encoder.singleValueContainer()
            if isData {
                try container.encode(Data(bytes))
            } else {
                try container.encode(bytes)
            }
        default:
            var container = encoder.singleValueContainer()
            switch self {
            case .null: try container.encodeNil()
            case .bool(let v): try container.encode(v)
            case .int(let v): try container.encode(v)
            case .int8(let v): try container.encode(v)
            case .int16(let v): try container.encode(v)
            case .int32(let v): try container.encode(v)
            case .int64(let v): try container.encode(v)
            case .uint(let v): try container.encode(v)
            case .uint8(let v): try container.encode(v)
            case .uint16(let v): try container.encode(v)
            case .uint32(let v): try container.encode(v)
            case .uint64(let v): try container.encode(v)
            case .float(let v): try container.encode(v)
            case .double(let v): try container.encode(v)
            case .string(let v): try container.encode(v)
            case .array, .object, .bytes: break
            }
        }
    }

    /// Reads whatever the codec holds at this point: a keyed container, an array, or a scalar,
    /// asking the decoder in that order (a self-describing codec answers for exactly one).
    public init(from decoder: any Decoder) throws {
        if let keyed = try? decoder.container(keyedBy: PluginValueKey.self) {
            var entries: [PluginValueEntry] = []
            for key in keyed.allKeys {
                entries.append(PluginValueEntry(key: key.stringValue, value: try keyed.decode(PluginValue.self, forKey: key)))
            }
            self = .object(entries)
            return
        }
        if var unkeyed = try? decoder.unkeyedContainer() {
            var items: [PluginValue] = []
            while !unkeyed.isAtEnd {
                items.append(try unkeyed.decode(PluginValue.self))
            }
            self = .array(items)
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() {
            self = .null
        } else if let v = try? single.decode(Bool.self) {
            self = .bool(v)
        } else if let v = try? single.decode(Int64.self) {
            self = .int64(v)
        } else if let v = try? single.decode(UInt64.self) {
            self = .uint64(v)
        } else if let v = try? single.decode(Double.self) {
            self = .double(v)
        } else if let v = try? single.decode(String.self) {
            self = .string(v)
        } else if let v = try? single.decode([UInt8].self) {
            self = .bytes(v, isData: false)
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "a value that is neither a container nor a scalar the codec can describe"))
        }
    }
}
