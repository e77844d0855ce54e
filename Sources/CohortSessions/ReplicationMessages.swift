import Cohort
import NIOCore

/// A message of a replicated store; ``store`` names the store it is for.
///
/// Ids 100–199 belong to CohortSessions: 100–109 all-copies stores, 110–129 primary/backup
/// stores. Values, changes and batches travel as bytes encoded with the store's codec, so a
/// value is encoded once however many members receive it.
protocol ReplicaMessage: ClusterMessage {
    /// The store's name.
    var store: String { get }
}

/// A change to one key, for every copy.
struct ReplicaUpdate: ReplicaMessage {
    static let messageType = MessageType(100)
    var store: String
    var key: String
    /// The encoded change.
    var body: ByteBuffer
    /// The newest stamp of the writer's copy when it made the change (nil from a writer that
    /// does not say): a member whose copy holds a newer change from another writer refuses the
    /// change as a conflict, since the writer computed it from a copy that was behind.
    var base: Stamp? = nil
}

/// The two messages sent once per change (``ReplicaUpdate``, ``BackupUpdate``) are encoded as one
/// flat unkeyed container — store, key, body — rather than a map: a map costs the receiver an
/// index of its keys and a lookup per field, on the path every synchronous change waits for.
enum FlatChange {
    static func decode(from decoder: any Decoder) throws -> (store: String, key: String, body: ByteBuffer) {
        var container = try decoder.unkeyedContainer()
        return (try container.decode(String.self), try container.decode(String.self), try container.decode(ByteBuffer.self))
    }

    static func encode(_ store: String, _ key: String, _ body: ByteBuffer, to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(store)
        try container.encode(key)
        try container.encode(body)
    }
}

extension ReplicaUpdate {
    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        store = try container.decode(String.self)
        key = try container.decode(String.self)
        body = try container.decode(ByteBuffer.self)
        base = container.isAtEnd ? nil : try container.decodeStamp()
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(store)
        try container.encode(key)
        try container.encode(body)
        if let base { try container.encode(stamp: base) }
    }
}

extension BackupUpdate {
    init(from decoder: any Decoder) throws { (store, key, body) = try FlatChange.decode(from: decoder) }
    func encode(to encoder: any Encoder) throws { try FlatChange.encode(store, key, body, to: encoder) }
}

/// "Send me all your entries."
struct ReplicaTransferRequest: ReplicaMessage {
    static let messageType = MessageType(101)
    var store: String
    var request: UInt64
    enum CodingKeys: String, CodingKey { case store = "s", request = "r" }
}

/// Part of the answer to a ``ReplicaTransferRequest``.
struct ReplicaTransferBatch: ReplicaMessage {
    static let messageType = MessageType(102)
    var store: String
    var request: UInt64
    var sequence: UInt32
    /// The encoded `[String: Entry]`.
    var body: ByteBuffer
    /// The final batch.
    var last: Bool
    /// Whether the source was ready when it took the snapshot.
    var sourceReady: Bool
    enum CodingKeys: String, CodingKey {
        case store = "s", request = "r", sequence = "q", body = "b", last = "l", sourceReady = "y"
    }
}

/// Where a key's copies are: its owner (primary) and backups, under a stamp.
struct Location: Codable, Sendable, Equatable, CustomStringConvertible {
    var owner: MemberID
    var backups: [MemberID]
    var stamp: Stamp
    enum CodingKeys: String, CodingKey { case owner = "o", backups = "b", stamp = "s" }

    /// Every node holding a copy, owner first.
    var holders: [MemberID] { [owner] + backups }
    var description: String { "owner \(owner) backups \(backups) \(stamp)" }

    /// The most backups a location read from another node may name (far above any
    /// configuration: a store keeps a handful).
    static let maxBackups = 64

    init(owner: MemberID, backups: [MemberID], stamp: Stamp) {
        self.owner = owner
        self.backups = backups
        self.stamp = stamp
    }

    /// Decodes a location: at most ``maxBackups`` backups, none twice, the owner not among them.
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        owner = try c.decode(MemberID.self, forKey: .owner)
        var list = try c.nestedUnkeyedContainer(forKey: .backups)
        if let count = list.count, count > Self.maxBackups {
            throw DecodingError.dataCorruptedError(forKey: .backups, in: c, debugDescription: "a location names \(count) backups, more than \(Self.maxBackups)")
        }
        var backups: [MemberID] = []
        while !list.isAtEnd {
            let backup = try list.decode(MemberID.self)
            guard backups.count < Self.maxBackups, backup != owner, !backups.contains(backup) else {
                throw DecodingError.dataCorruptedError(forKey: .backups, in: c, debugDescription: "a location names more than \(Self.maxBackups) backups, its owner as a backup, or a backup twice")
            }
            backups.append(backup)
        }
        self.backups = backups
        stamp = try c.decode(Stamp.self, forKey: .stamp)
    }
}

/// A full copy of an entry for a node that holds (or is about to hold) a copy.
struct BackupStore: ReplicaMessage {
    static let messageType = MessageType(110)
    var store: String
    var key: String
    /// The encoded entry.
    var body: ByteBuffer
    var location: Location
    enum CodingKeys: String, CodingKey { case store = "s", key = "k", body = "b", location = "l" }
}

/// A change for the backups of a key.
struct BackupUpdate: ReplicaMessage {
    static let messageType = MessageType(111)
    var store: String
    var key: String
    /// The encoded change.
    var body: ByteBuffer
}

/// New locations of keys (owner changes, new backups), for every node's location table.
struct LocationUpdate: ReplicaMessage {
    static let messageType = MessageType(112)
    var store: String
    var locations: [String: Location]
    enum CodingKeys: String, CodingKey { case store = "s", locations = "l" }
}

