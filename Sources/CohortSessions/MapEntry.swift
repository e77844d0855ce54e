import Cohort
import NIOCore

/// One value of a replicated map: encoded bytes, the stamp of the write that set them, and an
/// optional absolute deadline.
struct MapEntry: ReplicatedEntry, Equatable {
    /// A write or a removal of one key.
    struct Delta: ReplicaDelta, Equatable {
        var stamp: Stamp
        /// The encoded value; nil removes the key.
        var value: ByteBuffer?
        /// The absolute deadline of the value.
        var expiresAt: WallMillis?

        enum CodingKeys: String, CodingKey {
            case stamp = "s", value = "v", expiresAt = "e"
        }

        var deletes: Bool { value == nil }
        var renamedKey: String? { nil }

        init(stamp: Stamp, value: ByteBuffer?, expiresAt: WallMillis?) {
            self.stamp = stamp
            self.value = value
            self.expiresAt = expiresAt
        }

        /// Decodes a change; the stamp and the deadline are checked (see ``ReceivedTime``).
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            stamp = try c.decode(Stamp.self, forKey: .stamp)
            value = try c.decodeIfPresent(ByteBuffer.self, forKey: .value)
            expiresAt = try ReceivedTime.optionalWall(c.decodeIfPresent(WallMillis.self, forKey: .expiresAt), "a map entry's deadline")
        }
    }

    var value: ByteBuffer
    var stamp: Stamp
    var expiresAt: WallMillis?

    enum CodingKeys: String, CodingKey {
        case value = "v", stamp = "s", expiresAt = "e"
    }

    init(value: ByteBuffer, stamp: Stamp, expiresAt: WallMillis?) {
        self.value = value
        self.stamp = stamp
        self.expiresAt = expiresAt
    }

    /// Decodes an entry; the stamp and the deadline are checked (see ``ReceivedTime``).
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        value = try c.decode(ByteBuffer.self, forKey: .value)
        stamp = try c.decode(Stamp.self, forKey: .stamp)
        expiresAt = try ReceivedTime.optionalWall(c.decodeIfPresent(WallMillis.self, forKey: .expiresAt), "a map entry's deadline")
    }

    var version: UInt64 { stamp.counter }
    var latestStamp: Stamp { stamp }
    var deadline: WallMillis? { expiresAt }

    static func creating(from delta: Delta) -> MapEntry? {
        guard let value = delta.value else { return nil }
        return MapEntry(value: value, stamp: delta.stamp, expiresAt: delta.expiresAt)
    }

    mutating func apply(_ delta: Delta) -> ApplyOutcome<Delta> {
        guard delta.stamp > stamp else { return .unchanged }
        guard let value = delta.value else { return .deleted }
        self = MapEntry(value: value, stamp: delta.stamp, expiresAt: delta.expiresAt)
        return .changed(delta)
    }

    mutating func merge(_ other: MapEntry) -> Bool {
        guard other.stamp > stamp else { return false }
        self = other
        return true
    }

    var fingerprint: UInt64 { Fingerprint.of("", stamp) }

    func conflicts(with other: MapEntry) -> [String] {
        other.stamp.counter == stamp.counter && other.stamp.origin != stamp.origin ? ["value"] : []
    }
}
