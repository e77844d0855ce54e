import Cohort
import CohortCodecBinary
import CohortCodecJSON
import Foundation
import NIOCore
import Testing
@testable import CohortSessions

/// A value written as one flat unkeyed container, element by element, so a test can forge any
/// session delta or record the way a hostile peer would (a count that lies, a stamp at the edge).
struct Flat: Encodable {
    enum Value {
        case u8(UInt8), u64(UInt64), i64(Int64), int(Int), text(String), bytes([UInt8]), null
    }

    var values: [Value]

    func encode(to encoder: any Encoder) throws {
        var c = encoder.unkeyedContainer()
        for value in values {
            switch value {
            case .u8(let v): try c.encode(v)
            case .u64(let v): try c.encode(v)
            case .i64(let v): try c.encode(v)
            case .int(let v): try c.encode(v)
            case .text(let v): try c.encode(v)
            case .bytes(let v): try c.encode(ByteBuffer(bytes: v))
            case .null: try c.encodeNil()
            }
        }
    }

    /// A session delta (format 1): id, stamp, field bits, the fields, then an attribute count and
    /// the attributes as given.
    static func delta(id: String = "s1", counter: UInt64 = 1, origin: UInt64 = 7, fields: UInt8 = 0, _ rest: [Value]) -> Flat {
        Flat(values: [.u8(1), .text(id), .u64(counter), .u64(origin), .u8(fields)] + rest)
    }
}

/// Every number a peer sends is hostile: counts are bounded by the bytes that are really there,
/// stamps and times are checked on decode, and arithmetic on them saturates (issue 15).
@Suite struct HostileInputTests {
    static let codecs: [any MessageCodec] = [BinaryCodec(), JSONCodec()]

