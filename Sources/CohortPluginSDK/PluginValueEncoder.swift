import Foundation

/// Turns an `Encodable` value into a ``PluginValue`` tree (the host side of a loaded codec).
///
/// `[UInt8]` and `Data` become ``PluginValue/bytes(_:isData:)``, so a codec that writes bytes
/// specially (the binary codec's bytes tag, JSON's base64 for `Data`) does so through the tree too.
public struct PluginValueEncoder: Sendable {
    public init() {}

    /// The tree of a value.
    public func encode<Value: Encodable>(_ value: Value) throws -> PluginValue {
        try TreeEncoding.box(value, codingPath: [])
    }
}

/// A node under construction: containers are filled in place, then frozen into a tree.
private final class TreeNode {
    enum Content {
        case empty
        case value(PluginValue)
        case array([TreeNode])
        case object(keys: [String], nodes: [TreeNode])
    }
    var content: Content = .empty

    func frozen() -> PluginValue {
        switch content {
        case .empty: return .object([])
        case .value(let value): return value
        case .array(let nodes): return .array(nodes.map { $0.frozen() })
        case .object(let keys, let nodes):
            return .object(zip(keys, nodes).map { PluginValueEntry(key: $0, value: $1.frozen()) })
        }
    }
}

private enum TreeEncoding {
    static func box<Value: Encodable>(_ value: Value, codingPath: [any CodingKey]) throws -> PluginValue {
        if let bytes = value as? [UInt8] { return .bytes(bytes, isData: false) }
        if let data = value as? Data { return .bytes([UInt8](data), isData: true) }
        let node = TreeNode()
        try value.encode(to: TreeEncoderImpl(node: node, codingPath: codingPath))
        return node.frozen()
    }
}

private struct TreeEncoderImpl: Encoder {
    let node: TreeNode
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = node.content {} else { node.content = .object(keys: [], nodes: []) }
        return KeyedEncodingContainer(KeyedTreeContainer<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = node.content {} else { node.content = .array([]) }
        return UnkeyedTreeContainer(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleTreeContainer(node: node, codingPath: codingPath)
    }
}

private struct KeyedTreeContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: TreeNode
    var codingPath: [any CodingKey]

    private func child(_ key: any CodingKey) -> TreeNode {
        guard case .object(var keys, var nodes) = node.content else { return TreeNode() }
        if let index = keys.firstIndex(of: key.stringValue) { return nodes[index] }
        let child = TreeNode()
        keys.append(key.stringValue)
        nodes.append(child)
        node.content = .object(keys: keys, nodes: nodes)
        return child
    }

    private func set(_ value: PluginValue, _ key: Key) { child(key).content = .value(value) }

    mutating func encodeNil(forKey key: Key) throws { set(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { set(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) throws { set(.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { set(.double(value), key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { set(.float(value), key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { set(.int(value), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { set(.int8(value), key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { set(.int16(value), key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { set(.int32(value), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { set(.int64(value), key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { set(.uint(value), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { set(.uint8(value), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { set(.uint16(value), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { set(.uint32(value), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { set(.uint64(value), key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        set(try TreeEncoding.box(value, codingPath: codingPath + [key]), key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        TreeEncoderImpl(node: child(key), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        TreeEncoderImpl(node: child(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        TreeEncoderImpl(node: child(PluginValueKey(stringValue: "super")), codingPath: codingPath)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        TreeEncoderImpl(node: child(key), codingPath: codingPath + [key])
    }
}

private struct UnkeyedTreeContainer: UnkeyedEncodingContainer {
    let node: TreeNode
    var codingPath: [any CodingKey]
    var count: Int {
        if case .array(let nodes) = node.content { return nodes.count }
        return 0
    }

    private func append() -> TreeNode {
        let child = TreeNode()
        if case .array(var nodes) = node.content {
            nodes.append(child)
            node.content = .array(nodes)
        }
        return child
    }

    private func add(_ value: PluginValue) { append().content = .value(value) }

    mutating func encodeNil() throws { add(.null) }
    mutating func encode(_ value: Bool) throws { add(.bool(value)) }
    mutating func encode(_ value: String) throws { add(.string(value)) }
    mutating func encode(_ value: Double) throws { add(.double(value)) }
    mutating func encode(_ value: Float) throws { add(.float(value)) }
    mutating func encode(_ value: Int) throws { add(.int(value)) }
    mutating func encode(_ value: Int8) throws { add(.int8(value)) }
    mutating func encode(_ value: Int16) throws { add(.int16(value)) }
    mutating func encode(_ value: Int32) throws { add(.int32(value)) }
    mutating func encode(_ value: Int64) throws { add(.int64(value)) }
    mutating func encode(_ value: UInt) throws { add(.uint(value)) }
    mutating func encode(_ value: UInt8) throws { add(.uint8(value)) }
    mutating func encode(_ value: UInt16) throws { add(.uint16(value)) }
    mutating func encode(_ value: UInt32) throws { add(.uint32(value)) }
    mutating func encode(_ value: UInt64) throws { add(.uint64(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        add(try TreeEncoding.box(value, codingPath: codingPath + [PluginValueKey(intValue: count)]))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = codingPath + [PluginValueKey(intValue: count)]
        return TreeEncoderImpl(node: append(), codingPath: path).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = codingPath + [PluginValueKey(intValue: count)]
        return TreeEncoderImpl(node: append(), codingPath: path).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let path = codingPath + [PluginValueKey(intValue: count)]
        return TreeEncoderImpl(node: append(), codingPath: path)
    }
}

private struct SingleTreeContainer: SingleValueEncodingContainer {
    let node: TreeNode
    var codingPath: [any CodingKey]

    private func set(_ value: PluginValue) { node.content = .value(value) }

    mutating func encodeNil() throws { set(.null) }
    mutating func encode(_ value: Bool) throws { set(.bool(value)) }
    mutating func encode(_ value: String) throws { set(.string(value)) }
    mutating func encode(_ value: Double) throws { set(.double(value)) }
    mutating func encode(_ value: Float) throws { set(.float(value)) }
    mutating func encode(_ value: Int) throws { set(.int(value)) }
    mutating func encode(_ value: Int8) throws { set(.int8(value)) }
    mutating func encode(_ value: Int16) throws { set(.int16(value)) }
    mutating func encode(_ value: Int32) throws { set(.int32(value)) }
    mutating func encode(_ value: Int64) throws { set(.int64(value)) }
    mutating func encode(_ value: UInt) throws { set(.uint(value)) }
    mutating func encode(_ value: UInt8) throws { set(.uint8(value)) }
    mutating func encode(_ value: UInt16) throws { set(.uint16(value)) }
    mutating func encode(_ value: UInt32) throws { set(.uint32(value)) }
    mutating func encode(_ value: UInt64) throws { set(.uint64(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws { set(try TreeEncoding.box(value, codingPath: codingPath)) }
}
