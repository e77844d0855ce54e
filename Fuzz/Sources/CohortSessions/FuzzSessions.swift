import CohortCodecBinary
import CohortCodecJSON
import CohortCore
import Foundation
import FuzzSupport
import NIOCore

/// Fuzz target `sessions`: session deltas, session records, transfer batches and map entries,
/// with both codecs, and what a node does with a decoded one (apply, merge, expiry).
public enum FuzzSessions {
    static let codecs: [any MessageCodec] = [BinaryCodec(), JSONCodec()]

    /// What the first byte picks: the type (low 3 bits) and the codec (bit 3).
    public static func run(_ bytes: [UInt8]) {
        guard let selector = bytes.first else { return }
        let codec = codecs[Int(selector >> 3) & 1]
        let body = ByteBuffer(bytes: bytes.dropFirst())
        switch selector & 7 {
        case 0: exercise(decode(SessionDelta.self, body, codec))
        case 1: exercise(decode(SessionRecord.self, body, codec))
        case 2: decode([String: SessionRecord].self, body, codec).map { for record in $0.values { exercise(record) } }
        case 3: exercise(decode(MapEntry.Delta.self, body, codec))
        case 4: exercise(decode(MapEntry.self, body, codec))
        case 5: decode([String: MapEntry].self, body, codec).map { for entry in $0.values { exercise(entry) } }
        case 6: decode(Location.self, body, codec).map(check)
        default: decode([String: Stamp].self, body, codec).map { for stamp in $0.values { check(stamp) } }
        }
    }

    static func decode<Value: Decodable>(_ type: Value.Type, _ body: ByteBuffer, _ codec: any MessageCodec) -> Value? {
        do {
            var bytes = body
            return try codec.decode(type, from: &bytes)
        } catch let error as CohortError {
            require(error.code == .codecFailure, "decoding \(type) threw \(error.code)")
            return nil
        } catch {
            require(false, "decoding \(type) threw a foreign error \(error)")
            return nil
        }
    }

    /// Decodes the bodies a replicator decodes, as its entry type would (session records).
    static func decodeBodies(of message: any ClusterMessage, codec: any MessageCodec) {
        switch message {
        case let update as ReplicaUpdate: exercise(decode(SessionDelta.self, update.body, codec)); exercise(decode(MapEntry.Delta.self, update.body, codec))
        case let update as BackupUpdate: exercise(decode(SessionDelta.self, update.body, codec))
        case let store as BackupStore: exercise(decode(SessionRecord.self, store.body, codec)); check(store.location)
        case let batch as ReplicaTransferBatch: decode([String: SessionRecord].self, batch.body, codec).map { for record in $0.values { exercise(record) } }
        case let reply as FetchReply: reply.body.map { exercise(decode(SessionRecord.self, $0, codec)) }; reply.location.map(check)
        case let update as LocationUpdate: update.locations.values.forEach(check)
        case let batch as LocationsBatch: batch.locations.values.forEach(check)
        case let removal as LocationRemoval: removal.keys.values.forEach(check)
        default: break
        }
    }

    static func check(_ stamp: Stamp) {
        require(stamp.counter <= Stamp.maxCounter, "a stamp above the cap was decoded")
    }

    static func check(_ location: Location) {
        check(location.stamp)
        require(location.backups.count <= Location.maxBackups && !location.backups.contains(location.owner)
            && Set(location.backups).count == location.backups.count, "an inconsistent location was decoded")
    }

    static func checkWall(_ time: WallMillis?) {
        guard let time else { return }
        require(time.magnitude <= UInt64(ReceivedTime.maxWallMillis), "an implausible time was decoded: \(time)")
        // What the node does with a time: a Date, and back.
        _ = Date(wallMillis: time).wallMillis
    }

    static let now: WallMillis = 1_700_000_000_000

    static func exercise(_ delta: SessionDelta?) {
        guard let delta else { return }
        check(delta.stamp)
        checkWall(delta.creation?.creationTime)
        checkWall(delta.lastAccessedTime)
        checkWall(delta.absoluteExpiry?.value)
        if var record = SessionRecord.creating(from: delta) {
            exercise(record)
            var next = delta
            next.stamp = Stamp.after(delta.stamp.counter, origin: 1)
            _ = record.apply(next)
            exercise(record)
        }
        var record = sampleRecord
        _ = record.apply(delta)
        exercise(record)
        // The session a request sees, and its idle limit as a Duration and back.
        _ = Duration.milliseconds(record.maxInactive.value).milliseconds
    }

