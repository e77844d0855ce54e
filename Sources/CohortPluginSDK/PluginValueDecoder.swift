import Foundation

/// Decodes a `Decodable` value from a ``PluginValue`` tree (the host side of a loaded codec).
///
/// Numbers convert between widths when the value fits exactly; bytes decode from
/// ``PluginValue/bytes(_:isData:)``, an array of small integers, or (for `Data`) base64 text, so
/// whatever form a plugin's codec gave them comes back.
public struct PluginValueDecoder: Sendable {
    public init() {}

    /// Decodes a value of a type from a tree.
    public func decode<Value: Decodable>(_ type: Value.Type, from tree: PluginValue) throws -> Value {
        try TreeDecoding.unbox(type, from: tree, codingPath: [])
    }
}

private enum TreeDecoding {
    static func unbox<Value: Decodable>(_ type: Value.Type, from value: PluginValue, codingPath: [any CodingKey]) throws -> Value {
        if type == [UInt8].self { return try bytes(value, codingPath) as! Value }
        if type == Data.self { return Data(try bytes(value, codingPath)) as! Value }
        return try Value(from: TreeDecoderImpl(value: value, codingPath: codingPath))
    }

    static func bytes(_ value: PluginValue, _ codingPath: [any CodingKey]) throws -> [UInt8] {
        switch value {
        case .bytes(let bytes, _): return bytes
        case .string(let text):
            if let data = Data(base64Encoded: text) { return [UInt8](data) }
        case .array(let items):
            var out: [UInt8] = []
            out.reserveCapacity(items.count)
            for item in items {
                guard let v = item.asUInt64, let byte = UInt8(exactly: v) else { break }
                out.append(byte)
            }
            if out.count == items.count { return out }
        default: break
        }
        throw mismatch("bytes", value, codingPath)
    }

    static func mismatch(_ wanted: String, _ value: PluginValue, _ codingPath: [any CodingKey]) -> DecodingError {
        .typeMismatch(Any.self, .init(codingPath: codingPath, debugDescription: "expected \(wanted), found \(value.kindName)"))
    }

    static func integer<T: FixedWidthInteger>(_ type: T.Type, _ value: PluginValue, _ codingPath: [any CodingKey]) throws -> T {
        if T.isSigned, let v = value.asInt64, let exact = T(exactly: v) { return exact }
        if let v = value.asUInt64, let exact = T(exactly: v) { return exact }
        if let v = value.asInt64, let exact = T(exactly: v) { return exact }
        throw mismatch("\(T.self)", value, codingPath)
    }

    static func bool(_ value: PluginValue, _ codingPath: [any CodingKey]) throws -> Bool {
        guard case .bool(let v) = value else { throw mismatch("a Bool", value, codingPath) }
        return v
    }

    static func string(_ value: PluginValue, _ codingPath: [any CodingKey]) throws -> String {
        guard case .string(let v) = value else { throw mismatch("a string", value, codingPath) }
        return v
    }

    static func double(_ value: PluginValue, _ codingPath: [any CodingKey]) throws -> Double {
        guard let v = value.asDouble else { throw mismatch("a number", value, codingPath) }
        return v
    }

    static func float(_ value: PluginValue, _ codingPath: [any CodingKey]) throws -> Float {
        if case .float(let v) = value { return v }
        let v = try double(value, codingPath)
        guard v.isNaN || v.isInfinite || abs(v) <= Double(Float.greatestFiniteMagnitude) else {
            throw mismatch("a Float", value, codingPath)
        }
        return Float(v)
    }
}

private struct TreeDecoderImpl: Decoder {
    let value: PluginValue
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let entries) = value else { throw TreeDecoding.mismatch("a keyed container", value, codingPath) }
        return KeyedDecodingContainer(KeyedTreeDecoding<Key>(entries: entries, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        switch value {
        case .array(let items): return UnkeyedTreeDecoding(items: items, codingPath: codingPath)
        case .bytes(let bytes, _): return UnkeyedTreeDecoding(items: bytes.map { .uint8($0) }, codingPath: codingPath)
        default: throw TreeDecoding.mismatch("an array", value, codingPath)
        }
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleTreeDecoding(value: value, codingPath: codingPath)
    }
}