    func expectCodecFailure<T: Decodable>(_ type: T.Type, _ value: some Encodable, _ codec: any MessageCodec, mentioning text: String? = nil) throws {
        let bytes = try codec.encode(value)
        let error = #expect(throws: CohortError.self) { try codec.decodeValue(type, from: bytes, what: "forged input") }
        #expect(error?.code == .codecFailure)
        if let text { #expect("\(error.map { "\($0)" } ?? "")".contains(text), "\(String(describing: error))") }
    }

    // MARK: - counts

    /// An anti-entropy pull naming more keys than one request may is refused while decoding,
    /// before the keys are collected (a peer cannot make a node serve an unbounded reply).
    @Test(arguments: [0, 1]) func keysRequestNamingTooManyKeysIsRefused(codec: Int) throws {
        let keys = (0...ReplicaKeysRequest.maxKeys).map { "k\($0)" }
        let forged = ReplicaKeysRequest(store: "sessions/app", request: 1, keys: keys)
        try expectCodecFailure(ReplicaKeysRequest.self, forged, Self.codecs[codec], mentioning: "more than \(ReplicaKeysRequest.maxKeys)")
        let fine = ReplicaKeysRequest(store: "sessions/app", request: 2, keys: Array(keys.prefix(3)))
        let decoded = try Self.codecs[codec].decodeValue(ReplicaKeysRequest.self, from: Self.codecs[codec].encode(fine), what: "keys request")
        #expect(decoded.keys == ["k0", "k1", "k2"])
    }

    /// The crash of issue 15: a delta announcing 2^50 attributes made `Dictionary(minimumCapacity:)`
    /// ask for 90 PB. Now the count is checked against the values that follow.
    @Test(arguments: [0, 1]) func deltaAnnouncingTwoToTheFiftyAttributesIsRefused(codec: Int) throws {
        let forged = Flat.delta([.int(1 << 50), .text("a"), .bytes([1])])
        try expectCodecFailure(SessionDelta.self, forged, Self.codecs[codec], mentioning: "attributes announced")
    }

    @Test(arguments: [0, 1]) func recordAnnouncingMoreAttributesThanItCarriesIsRefused(codec: Int) throws {
        var values: [Flat.Value] = [.u8(1), .text("s1"), .i64(1_000), .i64(1_000), .u64(1), .u64(1), .u64(7)]
        values += [.i64(60_000), .u64(1), .u64(7), .null, .u64(0), .u64(0), .null, .u64(0), .u64(0)]
        values += [.int(Int.max), .text("a"), .null, .u64(1), .u64(7)]
        try expectCodecFailure(SessionRecord.self, Flat(values: values), Self.codecs[codec], mentioning: "attributes announced")
        values[16] = .int(-1)
        try expectCodecFailure(SessionRecord.self, Flat(values: values), Self.codecs[codec], mentioning: "negative count")
        values[16] = .int(1)
        let record = try Self.codecs[codec].decodeValue(SessionRecord.self, from: Self.codecs[codec].encode(Flat(values: values)), what: "record")
        #expect(record.attributes.count == 1)
    }

    @Test(arguments: [0, 1]) func honestDeltaWithAttributesStillDecodes(codec: Int) throws {
        var delta = SessionDelta(sessionID: "s1", stamp: Stamp(counter: 3, origin: 7))
        delta.attributes = ["a": ByteBuffer(bytes: [1]), "b": nil]
        let codec = Self.codecs[codec]
        #expect(try codec.decodeValue(SessionDelta.self, from: codec.encode(delta), what: "delta") == delta)
    }

    // MARK: - stamps

    @Test(arguments: [0, 1]) func stampAboveTheCapIsRefused(codec: Int) throws {
        let codec = Self.codecs[codec]
        try expectCodecFailure(SessionDelta.self, Flat.delta(counter: .max, []), codec, mentioning: "stamp")
        try expectCodecFailure(Stamp.self, Stamp(counter: Stamp.maxCounter + 1, origin: 1), codec, mentioning: "stamp")
        try expectCodecFailure(MapEntry.Delta.self, MapEntry.Delta(stamp: Stamp(counter: .max, origin: 1), value: nil, expiresAt: nil), codec)
        let top = Stamp(counter: Stamp.maxCounter, origin: 1)
        #expect(try codec.decodeValue(Stamp.self, from: codec.encode(top), what: "stamp") == top)
    }

    /// `seen + 1` on a stored counter at the top traps no more: counting saturates.
    @Test func nextStampSaturatesInBothStores() {
        var copies = AllCopiesState<MapEntry>(local: testMember(1).id)
        let top = MapEntry.Delta(stamp: Stamp(counter: Stamp.maxCounter, origin: 9), value: ByteBuffer(bytes: [1]), expiresAt: nil)
        _ = copies.onRemoteDelta("k", top, now: 0)
        #expect(copies.nextStamp(for: "k").counter == Stamp.maxCounter)
        var owned = PrimaryBackupState<MapEntry>(local: testMember(1).id)
        let location = Location(owner: testMember(2).id, backups: [], stamp: Stamp(counter: Stamp.maxCounter, origin: 9))
        _ = owned.onLocate(["k": location], now: 0)
        #expect(owned.nextEntryStamp(for: "k").counter == Stamp.maxCounter)
        #expect(owned.nextLocationStamp(for: "k").counter == Stamp.maxCounter)
        #expect(owned.remove("k", now: 0).stamp.counter == Stamp.maxCounter)
        #expect(Stamp.after(.max, origin: 1).counter == Stamp.maxCounter)
    }

    // MARK: - times

    /// `lastAccessedTime + maxInactive` overflowed Int64 in `deadline`, which the sweep reads
    /// every second. Now it saturates: such a session never idles out.
    @Test func deadlineSaturates() throws {
        var delta = SessionDelta(sessionID: "s1", stamp: Stamp(counter: 1, origin: 7))
        delta.creation = .init(creationTime: ReceivedTime.maxWallMillis)
        delta.maxInactive = .max
        var record = try #require(SessionRecord.creating(from: delta))
        #expect(record.deadline == .max)
        var store = AllCopiesState<SessionRecord>(local: testMember(1).id)
        _ = store.onRemoteDelta("s1", delta, now: 0)
        _ = store.sweep(now: .max)
        #expect(store.entries["s1"] == nil)
        record.maxInactive = Stamped(value: .min, stamp: .zero)
        #expect(record.deadline == nil)
        #expect(Duration.milliseconds(Int64.min).milliseconds == .min)
        #expect(Duration.seconds(Int64.max).milliseconds == .max)
    }

    @Test(arguments: [0, 1]) func implausibleTimesAreRefused(codec: Int) throws {
        let codec = Self.codecs[codec]
        // creation (bit 0) at Int64.max, access (bit 1) at Int64.min, absolute expiry (bit 3).
        try expectCodecFailure(SessionDelta.self, Flat.delta(fields: 1, [.i64(.max)]), codec, mentioning: "creation time")
        try expectCodecFailure(SessionDelta.self, Flat.delta(fields: 2, [.i64(.min)]), codec, mentioning: "access time")
        try expectCodecFailure(SessionDelta.self, Flat.delta(fields: 8, [.i64(.min)]), codec, mentioning: "absolute expiry")
        try expectCodecFailure(MapEntry.self, MapEntry(value: ByteBuffer(), stamp: Stamp(counter: 1, origin: 1), expiresAt: .min), codec, mentioning: "deadline")
        // The extremes that pass.
        let edge = try codec.decodeValue(SessionDelta.self, from: codec.encode(Flat.delta(fields: 3, [.i64(ReceivedTime.maxWallMillis), .i64(-ReceivedTime.maxWallMillis)])), what: "delta")
        #expect(edge.creation?.creationTime == ReceivedTime.maxWallMillis)
        #expect(Date(wallMillis: ReceivedTime.maxWallMillis).wallMillis == ReceivedTime.maxWallMillis)
    }

    // MARK: - locations

    @Test(arguments: [0, 1]) func locationsNamingTooManyOrRepeatedBackupsAreRefused(codec: Int) throws {
        let codec = Self.codecs[codec]
        let owner = testMember(1).id
        let many = (0..<UInt64(Location.maxBackups + 1)).map { MemberID(high: 9, low: $0) }
        try expectCodecFailure(Location.self, Location(owner: owner, backups: many, stamp: .zero), codec)
        try expectCodecFailure(Location.self, Location(owner: owner, backups: [owner], stamp: .zero), codec)
        try expectCodecFailure(Location.self, Location(owner: owner, backups: [many[0], many[0]], stamp: .zero), codec)
        let fine = Location(owner: owner, backups: Array(many.prefix(2)), stamp: Stamp(counter: 2, origin: 3))
        #expect(try codec.decodeValue(Location.self, from: codec.encode(fine), what: "location") == fine)
    }

    // MARK: - unsolicited answers

    @Test func unsolicitedTransferBatchIsRefusedAndNotMerged() {
        let me = testMember(5), source = testMember(1), stranger = testMember(2)
        var state = AllCopiesState<MapEntry>(local: me.id)
        let start = state.onStart(members: [source, stranger], now: 0)
        guard case .requestTransfer(let asked, let request)? = start.first else { Issue.record("no transfer request: \(start)"); return }
        #expect(asked == source.id)
        let entry = MapEntry(value: ByteBuffer(bytes: [1]), stamp: Stamp(counter: 1, origin: 1), expiresAt: nil)
        // From a member not asked, or under another request: refused, nothing merged.
        for (from, number) in [(stranger.id, request), (source.id, request + 1)] {
            let actions = state.onTransferBatch(from: from, request: number, entries: ["forged": entry], last: true, sourceReady: true, now: 1)
            #expect(actions.contains { if case .refused = $0 { true } else { false } })
            #expect(state.entries["forged"] == nil)
        }
        // The batch asked for is merged.
        _ = state.onTransferBatch(from: source.id, request: request, entries: ["real": entry], last: true, sourceReady: true, now: 2)
        #expect(state.entries["real"] != nil)
        // After the last batch the same request is closed.
        let late = state.onTransferBatch(from: source.id, request: request, entries: ["late": entry], last: true, sourceReady: true, now: 3)
        #expect(late.contains { if case .refused = $0 { true } else { false } })
        #expect(state.entries["late"] == nil)
    }

    @Test func unsolicitedLocationsBatchIsRefused() {
        let me = testMember(5), peer = testMember(1), stranger = testMember(2)
        var state = PrimaryBackupState<MapEntry>(local: me.id)
        let start = state.onStart(members: [peer], now: 0)
        guard case .requestLocations(_, let request)? = start.first else { Issue.record("no locations request: \(start)"); return }
        let location = Location(owner: stranger.id, backups: [], stamp: Stamp(counter: 1, origin: 1))
        let refused = state.onLocationsBatch(from: stranger.id, request: request, locations: ["forged": location], last: true, now: 1)
        #expect(refused.contains { if case .refused = $0 { true } else { false } })
        #expect(state.locations["forged"] == nil)
        _ = state.onLocationsBatch(from: peer.id, request: request, locations: ["real": location], last: true, now: 1)
        #expect(state.locations["real"] != nil)
        let late = state.onLocationsBatch(from: peer.id, request: request, locations: ["late": location], last: true, now: 2)
        #expect(late.contains { if case .refused = $0 { true } else { false } })
        #expect(state.locations["late"] == nil)
    }

    /// Changes for unknown keys wait while a transfer runs, up to a cap: a flood of them cannot
    /// grow a starting node without bound.
    @Test func orphansAreCapped() {
        var dropped = 0
        var typed = AllCopiesState<SessionRecord>(local: testMember(5).id, settings: .init(maxOrphans: 3))
        _ = typed.onStart(members: [testMember(1)], now: 0)
        for n in 0..<10 {
            var access = SessionDelta(sessionID: "s\(n)", stamp: Stamp(counter: 2, origin: 1))
            access.lastAccessedTime = 5
            for action in typed.onRemoteDelta("s\(n)", access, now: 0) {
                if case .droppedOrphans(let count) = action { dropped += count }
            }
        }
        #expect(typed.orphanCount == 3)
        #expect(dropped == 7)
    }

    /// Found by the `states` fuzz target: a session id change onto an id that was deleted left
    /// the key both live and deleted. Now an older rename stays deleted, a newer one replaces
    /// the deletion.
    @Test func renameOntoADeletedKeyNeverLeavesItLiveAndDeleted() {
        func delta(_ id: String, _ counter: UInt64, create: Bool = false, newID: String? = nil, invalidate: Bool = false) -> SessionDelta {
            var delta = SessionDelta(sessionID: id, stamp: Stamp(counter: counter, origin: 7))
            if create { delta.creation = .init(creationTime: 1_000) }
            delta.newID = newID
            delta.invalidated = invalidate
            return delta
        }
        var state = AllCopiesState<SessionRecord>(local: testMember(5).id)
        _ = state.onStart(members: [], now: 0)
        _ = state.onTick(now: 10_000)
        #expect(state.isReady)
        _ = state.onRemoteDelta("a", delta("a", 1, create: true), now: 0)
        _ = state.onRemoteDelta("b", delta("b", 5, invalidate: true), now: 0)
        #expect(state.tombstones["b"] != nil)
        // An older rename a → b: b stays deleted, a is gone.
        _ = state.onRemoteDelta("a", delta("a", 2, newID: "b"), now: 0)
        #expect(state.entries["b"] == nil && state.tombstones["b"] != nil)
        #expect(state.entries["a"] == nil)
        // A newer creation with a rename c → b replaces the deletion.
        _ = state.onRemoteDelta("c", delta("c", 9, create: true, newID: "b"), now: 0)
        #expect(state.entries["b"] != nil && state.tombstones["b"] == nil)
        for key in state.entries.keys { #expect(state.tombstones[key] == nil, "\(key) is live and deleted") }
    }

    /// The same for a backup copy renamed by its owner's change: the new key gets the location
    /// only when no newer removal of it is known.
    @Test func backupRenameOntoARemovedKeyNeverLeavesItLocatedAndRemoved() {
        let me = testMember(5), owner = testMember(1)
        var state = PrimaryBackupState<SessionRecord>(local: me.id)
        _ = state.onStart(members: [owner], now: 0)
        var create = SessionDelta(sessionID: "a", stamp: Stamp(counter: 1, origin: 7))
        create.creation = .init(creationTime: 1_000)
        let record = SessionRecord.creating(from: create)!
        _ = state.onStore("a", entry: record, location: Location(owner: owner.id, backups: [me.id], stamp: Stamp(counter: 3, origin: 7)), now: 0)
        _ = state.onRemoveLocations(["b": Stamp(counter: 5, origin: 7)], reason: .removed, now: 0)
        var rename = SessionDelta(sessionID: "a", stamp: Stamp(counter: 2, origin: 7))
        rename.newID = "b"
        _ = state.onUpdate("a", delta: rename, now: 0)
        #expect(state.locations["b"] == nil && state.tombstones["b"] != nil)
        for key in state.locations.keys { #expect(state.tombstones[key] == nil, "\(key) is located and removed") }
    }

    /// The list the fuzz targets decode names every replication message id once.
    @Test func replicationMessageListIsComplete() throws {
        let ids = ReplicationMessages.all.map { $0.messageType.rawValue }
        #expect(Set(ids).count == ids.count)
        #expect(Set(ids) == [100, 101, 102, 103, 104, 105, 110, 111, 112, 113, 114, 115, 116, 117])
    }
}
