import CohortCore

/// The `Decoder` handed to `init(from:)`: one value at an index of the input.
struct BinaryValueDecoder: Decoder {
    let reader: BinaryReader
    /// Where the value's tag is.
    let index: Int
    /// How many containers enclose the value.
    let depth: Int
    let path: BinaryPath
    var codingPath: [any CodingKey] { path.codingPath }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(try BinaryKeyedDecoder<Key>(reader: reader, index: index, depth: depth, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try BinaryUnkeyedDecoder(reader: reader, index: index, depth: depth, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        BinarySingleValueDecoder(decoder: self)
    }
}

/// Reads a map. The entries are indexed once, so keys may come in any order; keys the type does
/// not ask for are skipped (forward compatibility). When a key occurs twice, the first wins.
struct BinaryKeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let reader: BinaryReader
    let depth: Int
    let codingPath: [any CodingKey]
    /// The keys where they are in the input, in input order, with the index of each value.
    private var entries: [(key: BinaryRawKey, index: Int)] = []
    /// For larger maps, the keys read into a dictionary.
    private var table: [BinaryKey: Int]?

    /// Maps with more entries than this get a hash table; smaller ones are searched in order,
    /// comparing bytes in place.
    private static var linearSearchLimit: Int { 12 }

    init(reader: BinaryReader, index: Int, depth: Int, codingPath: [any CodingKey]) throws {
        self.reader = reader
        self.depth = depth
        self.codingPath = codingPath
        let tag = try reader.tag(at: index)
        guard tag == .map || tag == .map8 else { throw reader.mismatch([String: Any].self, found: tag, BinaryPath(base: codingPath, key: nil)) }
        try reader.checkDepth(depth, at: index)
        var (count, position) = try reader.count(of: tag, at: index)
        let hashed = count > Self.linearSearchLimit
        var table: [BinaryKey: Int] = [:]
        // The count is checked against the bytes left, but an index entry is larger than the two
        // bytes an entry takes at least: reserve for small maps only and let large ones grow.
        entries.reserveCapacity(min(count, Self.linearSearchLimit * 4))
        while count > 0 {
            let (key, valueIndex) = try reader.rawKey(at: position)
            if case .string(let start, let length) = key, !reader.isValidUTF8(at: start, length: length) {
                throw reader.malformed("a key is not valid UTF-8", at: start)
            }
            position = try reader.skip(at: valueIndex, depth: depth + 1)
            count -= 1
            if hashed {
                let text = try reader.key(key)
                if table[text] != nil { continue }
                table[text] = valueIndex
            }
            entries.append((key, valueIndex))
        }
        self.table = hashed ? table : nil
    }

    private func find(_ number: Int) -> Int? {
        if let table { return table[.int(number)] }
        for entry in entries {
            if case .int(let candidate) = entry.key, candidate == number { return entry.index }
        }
        return nil
    }

    private func find(_ text: String) -> Int? {
        if let table { return table[.string(text)] }
        for entry in entries {
            if case .string(let start, let length) = entry.key, reader.bytes(at: start, length: length, equal: text) {
                return entry.index
            }
        }
        return nil
    }

    /// Where the value for `key` is: looked up the way the key would have been written first.
    private func lookup(_ key: some CodingKey) -> Int? {
        if let number = BinaryFormat.integerKey(key) {
            return find(number) ?? find(key.stringValue)
        }
        if let found = find(key.stringValue) { return found }
        return key.intValue.flatMap { find($0) }
    }

    private func require(_ key: some CodingKey) throws -> Int {
        guard let index = lookup(key) else {
            let present = entries.prefix(20).map { entry -> String in
                switch try? reader.key(entry.key) {
                case .string(let text): return "'\(text)'"
                case .int(let number): return String(number)
                case nil: return "?"
                }
            }
            throw DecodingError.keyNotFound(
                key,
                DecodingError.Context(
                    codingPath: codingPath,
                    debugDescription: "no value for key '\(key.stringValue)' (present: \(present.joined(separator: ", ")))"
                )
            )
        }
        return index
    }

    private func path(_ key: Key) -> BinaryPath { BinaryPath(base: codingPath, key: key) }

    var allKeys: [Key] {
        entries.compactMap { entry in
            switch try? reader.key(entry.key) {
            case .string(let text): return Key(stringValue: text)
            case .int(let number): return Key(intValue: number) ?? Key(stringValue: String(number))
            case nil: return nil
            }
        }
    }

    func contains(_ key: Key) -> Bool { lookup(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { try reader.tag(at: require(key)) == .null }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try reader.readBool(at: require(key), path(key)) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try reader.readString(at: require(key), path(key)) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try reader.readDouble(at: require(key), path(key)) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try reader.readFloat(at: require(key), path(key)) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try integer(key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try integer(key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try integer(key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try integer(key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try integer(key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try integer(key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try integer(key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try integer(key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try integer(key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try integer(key) }

    private func integer<T: FixedWidthInteger>(_ key: Key) throws -> T {
        try reader.readInteger(T.self, at: require(key), path(key))
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try reader.decode(T.self, at: require(key), depth: depth + 1, path(key))
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let index = lookup(key), try reader.tag(at: index) != .null else { return nil }
        return try reader.decode(T.self, at: index, depth: depth + 1, path(key))
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        KeyedDecodingContainer(
            try BinaryKeyedDecoder<NestedKey>(reader: reader, index: require(key), depth: depth + 1, codingPath: codingPath + [key])
        )
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try BinaryUnkeyedDecoder(reader: reader, index: require(key), depth: depth + 1, codingPath: codingPath + [key])
    }

    func superDecoder() throws -> any Decoder {
        BinaryValueDecoder(reader: reader, index: try require(BinaryIndexKey.super), depth: depth + 1, path: BinaryPath(base: codingPath, key: BinaryIndexKey.super))
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        BinaryValueDecoder(reader: reader, index: try require(key), depth: depth + 1, path: path(key))
    }
}

/// Reads an array front to back.
struct BinaryUnkeyedDecoder: UnkeyedDecodingContainer {
    let reader: BinaryReader
    let depth: Int
    let codingPath: [any CodingKey]
    private let total: Int
    /// Where the next element's tag is.
    private var position: Int
    private(set) var currentIndex = 0

    var count: Int? { total }
    var isAtEnd: Bool { currentIndex >= total }

    init(reader: BinaryReader, index: Int, depth: Int, codingPath: [any CodingKey]) throws {
        self.reader = reader
        self.depth = depth
        self.codingPath = codingPath
        let tag = try reader.tag(at: index)
        guard tag == .array || tag == .array8 else { throw reader.mismatch([Any].self, found: tag, BinaryPath(base: codingPath, key: nil)) }
        try reader.checkDepth(depth, at: index)
        (total, position) = try reader.count(of: tag, at: index)
    }

    /// Reads the next element with `body` (handed a decoder for it) and moves past it; on
    /// failure the position does not move, so the caller may try another type.
    private mutating func next<T>(_ type: T.Type, _ body: (BinaryValueDecoder) throws -> T) throws -> T {
        let path = BinaryPath(base: codingPath, key: BinaryIndexKey(index: currentIndex))
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(
                T.self,
                DecodingError.Context(codingPath: path.codingPath, debugDescription: "the array has only \(total) elements")
            )
        }
        let element = BinaryValueDecoder(reader: reader, index: position, depth: depth + 1, path: path)
        let value = try body(element)
        position = try reader.skip(at: position, depth: depth + 1)
        currentIndex += 1
        return value
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, try reader.tag(at: position) == .null else { return false }
        position += 1
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try next(type) { try $0.reader.readBool(at: $0.index, $0.path) } }
    mutating func decode(_ type: String.Type) throws -> String { try next(type) { try $0.reader.readString(at: $0.index, $0.path) } }
    mutating func decode(_ type: Double.Type) throws -> Double { try next(type) { try $0.reader.readDouble(at: $0.index, $0.path) } }
    mutating func decode(_ type: Float.Type) throws -> Float { try next(type) { try $0.reader.readFloat(at: $0.index, $0.path) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try integer() }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try integer() }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try integer() }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try integer() }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try integer() }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try integer() }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try integer() }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try integer() }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try integer() }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try integer() }

    private mutating func integer<T: FixedWidthInteger>() throws -> T {
        try next(T.self) { try $0.reader.readInteger(T.self, at: $0.index, $0.path) }
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        // The element's own decoder: the element is one level deeper than the array's depth.
        try next(type) { try $0.reader.decode(T.self, at: $0.index, depth: $0.depth, $0.path) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next(KeyedDecodingContainer<NestedKey>.self) { try $0.container(keyedBy: NestedKey.self) }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try next((any UnkeyedDecodingContainer).self) { try $0.unkeyedContainer() }
    }

    mutating func superDecoder() throws -> any Decoder {
        try next((any Decoder).self) { $0 }
    }
}

/// Reads the one value of its decoder.
struct BinarySingleValueDecoder: SingleValueDecodingContainer {
    let decoder: BinaryValueDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }
    private var reader: BinaryReader { decoder.reader }
    private var index: Int { decoder.index }

    func decodeNil() -> Bool { (try? reader.tag(at: index)) == .null }
    func decode(_ type: Bool.Type) throws -> Bool { try reader.readBool(at: index, decoder.path) }
    func decode(_ type: String.Type) throws -> String { try reader.readString(at: index, decoder.path) }
    func decode(_ type: Double.Type) throws -> Double { try reader.readDouble(at: index, decoder.path) }
    func decode(_ type: Float.Type) throws -> Float { try reader.readFloat(at: index, decoder.path) }
    func decode(_ type: Int.Type) throws -> Int { try reader.readInteger(type, at: index, decoder.path) }
    func decode(_ type: Int8.Type) throws -> Int8 { try reader.readInteger(type, at: index, decoder.path) }
    func decode(_ type: Int16.Type) throws -> Int16 { try reader.readInteger(type, at: index, decoder.path) }
    func decode(_ type: Int32.Type) throws -> Int32 { try reader.readInteger(type, at: index, decoder.path) }
    func decode(_ type: Int64.Type) throws -> Int64 { try reader.readInteger(type, at: index, decoder.path) }
    func decode(_ type: UInt.Type) throws -> UInt { try reader.readInteger(type, at: index, decoder.path) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try reader.readInteger(type, at: index, decoder.path) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try reader.readInteger(type, at: index, decoder.path) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try reader.readInteger(type, at: index, decoder.path) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try reader.readInteger(type, at: index, decoder.path) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try reader.decode(T.self, at: index, depth: decoder.depth, decoder.path)
    }
}
