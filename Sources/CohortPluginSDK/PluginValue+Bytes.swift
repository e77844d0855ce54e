import CohortCore
import NIOCore

/// The byte form of a ``PluginValue``, as it crosses the plugin boundary.
///
/// One tag byte, then the body: numbers big-endian at their width, strings and bytes as a UInt32
/// length and the bytes, arrays as a UInt32 count and the items, objects as a UInt32 count and
/// key/value pairs. A reader bounds every count by the bytes left and nests at most
/// ``maxDepth`` containers.
extension PluginValue {
    /// The deepest nesting a tree may have on the boundary.
    public static let maxDepth = 128

    private enum Tag: UInt8 {
        case null = 0, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float, double, string, bytes, data, array, object
    }

    /// Appends the tree's byte form.
    public func write(to buffer: inout ByteBuffer) {
        switch self {
        case .null: buffer.writeInteger(Tag.null.rawValue)
        case .bool(let v): buffer.writeInteger(Tag.bool.rawValue); buffer.writeInteger(UInt8(v ? 1 : 0))
        case .int(let v): buffer.writeInteger(Tag.int.rawValue); buffer.writeInteger(Int64(v))
        case .int8(let v): buffer.writeInteger(Tag.int8.rawValue); buffer.writeInteger(v)
        case .int16(let v): buffer.writeInteger(Tag.int16.rawValue); buffer.writeInteger(v)
        case .int32(let v): buffer.writeInteger(Tag.int32.rawValue); buffer.writeInteger(v)
        case .int64(let v): buffer.writeInteger(Tag.int64.rawValue); buffer.writeInteger(v)
        case .uint(let v): buffer.writeInteger(Tag.uint.rawValue); buffer.writeInteger(UInt64(v))
        case .uint8(let v): buffer.writeInteger(Tag.uint8.rawValue); buffer.writeInteger(v)
        case .uint16(let v): buffer.writeInteger(Tag.uint16.rawValue); buffer.writeInteger(v)
        case .uint32(let v): buffer.writeInteger(Tag.uint32.rawValue); buffer.writeInteger(v)
        case .uint64(let v): buffer.writeInteger(Tag.uint64.rawValue); buffer.writeInteger(v)
        case .float(let v): buffer.writeInteger(Tag.float.rawValue); buffer.writeInteger(v.bitPattern)
        case .double(let v): buffer.writeInteger(Tag.double.rawValue); buffer.writeInteger(v.bitPattern)
        case .string(let v):
            buffer.writeInteger(Tag.string.rawValue)
            buffer.writeLengthPrefixedString(v)
        case .bytes(let v, let isData):
            buffer.writeInteger((isData ? Tag.data : Tag.bytes).rawValue)
            buffer.writeInteger(UInt32(truncatingIfNeeded: v.count))
            buffer.writeBytes(v)
        case .array(let items):
            buffer.writeInteger(Tag.array.rawValue)
            buffer.writeInteger(UInt32(truncatingIfNeeded: items.count))
            for item in items { item.write(to: &buffer) }
        case .object(let entries):
            buffer.writeInteger(Tag.object.rawValue)
            buffer.writeInteger(UInt32(truncatingIfNeeded: entries.count))
            for entry in entries {
                buffer.writeLengthPrefixedString(entry.key)
                entry.value.write(to: &buffer)
            }
        }
    }

    /// Reads one tree from the front of `buffer`.
    ///
    /// - Throws: ``CohortError/Code/codecFailure`` for bytes that are not a tree.
    public static func read(from buffer: inout ByteBuffer) throws -> PluginValue {
        try read(from: &buffer, depth: 0)
    }

    private static func read(from buffer: inout ByteBuffer, depth: Int) throws -> PluginValue {
        guard depth <= maxDepth else { throw malformed("nested deeper than \(maxDepth)") }
        guard let raw = buffer.readInteger(as: UInt8.self) else { throw malformed("ends before a value") }
        guard let tag = Tag(rawValue: raw) else { throw malformed("unknown tag \(raw)") }
        func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
            guard let v = buffer.readInteger(as: T.self) else { throw malformed("ends inside a number") }
            return v
        }
        switch tag {
        case .null: return .null
        case .bool: return .bool(try integer(UInt8.self) != 0)
        case .int:
            let v = try integer(Int64.self)
            guard let small = Int(exactly: v) else { throw malformed("an Int out of range") }
            return .int(small)
        case .int8: return .int8(try integer(Int8.self))
        case .int16: return .int16(try integer(Int16.self))
        case .int32: return .int32(try integer(Int32.self))
        case .int64: return .int64(try integer(Int64.self))
        case .uint:
            let v = try integer(UInt64.self)
            guard let small = UInt(exactly: v) else { throw malformed("a UInt out of range") }
            return .uint(small)
        case .uint8: return .uint8(try integer(UInt8.self))
        case .uint16: return .uint16(try integer(UInt16.self))
        case .uint32: return .uint32(try integer(UInt32.self))
        case .uint64: return .uint64(try integer(UInt64.self))
        case .float: return .float(Float(bitPattern: try integer(UInt32.self)))
        case .double: return .double(Double(bitPattern: try integer(UInt64.self)))
        case .string: return .string(try buffer.readLengthPrefixedStringChecked())
        case .bytes, .data:
            let count = Int(try integer(UInt32.self))
            guard let bytes = buffer.readBytes(length: count) else { throw malformed("bytes longer than the input") }
            return .bytes(bytes, isData: tag == .data)
        case .array:
            let count = Int(try integer(UInt32.self))
            // Every item takes at least one byte: a count beyond the bytes left is a lie.
            guard count <= buffer.readableBytes else { throw malformed("an array of \(count) items in \(buffer.readableBytes) bytes") }
            var items: [PluginValue] = []
            items.reserveCapacity(count)
            for _ in 0..<count { items.append(try read(from: &buffer, depth: depth + 1)) }
            return .array(items)
        case .object:
            let count = Int(try integer(UInt32.self))
            guard count <= buffer.readableBytes / 5 else { throw malformed("an object of \(count) entries in \(buffer.readableBytes) bytes") }
            var entries: [PluginValueEntry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let key = try buffer.readLengthPrefixedStringChecked()
                entries.append(PluginValueEntry(key: key, value: try read(from: &buffer, depth: depth + 1)))
            }
            return .object(entries)
        }
    }

    static func malformed(_ what: String) -> CohortError {
        CohortError(.codecFailure, "a value crossing the plugin boundary is malformed: \(what)")
    }
}

extension ByteBuffer {
    /// Writes a UInt32 byte length, then the string's UTF-8.
    mutating func writeLengthPrefixedString(_ string: String) {
        let lengthIndex = writerIndex
        writeInteger(UInt32(0))
        let written = writeString(string)
        setInteger(UInt32(truncatingIfNeeded: written), at: lengthIndex)
    }

    /// Reads what ``writeLengthPrefixedString(_:)`` wrote.
    mutating func readLengthPrefixedStringChecked() throws -> String {
        guard let length = readInteger(as: UInt32.self) else { throw PluginValue.malformed("ends before a string") }
        guard let string = readString(length: Int(length)) else { throw PluginValue.malformed("a string longer than the input") }
        return string
    }
}