private struct KeyedTreeDecoding<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let byKey: [String: PluginValue]
    let keys: [String]
    var codingPath: [any CodingKey]

    init(entries: [PluginValueEntry], codingPath: [any CodingKey]) {
        var byKey: [String: PluginValue] = [:]
        byKey.reserveCapacity(entries.count)
        for entry in entries { byKey[entry.key] = entry.value }
        self.byKey = byKey
        self.keys = entries.map(\.key)
        self.codingPath = codingPath
    }

    var allKeys: [Key] { keys.compactMap { Key(stringValue: $0) } }
    func contains(_ key: Key) -> Bool { byKey[key.stringValue] != nil }

    private func value(_ key: Key) throws -> PluginValue {
        guard let value = byKey[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no value for key '\(key.stringValue)'"))
        }
        return value
    }

    private func path(_ key: Key) -> [any CodingKey] { codingPath + [key] }

    func decodeNil(forKey key: Key) throws -> Bool { try value(key) == .null }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try TreeDecoding.bool(value(key), path(key)) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try TreeDecoding.string(value(key), path(key)) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try TreeDecoding.double(value(key), path(key)) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try TreeDecoding.float(value(key), path(key)) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try TreeDecoding.integer(type, value(key), path(key)) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try TreeDecoding.integer(type, value(key), path(key)) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try TreeDecoding.integer(type, value(key), path(key)) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try TreeDecoding.integer(type, value(key), path(key)) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try TreeDecoding.integer(type, value(key), path(key)) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try TreeDecoding.integer(type, value(key), path(key)) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try TreeDecoding.integer(type, value(key), path(key)) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try TreeDecoding.integer(type, value(key), path(key)) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try TreeDecoding.integer(type, value(key), path(key)) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try TreeDecoding.integer(type, value(key), path(key)) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try TreeDecoding.unbox(type, from: value(key), codingPath: path(key))
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try TreeDecoderImpl(value: value(key), codingPath: path(key)).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try TreeDecoderImpl(value: value(key), codingPath: path(key)).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        TreeDecoderImpl(value: byKey["super"] ?? .null, codingPath: codingPath)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        TreeDecoderImpl(value: byKey[key.stringValue] ?? .null, codingPath: path(key))
    }
}

private struct UnkeyedTreeDecoding: UnkeyedDecodingContainer {
    let items: [PluginValue]
    var codingPath: [any CodingKey]
    var currentIndex = 0
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    init(items: [PluginValue], codingPath: [any CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    private var path: [any CodingKey] { codingPath + [PluginValueKey(intValue: currentIndex)] }

    private mutating func next() throws -> PluginValue {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: path, debugDescription: "the array has only \(items.count) items"))
        }
        defer { currentIndex += 1 }
        return items[currentIndex]
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex] == .null else { return false }
        currentIndex += 1
        return true
    }
    mutating func decode(_ type: Bool.Type) throws -> Bool { let p = path; return try TreeDecoding.bool(next(), p) }
    mutating func decode(_ type: String.Type) throws -> String { let p = path; return try TreeDecoding.string(next(), p) }
    mutating func decode(_ type: Double.Type) throws -> Double { let p = path; return try TreeDecoding.double(next(), p) }
    mutating func decode(_ type: Float.Type) throws -> Float { let p = path; return try TreeDecoding.float(next(), p) }
    mutating func decode(_ type: Int.Type) throws -> Int { let p = path; return try TreeDecoding.integer(type, next(), p) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { let p = path; return try TreeDecoding.integer(type, next(), p) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { let p = path; return try TreeDecoding.integer(type, next(), p) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { let p = path; return try TreeDecoding.integer(type, next(), p) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { let p = path; return try TreeDecoding.integer(type, next(), p) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { let p = path; return try TreeDecoding.integer(type, next(), p) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { let p = path; return try TreeDecoding.integer(type, next(), p) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { let p = path; return try TreeDecoding.integer(type, next(), p) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { let p = path; return try TreeDecoding.integer(type, next(), p) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { let p = path; return try TreeDecoding.integer(type, next(), p) }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let p = path
        return try TreeDecoding.unbox(type, from: next(), codingPath: p)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let p = path
        return try TreeDecoderImpl(value: next(), codingPath: p).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let p = path
        return try TreeDecoderImpl(value: next(), codingPath: p).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let p = path
        return TreeDecoderImpl(value: try next(), codingPath: p)
    }
}

private struct SingleTreeDecoding: SingleValueDecodingContainer {
    let value: PluginValue
    var codingPath: [any CodingKey]

    func decodeNil() -> Bool { value == .null }
    func decode(_ type: Bool.Type) throws -> Bool { try TreeDecoding.bool(value, codingPath) }
    func decode(_ type: String.Type) throws -> String { try TreeDecoding.string(value, codingPath) }
    func decode(_ type: Double.Type) throws -> Double { try TreeDecoding.double(value, codingPath) }
    func decode(_ type: Float.Type) throws -> Float { try TreeDecoding.float(value, codingPath) }
    func decode(_ type: Int.Type) throws -> Int { try TreeDecoding.integer(type, value, codingPath) }
    func decode(_ type: Int8.Type) throws -> Int8 { try TreeDecoding.integer(type, value, codingPath) }
    func decode(_ type: Int16.Type) throws -> Int16 { try TreeDecoding.integer(type, value, codingPath) }
    func decode(_ type: Int32.Type) throws -> Int32 { try TreeDecoding.integer(type, value, codingPath) }
    func decode(_ type: Int64.Type) throws -> Int64 { try TreeDecoding.integer(type, value, codingPath) }
    func decode(_ type: UInt.Type) throws -> UInt { try TreeDecoding.integer(type, value, codingPath) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try TreeDecoding.integer(type, value, codingPath) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try TreeDecoding.integer(type, value, codingPath) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try TreeDecoding.integer(type, value, codingPath) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try TreeDecoding.integer(type, value, codingPath) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try TreeDecoding.unbox(type, from: value, codingPath: codingPath) }
}
