import CohortCore
import NIOCore

/// A map key as read from the input.
enum BinaryKey: Hashable {
    case string(String)
    case int(Int)
}

/// A map key located in the input: an integer, or where a string key's UTF-8 is.
enum BinaryRawKey {
    case int(Int)
    case string(start: Int, length: Int)
}

/// Bounds-checked reads of the binary format at absolute indexes of the input buffer.
///
/// Nothing is copied: the reader keeps the caller's buffer (sharing its storage) and every
/// read checks the index against the readable region first. Anything that does not fit the
/// format raises ``CohortCore/CohortError`` with code `codecFailure`; a value of the wrong type
/// for what is asked raises a `DecodingError`.
final class BinaryReader {
    let buffer: ByteBuffer
    /// The first readable index (where the root value starts).
    let start: Int
    /// One past the last readable index.
    let end: Int

    init(buffer: ByteBuffer) {
        self.buffer = buffer
        start = buffer.readerIndex
        end = buffer.writerIndex
    }

    // MARK: Errors

    /// A malformed-input error naming the offset from the start of the value.
    func malformed(_ what: String, at index: Int) -> CohortError {
        CohortError(.codecFailure, "binary codec: malformed input at byte \(index - start) of \(end - start): \(what)")
    }

    /// The error for a value of another type than the one asked for.
    func mismatch(_ type: Any.Type, found tag: BinaryTag, _ path: BinaryPath) -> DecodingError {
        let context = DecodingError.Context(codingPath: path.codingPath, debugDescription: "expected \(type) but found \(tag)")
        return tag == .null ? .valueNotFound(type, context) : .typeMismatch(type, context)
    }

    // MARK: Structure

    /// Checks that `size` bytes are readable at `index`; returns the index after them.
    @inline(__always)
    func need(_ size: Int, at index: Int) throws -> Int {
        guard index >= start, size >= 0, size <= end - index else {
            throw malformed("the input ends early (\(size) more bytes needed)", at: index)
        }
        return index + size
    }

    @inline(__always)
    func byte(at index: Int) throws -> UInt8 {
        guard index >= start, index < end, let value = buffer.getInteger(at: index, as: UInt8.self) else {
            throw malformed("the input ends early", at: index)
        }
        return value
    }

    @inline(__always)
    func tag(at index: Int) throws -> BinaryTag {
        let value = try byte(at: index)
        guard let tag = BinaryTag(rawValue: value) else {
            throw malformed("unknown tag 0x\(String(value, radix: 16))", at: index)
        }
        return tag
    }

    /// An LEB128 varint of at most ten bytes whose value fits in 64 bits.
    func varint(at index: Int) throws -> (value: UInt64, next: Int) {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var position = index
        while true {
            let value = try byte(at: position)
            position += 1
            if shift == 63, value > 1 {
                throw malformed("a varint does not fit in 64 bits", at: index)
            }
            result |= UInt64(value & 0x7F) << shift
            if value & 0x80 == 0 { return (result, position) }
            shift += 7
        }
    }

    /// A byte length, refused when it is longer than what is left.
    func length(at index: Int) throws -> (length: Int, next: Int) {
        let (value, next) = try varint(at: index)
        guard value <= UInt64(end - next) else {
            throw malformed("a length of \(value) bytes is more than the \(end - next) bytes left", at: index)
        }
        return (Int(value), next)
    }

    /// The header of the array or map at `index` (past its tag, which the caller has read):
    /// its count, refused when the bytes left cannot hold that many entries, and where the first
    /// entry starts.
    func count(of tag: BinaryTag, at index: Int) throws -> (count: Int, next: Int) {
        let value: UInt32?
        let next: Int
        switch tag {
        case .array8, .map8:
            next = try need(1, at: index + 1)
            value = buffer.getInteger(at: index + 1, as: UInt8.self).map(UInt32.init)
        default:
            next = try need(4, at: index + 1)
            value = buffer.getInteger(at: index + 1, as: UInt32.self)
        }
        guard let value else { throw malformed("the input ends early", at: index + 1) }
        let bytesPerEntry: UInt64 = tag == .map || tag == .map8 ? 2 : 1
        guard UInt64(value) * bytesPerEntry <= UInt64(end - next) else {
            throw malformed("a count of \(value) entries is more than the \(end - next) bytes left can hold", at: index + 1)
        }
        return (Int(value), next)
    }

    /// Checks the value at `index` and returns the index after it.
    ///
    /// - Parameter depth: how many containers enclose the value.
    func skip(at index: Int, depth: Int) throws -> Int {
        let tag = try tag(at: index)
        let body = index + 1
        switch tag {
        case .null, .falseValue, .trueValue:
            return body
        case .signed, .unsigned:
            return try varint(at: body).next
        case .float32:
            return try need(4, at: body)
        case .float64:
            return try need(8, at: body)
        case .string, .bytes:
            let (length, next) = try length(at: body)
            return next + length
        case .array, .array8:
            try checkDepth(depth, at: index)
            var (count, position) = try count(of: tag, at: index)
            while count > 0 {
                position = try skip(at: position, depth: depth + 1)
                count -= 1
            }
            return position
        case .map, .map8:
            try checkDepth(depth, at: index)
            var (count, position) = try count(of: tag, at: index)
            while count > 0 {
                position = try rawKey(at: position).next
                position = try skip(at: position, depth: depth + 1)
                count -= 1
            }
            return position
        }
    }

    /// Refuses a container nested deeper than the format allows.
    func checkDepth(_ depth: Int, at index: Int) throws {
        guard depth < BinaryFormat.maxDepth else {
            throw malformed("containers nest more than \(BinaryFormat.maxDepth) deep", at: index)
        }
    }

