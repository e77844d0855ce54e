import CohortCore

/// The `Encoder` handed to `encode(to:)`: stands for one value's slot in the output.
final class BinaryValueEncoder: Encoder {
    let writer: BinaryWriter
    let slot: BinaryFrame
    let path: BinaryPath
    var codingPath: [any CodingKey] { path.codingPath }
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    /// The container this value became, so that asking again (a class and its superclass sharing
    /// one encoder) continues the same container.
    private var opened: BinaryFrame?

    init(writer: BinaryWriter, slot: BinaryFrame, path: BinaryPath) {
        self.writer = writer
        self.slot = slot
        self.path = path
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(BinaryKeyedEncoder<Key>(writer: writer, frame: open(.keyed), codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        BinaryUnkeyedEncoder(writer: writer, frame: open(.unkeyed), codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        BinarySingleValueEncoder(encoder: self)
    }

    private func open(_ kind: BinaryFrame.Kind) -> BinaryFrame {
        if let opened, opened.kind == kind, writer.isOpen(opened) { return opened }
        do {
            try writer.claim(slot, codingPath: codingPath)
            let frame = try writer.openContainer(kind, level: slot.level, codingPath: codingPath)
            opened = frame
            return frame
        } catch {
            writer.fail(error)
            return .dead(kind)
        }
    }
}

/// Writes map entries: the key, then the value.
struct BinaryKeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let writer: BinaryWriter
    let frame: BinaryFrame
    let codingPath: [any CodingKey]

    private func begin(_ key: Key) throws {
        try writer.beginElement(of: frame, codingPath: codingPath + [key])
        writer.writeKey(key)
    }

    mutating func encodeNil(forKey key: Key) throws { try begin(key); writer.writeNil() }
    mutating func encode(_ value: Bool, forKey key: Key) throws { try begin(key); writer.writeBool(value) }
    mutating func encode(_ value: String, forKey key: Key) throws { try begin(key); writer.writeString(value) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try begin(key); writer.writeDouble(value) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try begin(key); writer.writeFloat(value) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try begin(key); writer.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try begin(key); writer.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try begin(key); writer.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try begin(key); writer.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try begin(key); writer.writeSigned(value) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try begin(key); writer.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try begin(key); writer.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try begin(key); writer.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try begin(key); writer.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try begin(key); writer.writeUnsigned(value) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try begin(key)
        try writer.encode(value, level: frame.level + 1, path: BinaryPath(base: codingPath, key: key))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let path = codingPath + [key]
        let nested = nested(.keyed, key: key, path: path)
        return KeyedEncodingContainer(BinaryKeyedEncoder<NestedKey>(writer: writer, frame: nested, codingPath: path))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let path = codingPath + [key]
        return BinaryUnkeyedEncoder(writer: writer, frame: nested(.unkeyed, key: key, path: path), codingPath: path)
    }

    mutating func superEncoder() -> any Encoder {
        superEncoder(key: BinaryIndexKey.super)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        superEncoder(key: key)
    }

    private func superEncoder(key: some CodingKey) -> any Encoder {
        let path = BinaryPath(base: codingPath, key: key)
        do {
            try writer.beginElement(of: frame, codingPath: path.codingPath)
            writer.writeKey(key)
            return BinaryValueEncoder(writer: writer, slot: writer.openSlot(level: frame.level + 1), path: path)
        } catch {
            writer.fail(error)
            return BinaryValueEncoder(writer: writer, slot: .dead(.slot), path: path)
        }
    }

    private func nested(_ kind: BinaryFrame.Kind, key: Key, path: [any CodingKey]) -> BinaryFrame {
        do {
            try begin(key)
            return try writer.openContainer(kind, level: frame.level + 1, codingPath: path)
        } catch {
            writer.fail(error)
            return .dead(kind)
        }
    }
}

/// Writes array elements.
struct BinaryUnkeyedEncoder: UnkeyedEncodingContainer {
    let writer: BinaryWriter
    let frame: BinaryFrame
    let codingPath: [any CodingKey]

    var count: Int { Int(frame.count) }

    private func begin() throws -> BinaryPath {
        let path = BinaryPath(base: codingPath, key: BinaryIndexKey(index: count))
        try writer.beginElement(of: frame, codingPath: path.codingPath)
        return path
    }

    mutating func encodeNil() throws { _ = try begin(); writer.writeNil() }
    mutating func encode(_ value: Bool) throws { _ = try begin(); writer.writeBool(value) }
    mutating func encode(_ value: String) throws { _ = try begin(); writer.writeString(value) }
    mutating func encode(_ value: Double) throws { _ = try begin(); writer.writeDouble(value) }
    mutating func encode(_ value: Float) throws { _ = try begin(); writer.writeFloat(value) }
    mutating func encode(_ value: Int) throws { _ = try begin(); writer.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int8) throws { _ = try begin(); writer.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int16) throws { _ = try begin(); writer.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int32) throws { _ = try begin(); writer.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int64) throws { _ = try begin(); writer.writeSigned(value) }
    mutating func encode(_ value: UInt) throws { _ = try begin(); writer.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { _ = try begin(); writer.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt16) throws { _ = try begin(); writer.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt32) throws { _ = try begin(); writer.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt64) throws { _ = try begin(); writer.writeUnsigned(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let path = try begin()
        try writer.encode(value, level: frame.level + 1, path: path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let (nested, path) = nested(.keyed)
        return KeyedEncodingContainer(BinaryKeyedEncoder<NestedKey>(writer: writer, frame: nested, codingPath: path))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let (nested, path) = nested(.unkeyed)
        return BinaryUnkeyedEncoder(writer: writer, frame: nested, codingPath: path)
    }

    mutating func superEncoder() -> any Encoder {
        let path = BinaryPath(base: codingPath, key: BinaryIndexKey(index: count))
        do {
            try writer.beginElement(of: frame, codingPath: path.codingPath)
            return BinaryValueEncoder(writer: writer, slot: writer.openSlot(level: frame.level + 1), path: path)
        } catch {
            writer.fail(error)
            return BinaryValueEncoder(writer: writer, slot: .dead(.slot), path: path)
        }
    }

    private func nested(_ kind: BinaryFrame.Kind) -> (BinaryFrame, [any CodingKey]) {
        let path = codingPath + [BinaryIndexKey(index: count)]
        do {
            try writer.beginElement(of: frame, codingPath: path)
            return (try writer.openContainer(kind, level: frame.level + 1, codingPath: path), path)
        } catch {
            writer.fail(error)
            return (.dead(kind), path)
        }
    }
}

/// Writes one value into its encoder's slot.
struct BinarySingleValueEncoder: SingleValueEncodingContainer {
    let encoder: BinaryValueEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }
    private var writer: BinaryWriter { encoder.writer }

    private func claim() throws {
        try writer.claim(encoder.slot, codingPath: codingPath)
    }

    mutating func encodeNil() throws { try claim(); writer.writeNil() }
    mutating func encode(_ value: Bool) throws { try claim(); writer.writeBool(value) }
    mutating func encode(_ value: String) throws { try claim(); writer.writeString(value) }
    mutating func encode(_ value: Double) throws { try claim(); writer.writeDouble(value) }
    mutating func encode(_ value: Float) throws { try claim(); writer.writeFloat(value) }
    mutating func encode(_ value: Int) throws { try claim(); writer.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int8) throws { try claim(); writer.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int16) throws { try claim(); writer.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int32) throws { try claim(); writer.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int64) throws { try claim(); writer.writeSigned(value) }
    mutating func encode(_ value: UInt) throws { try claim(); writer.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { try claim(); writer.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt16) throws { try claim(); writer.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt32) throws { try claim(); writer.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt64) throws { try claim(); writer.writeUnsigned(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        if value is any BinaryDirectEncodable || value is any ByteBufferWrapping {
            try claim()
            _ = writer.writeDirect(value)
        } else {
            // The value's own containers take over this slot.
            try value.encode(to: encoder)
        }
    }
}