/// Keys that are gone (removed or expired by their owner), with the removal stamps.
struct LocationRemoval: ReplicaMessage {
    static let messageType = MessageType(113)
    var store: String
    var keys: [String: Stamp]
    var reason: RemovalReason
    enum CodingKeys: String, CodingKey { case store = "s", keys = "k", reason = "r" }
}

/// "Send me the locations of the keys you own" (a starting node asks every member).
struct LocationsRequest: ReplicaMessage {
    static let messageType = MessageType(114)
    var store: String
    var request: UInt64
    enum CodingKeys: String, CodingKey { case store = "s", request = "r" }
}

/// Part of the answer to a ``LocationsRequest``.
struct LocationsBatch: ReplicaMessage {
    static let messageType = MessageType(115)
    var store: String
    var request: UInt64
    var locations: [String: Location]
    var last: Bool
    enum CodingKeys: String, CodingKey { case store = "s", request = "r", locations = "l", last = "z" }
}

/// "Send me your copy of a key" (a miss on a node that holds no copy), optionally handing
/// ownership over.
struct FetchRequest: ReplicaMessage {
    static let messageType = MessageType(116)
    var store: String
    var request: UInt64
    var key: String
    var takeOwnership: Bool
    enum CodingKeys: String, CodingKey { case store = "s", request = "r", key = "k", takeOwnership = "t" }
}

/// The answer to a ``FetchRequest``: the entry (nil when unknown) and its location.
struct FetchReply: ReplicaMessage {
    static let messageType = MessageType(117)
    var store: String
    var request: UInt64
    var key: String
    var body: ByteBuffer?
    var location: Location?
    enum CodingKeys: String, CodingKey { case store = "s", request = "r", key = "k", body = "b", location = "l" }
}

extension RemovalReason: Codable {}

/// What a node holds of a key, for anti-entropy: the newest stamp and a fingerprint of every
/// field's stamp (``ReplicatedEntry/fingerprint``), or the stamp of its deletion.
struct DigestItem: Codable, Sendable, Equatable {
    var stamp: Stamp
    var fingerprint: UInt64
    var deleted: Bool
    enum CodingKeys: String, CodingKey { case stamp = "s", fingerprint = "f", deleted = "d" }
}

/// Anti-entropy: "this is what I hold" (part of it: one batch of keys). The receiver pulls the
/// keys where the sender's copy differs from its own (``ReplicaKeysRequest``) and, unless this
/// is itself a reply, answers with a digest of the keys where its own copy differs or the sender
/// has none, so that the sender pulls those.
struct ReplicaDigest: ReplicaMessage {
    static let messageType = MessageType(103)
    var store: String
    /// The encoded `[String: DigestItem]`.
    var body: ByteBuffer
    /// An answer to a digest (not answered again).
    var reply: Bool
    /// The batch covers the keys after this one (nil: from the first key) …
    var after: String?
    /// … up to this one, included (nil: to the last key). Keys the receiver holds in that range
    /// that the batch does not name are missing on the sender: a digest that is not a reply is
    /// answered with them.
    var through: String?
    enum CodingKeys: String, CodingKey { case store = "s", body = "b", reply = "r", after = "a", through = "t" }
}

/// Anti-entropy: "send me your copies of these keys".
struct ReplicaKeysRequest: ReplicaMessage {
    static let messageType = MessageType(104)
    var store: String
    var request: UInt64
    var keys: [String]
    enum CodingKeys: String, CodingKey { case store = "s", request = "r", keys = "k" }

    /// The most keys one request may name.
    static let maxKeys = 10_000

    init(store: String, request: UInt64, keys: [String]) {
        self.store = store
        self.request = request
        self.keys = keys
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        store = try c.decode(String.self, forKey: .store)
        request = try c.decode(UInt64.self, forKey: .request)
        var list = try c.nestedUnkeyedContainer(forKey: .keys)
        if let count = list.count, count > Self.maxKeys {
            throw DecodingError.dataCorruptedError(forKey: .keys, in: c, debugDescription: "a keys request names \(count) keys, more than \(Self.maxKeys)")
        }
        var keys: [String] = []
        while !list.isAtEnd {
            guard keys.count < Self.maxKeys else {
                throw DecodingError.dataCorruptedError(forKey: .keys, in: c, debugDescription: "a keys request names more than \(Self.maxKeys) keys")
            }
            keys.append(try list.decode(String.self))
        }
        self.keys = keys
    }
}

/// The answer to a ``ReplicaKeysRequest``: the copies and deletions the sender holds of them.
struct ReplicaKeysReply: ReplicaMessage {
    static let messageType = MessageType(105)
    var store: String
    var request: UInt64
    /// The encoded `[String: Entry]`.
    var entries: ByteBuffer
    /// Deleted keys with their deletion stamps.
    var deleted: [String: Stamp]
    enum CodingKeys: String, CodingKey { case store = "s", request = "r", entries = "e", deleted = "d" }
}

/// Every message type of the replicated stores, as the replication router registers them (the
/// fuzz targets decode each of them; a test checks the list against the router).
enum ReplicationMessages {
    static let all: [any ReplicaMessage.Type] = [
        ReplicaUpdate.self, ReplicaTransferRequest.self, ReplicaTransferBatch.self,
        BackupStore.self, BackupUpdate.self, LocationUpdate.self, LocationRemoval.self,
        LocationsRequest.self, LocationsBatch.self, FetchRequest.self, FetchReply.self,
        ReplicaDigest.self, ReplicaKeysRequest.self, ReplicaKeysReply.self,
    ]
}
