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
    }

    var value: ByteBuffer
    var stamp: Stamp
    var expiresAt: WallMillis?

    enum CodingKeys: String, CodingKey {
        case value = "v", stamp = "s", expiresAt = "e"
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
}
