import Cohort
import NIOCore

// Session records and deltas are encoded as one flat unkeyed container of primitives (a format
// number first), not as nested keyed containers: a record is written once per state transfer
// and a delta once per request, and nested containers cost most of the encoding time. The
// attribute values inside are bytes already encoded with the manager's codec.

extension UnkeyedEncodingContainer {
    mutating func encode(stamp: Stamp) throws {
        try encode(stamp.counter)
        try encode(stamp.origin)
    }

    mutating func encode(optional value: (some Encodable)?) throws {
        if let value { try encode(value) } else { try encodeNil() }
    }
}

extension UnkeyedDecodingContainer {
    /// A stamp, refused when its counter is out of range (see ``Stamp/maxCounter``).
    mutating func decodeStamp() throws -> Stamp {
        try Stamp.received(counter: try decode(UInt64.self), origin: try decode(UInt64.self))
    }

    /// A wall time, refused when it is not a plausible time (see ``ReceivedTime``).
    mutating func decodeWall(_ what: @autoclosure () -> String) throws -> WallMillis {
        try ReceivedTime.wall(try decode(WallMillis.self), what())
    }

    /// A count of items of `valuesPerItem` values each that follow in this container: refused
    /// when negative, or when the values left cannot hold that many items. A count read from
    /// the input never sizes an allocation before it is checked against what is really there.
    mutating func decodeCount(of what: String, valuesPerItem: Int) throws -> Int {
        let count = try decode(Int.self)
        guard count >= 0 else {
            throw DecodingError.dataCorruptedError(in: self, debugDescription: "negative count of \(what) (\(count))")
        }
        if let total = self.count {
            let left = max(0, total - currentIndex)
            guard count <= left / max(1, valuesPerItem) else {
                throw DecodingError.dataCorruptedError(in: self, debugDescription: "\(count) \(what) announced, but only \(left) values follow")
            }
        }
        return count
    }

    mutating func decodeOptional<T: Decodable>(_ type: T.Type) throws -> T? {
        try decodeNil() ? nil : try decode(type)
    }

    mutating func checkFormat(_ expected: UInt8, of what: String) throws {
        let format = try decode(UInt8.self)
        guard format == expected else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "\(what) format \(format) is not supported (expected \(expected)); run the same version on every node"))
        }
    }
}

extension SessionRecord {
    static let format: UInt8 = 1

    init(from decoder: any Decoder) throws {
        var c = try decoder.unkeyedContainer()
        try c.checkFormat(Self.format, of: "session record")
        id = try c.decode(String.self)
        creationTime = try c.decodeWall("a session's creation time")
        lastAccessedTime = try c.decodeWall("a session's last access time")
        version = try c.decode(UInt64.self)
        guard version <= Stamp.maxCounter else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "session version \(version) is above the highest stamp counter")
        }
        latestStamp = try c.decodeStamp()
        // Any idle limit is valid (0 or less: never); the deadline saturates.
        maxInactive = Stamped(value: try c.decode(Int64.self), stamp: try c.decodeStamp())
        absoluteExpiry = Stamped(value: try ReceivedTime.optionalWall(c.decodeOptional(WallMillis.self), "a session's absolute expiry"), stamp: try c.decodeStamp())
        principal = Stamped(value: try c.decodeOptional(String.self), stamp: try c.decodeStamp())
        // Each attribute is four values: name, value (or nil), stamp counter, stamp origin.
        let count = try c.decodeCount(of: "attributes", valuesPerItem: 4)
        // Reserved up to a small bound only: the count is checked against the values present, but
        // a dictionary slot costs more than the value's bytes.
        attributes = Dictionary(minimumCapacity: min(count, 1024))
        for _ in 0..<count {
            let name = try c.decode(String.self)
            let value = try c.decodeOptional(ByteBuffer.self)
            attributes[name] = Stamped(value: value, stamp: try c.decodeStamp())
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(Self.format)
        try c.encode(id)
        try c.encode(creationTime)
        try c.encode(lastAccessedTime)
        try c.encode(version)
        try c.encode(stamp: latestStamp)
        try c.encode(maxInactive.value)
        try c.encode(stamp: maxInactive.stamp)
        try c.encode(optional: absoluteExpiry.value)
        try c.encode(stamp: absoluteExpiry.stamp)
        try c.encode(optional: principal.value)
        try c.encode(stamp: principal.stamp)
        try c.encode(attributes.count)
        for (name, slot) in attributes {
            try c.encode(name)
            try c.encode(optional: slot.value)
            try c.encode(stamp: slot.stamp)
        }
    }
}