    static func exercise(_ record: SessionRecord?) {
        guard let record else { return }
        check(record.latestStamp)
        require(record.version <= Stamp.maxCounter, "a version above the cap")
        checkWall(record.creationTime)
        checkWall(record.lastAccessedTime)
        checkWall(record.absoluteExpiry.value)
        for slot in record.attributes.values { check(slot.stamp) }
        if let deadline = record.deadline {
            // What the key-value API computes from a deadline.
            _ = deadline.addingSaturated(-now)
            require(deadline >= -ReceivedTime.maxWallMillis, "a deadline before every valid time")
        }
        var merged = sampleRecord
        _ = merged.merge(record)
        var other = record
        _ = other.merge(sampleRecord)
        require(merged.attributes.keys.sorted() == other.attributes.keys.sorted(), "merge is not symmetric in its keys")
    }

    static func exercise(_ delta: MapEntry.Delta?) {
        guard let delta else { return }
        check(delta.stamp)
        checkWall(delta.expiresAt)
        if var entry = MapEntry.creating(from: delta) { _ = entry.apply(delta) }
    }

    static func exercise(_ entry: MapEntry?) {
        guard let entry else { return }
        check(entry.stamp)
        checkWall(entry.expiresAt)
    }

    static var sampleDelta: SessionDelta {
        var delta = SessionDelta(sessionID: "s1", stamp: Stamp(counter: 5, origin: 77))
        delta.creation = .init(creationTime: now)
        delta.lastAccessedTime = now + 10
        delta.maxInactive = 1_800_000
        delta.absoluteExpiry = Change(value: now + 86_400_000)
        delta.principal = Change(value: "ada")
        delta.attributes = ["cart": ByteBuffer(bytes: [1, 2, 3]), "gone": nil]
        return delta
    }

    static var sampleRecord: SessionRecord {
        SessionRecord.creating(from: sampleDelta)!
    }

    public static func seeds() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        for (index, codec) in codecs.enumerated() {
            let flag = UInt8(index) << 3
            func add(_ name: String, _ kind: UInt8, _ value: some Encodable) {
                let bytes = try! codec.encode(value)
                seeds.append(("\(name)-\(codec.name)", [flag | kind] + Array(bytes.readableBytesView)))
            }
            var access = SessionDelta(sessionID: "s1", stamp: Stamp(counter: 6, origin: 77))
            access.lastAccessedTime = now + 20
            var renamed = SessionDelta(sessionID: "s1", stamp: Stamp(counter: 7, origin: 77))
            renamed.newID = "s2"
            var invalidated = SessionDelta(sessionID: "s2", stamp: Stamp(counter: 8, origin: 77))
            invalidated.invalidated = true
            add("delta-full", 0, sampleDelta)
            add("delta-access", 0, access)
            add("delta-rename", 0, renamed)
            add("delta-invalidate", 0, invalidated)
            add("record", 1, sampleRecord)
            add("batch", 2, ["s1": sampleRecord, "s3": sampleRecord])
            add("map-delta", 3, MapEntry.Delta(stamp: Stamp(counter: 2, origin: 9), value: ByteBuffer(bytes: [9]), expiresAt: now))
            add("map-entry", 4, MapEntry(value: ByteBuffer(bytes: [9, 9]), stamp: Stamp(counter: 2, origin: 9), expiresAt: nil))
            add("map-batch", 5, ["k": MapEntry(value: ByteBuffer(bytes: [1]), stamp: Stamp(counter: 1, origin: 1), expiresAt: now)])
            add("location", 6, Location(owner: FuzzMessages.members[0], backups: [FuzzMessages.members[1]], stamp: Stamp(counter: 3, origin: 2)))
            add("removals", 7, ["a": Stamp(counter: 3, origin: 2), "b": Stamp(counter: 1, origin: 1)])
        }
        return seeds
    }
}