    /// A map key as it is in the input: a varint whose low bit tells an integer (odd) from a
    /// string length (even), the string's bytes not yet read.
    func rawKey(at index: Int) throws -> (key: BinaryRawKey, next: Int) {
        let (header, next) = try varint(at: index)
        if header & 1 == 1 {
            guard let number = Int(exactly: BinaryFormat.unzigzag(header >> 1)) else {
                throw malformed("an integer key does not fit in Int", at: index)
            }
            return (.int(number), next)
        }
        let length = header >> 1
        guard length <= UInt64(end - next) else {
            throw malformed("a key of \(length) bytes is more than the \(end - next) bytes left", at: index)
        }
        return (.string(start: next, length: Int(length)), next + Int(length))
    }

    /// The text of a raw key.
    func key(_ raw: BinaryRawKey) throws -> BinaryKey {
        switch raw {
        case .int(let number): return .int(number)
        case .string(let start, let length): return .string(try utf8(at: start, length: length).0)
        }
    }

    // MARK: Values

    /// `length` bytes of UTF-8 at `index` (already checked to be readable), validated.
    func utf8(at index: Int, length: Int) throws -> (String, next: Int) {
        guard isValidUTF8(at: index, length: length), let text = buffer.getString(at: index, length: length) else {
            throw malformed("a string is not valid UTF-8", at: index)
        }
        return (text, index + length)
    }

    /// Whether `length` bytes at `index` are well-formed UTF-8.
    func isValidUTF8(at index: Int, length: Int) -> Bool {
        buffer.withUnsafeReadableBytes { raw in
            let offset = index - start
            guard offset >= 0, length >= 0, length <= raw.count - offset else { return false }
            return UTF8Check.isValid(UnsafeRawBufferPointer(rebasing: raw[offset..<offset + length]))
        }
    }

    /// Whether `length` bytes at `index` are the UTF-8 of `text`.
    func bytes(at index: Int, length: Int, equal text: String) -> Bool {
        guard text.utf8.count == length else { return false }
        return buffer.withUnsafeReadableBytes { raw in
            let offset = index - start
            guard offset >= 0, length <= raw.count - offset else { return false }
            var position = offset
            for unit in text.utf8 {
                guard raw[position] == unit else { return false }
                position += 1
            }
            return true
        }
    }

    func readBool(at index: Int, _ path: BinaryPath) throws -> Bool {
        switch try tag(at: index) {
        case .trueValue: return true
        case .falseValue: return false
        case let other: throw mismatch(Bool.self, found: other, path)
        }
    }

    func readString(at index: Int, _ path: BinaryPath) throws -> String {
        let tag = try tag(at: index)
        guard tag == .string else { throw mismatch(String.self, found: tag, path) }
        let (length, next) = try length(at: index + 1)
        return try utf8(at: next, length: length).0
    }

    /// Any integer type, from either integer tag, when the number fits.
    func readInteger<T: FixedWidthInteger>(_ type: T.Type, at index: Int, _ path: BinaryPath) throws -> T {
        let tag = try tag(at: index)
        let result: T?
        let number: String
        switch tag {
        case .signed:
            let value = BinaryFormat.unzigzag(try varint(at: index + 1).value)
            result = T(exactly: value)
            number = String(value)
        case .unsigned:
            let value = try varint(at: index + 1).value
            result = T(exactly: value)
            number = String(value)
        case .float32, .float64:
            let value = try readDouble(at: index, path)
            result = T(exactly: value)
            number = String(value)
        default:
            throw mismatch(T.self, found: tag, path)
        }
        guard let result else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: path.codingPath, debugDescription: "the number \(number) does not fit in \(T.self)")
            )
        }
        return result
    }

    func readDouble(at index: Int, _ path: BinaryPath) throws -> Double {
        let tag = try tag(at: index)
        switch tag {
        case .float64:
            _ = try need(8, at: index + 1)
            return Double(bitPattern: buffer.getInteger(at: index + 1, as: UInt64.self) ?? 0)
        case .float32:
            _ = try need(4, at: index + 1)
            return Double(Float(bitPattern: buffer.getInteger(at: index + 1, as: UInt32.self) ?? 0))
        case .signed:
            return Double(BinaryFormat.unzigzag(try varint(at: index + 1).value))
        case .unsigned:
            return Double(try varint(at: index + 1).value)
        default:
            throw mismatch(Double.self, found: tag, path)
        }
    }

    func readFloat(at index: Int, _ path: BinaryPath) throws -> Float {
        if try tag(at: index) == .float32 {
            _ = try need(4, at: index + 1)
            return Float(bitPattern: buffer.getInteger(at: index + 1, as: UInt32.self) ?? 0)
        }
        // A Double rounds to the nearest Float, as parsing decimal text would; only a value out
        // of Float's range is refused.
        let value = try readDouble(at: index, path)
        guard !value.isFinite || value.magnitude <= Double(Float.greatestFiniteMagnitude) else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: path.codingPath, debugDescription: "the number \(value) does not fit in Float")
            )
        }
        return Float(value)
    }

    /// The body of a `bytes` value as a slice sharing the input's storage, or nil when the
    /// value at `index` is something else.
    func readBytes(at index: Int) throws -> ByteBuffer? {
        guard try tag(at: index) == .bytes else { return nil }
        let (length, next) = try length(at: index + 1)
        guard let slice = buffer.getSlice(at: next, length: length) else {
            throw malformed("the input ends early", at: next)
        }
        return slice
    }
}