extension SessionDelta {
    static let format: UInt8 = 1

    /// Which optional fields follow, one bit each.
    private struct Fields: OptionSet {
        let rawValue: UInt8
        static let creation = Fields(rawValue: 1 << 0)
        static let access = Fields(rawValue: 1 << 1)
        static let maxInactive = Fields(rawValue: 1 << 2)
        static let absoluteExpiry = Fields(rawValue: 1 << 3)
        static let principal = Fields(rawValue: 1 << 4)
        static let invalidated = Fields(rawValue: 1 << 5)
        static let newID = Fields(rawValue: 1 << 6)
    }

    init(from decoder: any Decoder) throws {
        var c = try decoder.unkeyedContainer()
        try c.checkFormat(Self.format, of: "session delta")
        sessionID = try c.decode(String.self)
        stamp = try c.decodeStamp()
        let fields = Fields(rawValue: try c.decode(UInt8.self))
        creation = fields.contains(.creation) ? Creation(creationTime: try c.decodeWall("a session's creation time")) : nil
        lastAccessedTime = fields.contains(.access) ? try c.decodeWall("a session's access time") : nil
        maxInactive = fields.contains(.maxInactive) ? try c.decode(Int64.self) : nil
        absoluteExpiry = fields.contains(.absoluteExpiry)
            ? Change(value: try ReceivedTime.optionalWall(c.decodeOptional(WallMillis.self), "a session's absolute expiry")) : nil
        principal = fields.contains(.principal) ? Change(value: try c.decodeOptional(String.self)) : nil
        invalidated = fields.contains(.invalidated)
        newID = fields.contains(.newID) ? try c.decode(String.self) : nil
        // Each attribute is two values: name, value (or nil).
        let count = c.isAtEnd ? 0 : try c.decodeCount(of: "attributes", valuesPerItem: 2)
        attributes = Dictionary(minimumCapacity: min(count, 1024))
        for _ in 0..<count {
            let name = try c.decode(String.self)
            attributes[name] = .some(try c.decodeOptional(ByteBuffer.self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(Self.format)
        try c.encode(sessionID)
        try c.encode(stamp: stamp)
        var fields: Fields = []
        if creation != nil { fields.insert(.creation) }
        if lastAccessedTime != nil { fields.insert(.access) }
        if maxInactive != nil { fields.insert(.maxInactive) }
        if absoluteExpiry != nil { fields.insert(.absoluteExpiry) }
        if principal != nil { fields.insert(.principal) }
        if invalidated { fields.insert(.invalidated) }
        if newID != nil { fields.insert(.newID) }
        try c.encode(fields.rawValue)
        if let creation { try c.encode(creation.creationTime) }
        if let lastAccessedTime { try c.encode(lastAccessedTime) }
        if let maxInactive { try c.encode(maxInactive) }
        if let absoluteExpiry { try c.encode(optional: absoluteExpiry.value) }
        if let principal { try c.encode(optional: principal.value) }
        if let newID { try c.encode(newID) }
        if !attributes.isEmpty {
            try c.encode(attributes.count)
            for (name, value) in attributes {
                try c.encode(name)
                try c.encode(optional: value)
            }
        }
    }
}
