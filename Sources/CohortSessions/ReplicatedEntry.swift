import Cohort

/// A change to one replicated entry, as it travels between nodes.
///
/// Changes are applied by stamp: every field a change sets carries the change's ``stamp``, and
/// a field only moves forward (see ``Stamp``). Applying the same change twice, or an older one
/// after a newer one, is therefore harmless.
protocol ReplicaDelta: Codable, Sendable {
    /// The change's stamp (set by the replicator just before the change is applied).
    var stamp: Stamp { get set }
    /// Whether the change deletes the entry (session invalidation, map removal).
    var deletes: Bool { get }
    /// The new key the entry moves to (session id change), if any.
    var renamedKey: String? { get }
}

/// What applying a change did.
enum ApplyOutcome<Delta: ReplicaDelta>: Sendable {
    /// Nothing: a duplicate or a stale change.
    case unchanged
    /// The entry changed; the value is the part of the change that took effect.
    case changed(Delta)
    /// The change deletes the entry.
    case deleted
}

/// A value held by a replicated store: it knows how to apply a change and how to merge
/// another copy of itself, both without ever going back in version.
protocol ReplicatedEntry: Codable, Sendable {
    associatedtype Delta: ReplicaDelta

    /// The highest stamp counter applied.
    var version: UInt64 { get }
    /// The highest stamp applied.
    var latestStamp: Stamp { get }
    /// When the entry expires (wall milliseconds), or nil for never.
    var deadline: WallMillis? { get }
    /// Creates an entry from a change that carries everything a new entry needs; nil otherwise.
    static func creating(from delta: Delta) -> Self?
    /// Applies a change.
    mutating func apply(_ delta: Delta) -> ApplyOutcome<Delta>
    /// Merges another copy; returns whether anything changed.
    mutating func merge(_ other: Self) -> Bool
    /// A digest of every field's stamp, the same on every node for copies that merged the same
    /// changes (anti-entropy compares it; see ``Fingerprint``).
    var fingerprint: UInt64 { get }
    /// The fields that this copy and `other` both wrote from the same version: the same stamp
    /// counter from two different writers. Stamps cannot tell which of two such writes came
    /// later; the higher origin wins (on every node alike), and anti-entropy counts each as a
    /// conflict.
    func conflicts(with other: Self) -> [String]
}

/// A 64-bit FNV-1a hash that is the same in every process (unlike `Hasher`), for fingerprints.
struct Fingerprint {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ number: UInt64) {
        var n = number
        for _ in 0..<8 {
            value = (value ^ (n & 0xff)) &* 0x0000_0100_0000_01b3
            n >>= 8
        }
    }

    mutating func add(_ text: String) {
        for byte in text.utf8 { value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        add(UInt64(text.utf8.count))
    }

    mutating func add(_ stamp: Stamp) {
        add(stamp.counter)
        add(stamp.origin)
    }

    /// The fingerprint of one named stamp, to be combined order-independently (by addition).
    static func of(_ name: String, _ stamp: Stamp) -> UInt64 {
        var print = Fingerprint()
        print.add(name)
        print.add(stamp)
        return print.value
    }
}

/// Where a change came from, for listeners.
public enum ChangeOrigin: String, Sendable, Equatable, CustomStringConvertible {
    /// Made on this node.
    case local
    /// Applied from another node (a delta, a backup copy, or a state transfer).
    case replicated

    public var description: String { rawValue }
}

/// Why an entry went away.
public enum RemovalReason: String, Sendable, Equatable, CustomStringConvertible {
    /// Removed or invalidated by the application.
    case removed
    /// Its idle time or absolute deadline passed.
    case expired
    /// Every node that held a copy left the cluster.
    case lost

    public var description: String { rawValue }
}

/// Something that happened to an entry of a replicated store.
enum ReplicaEvent<Entry: ReplicatedEntry>: Sendable {
    /// A new entry.
    case created(key: String, entry: Entry, origin: ChangeOrigin)
    /// An entry changed; `change` is the part of a delta that took effect (nil after a merge).
    case updated(key: String, entry: Entry, change: Entry.Delta?, origin: ChangeOrigin)
    /// An entry went away.
    case removed(key: String, entry: Entry?, reason: RemovalReason, origin: ChangeOrigin)
    /// An entry moved to a new key.
    case renamed(from: String, to: String, entry: Entry, origin: ChangeOrigin)
    /// Anti-entropy merged a copy whose `fields` were written from the same version as this
    /// node's own (see ``ReplicatedEntry/conflicts(with:)``); `entry` is the merged result.
    case conflict(key: String, fields: [String], entry: Entry)
}

/// The memory of a deleted key, so that late changes cannot bring it back.
struct Tombstone: Sendable, Equatable {
    var stamp: Stamp
    var removedAt: WallMillis
}
