// Fuzz entry points of the sessions layer (this file is the fuzz package's own; the others in
// this folder are the root's CohortSessions sources). Public, so the fuzz targets need no
// @testable import.
import CohortCodecBinary
import CohortCodecJSON
import CohortCore
import FuzzSupport
import NIOCore

/// The message types a node registers (Cohort's own and every replication message), and one
/// real message of each, for the codec targets.
public enum FuzzMessages {
    /// The types, in a fixed order: a codec target's first byte picks one.
    public static let types: [any ClusterMessage.Type] = [TextMessage.self] + ReplicationMessages.all.map { $0 as any ClusterMessage.Type }

    /// A registry holding every type.
    public static func registry() -> MessageRegistry {
        var registry = MessageRegistry()
        for type in types { try! register(type, in: &registry) }
        return registry
    }

    private static func register<M: ClusterMessage>(_ type: M.Type, in registry: inout MessageRegistry) throws {
        try registry.register(type)
    }

    /// Decodes `payload` as the type the selector picks; on success, the message encodes again
    /// and that encoding decodes too.
    public static func decode(selector: UInt8, payload: [UInt8], codec: any MessageCodec) {
        let registry = registry()
        let type = types[Int(selector) % types.count]
        var buffer = ByteBuffer(bytes: payload)
        let message: any ClusterMessage
        do {
            message = try registry.decode(type.messageType, codec: codec, from: &buffer)
        } catch let error as CohortError {
            require(error.code == .codecFailure, "decoding threw \(error.code): \(error)")
            return
        } catch {
            require(false, "decoding threw a foreign error \(error)")
            return
        }
        var again = ByteBuffer()
        do {
            try codec.encode(message, into: &again)
            _ = try registry.decode(type.messageType, codec: codec, from: &again)
        } catch {
            require(false, "a decoded \(type) does not encode and decode again: \(error)")
        }
        // The bodies inside replication messages are what the replicators decode next.
        FuzzSessions.decodeBodies(of: message, codec: codec)
    }

    static let members = [
        MemberID(high: 0x0123_4567_89AB_4CDE, low: 0x8123_4567_89AB_CDEF),
        MemberID(high: 2, low: 3),
        MemberID(high: 4, low: 5),
    ]

    /// One real message of each type, encoded by `codec`: `[selector] + payload`.
    public static func seeds(codec: any MessageCodec) -> [(name: String, bytes: [UInt8])] {
        let location = Location(owner: members[0], backups: [members[1]], stamp: Stamp(counter: 3, origin: 77))
        let delta = try! codec.encode(FuzzSessions.sampleDelta)
        let record = try! codec.encode(FuzzSessions.sampleRecord)
        let batch = try! codec.encode(["s1": FuzzSessions.sampleRecord])
        let messages: [any ClusterMessage] = [
            TextMessage("hello"),
            ReplicaUpdate(store: "app", key: "s1", body: delta),
            ReplicaTransferRequest(store: "app", request: 1),
            ReplicaTransferBatch(store: "app", request: 1, sequence: 0, body: batch, last: true, sourceReady: true),
            BackupStore(store: "app", key: "s1", body: record, location: location),
            BackupUpdate(store: "app", key: "s1", body: delta),
            LocationUpdate(store: "app", locations: ["s1": location, "s2": Location(owner: members[2], backups: [], stamp: Stamp(counter: 1, origin: 5))]),
            LocationRemoval(store: "app", keys: ["s1": Stamp(counter: 4, origin: 77)], reason: .expired),
            LocationsRequest(store: "app", request: 9),
            LocationsBatch(store: "app", request: 9, locations: ["s1": location], last: true),
            FetchRequest(store: "app", request: 12, key: "s1", takeOwnership: true),
            FetchReply(store: "app", request: 12, key: "s1", body: record, location: location),
        ]
        var seeds: [(String, [UInt8])] = []
        for message in messages {
            guard let index = types.firstIndex(where: { $0.messageType == type(of: message).messageType }) else { continue }
            let payload = try! codec.encode(message)
            seeds.append(("\(type(of: message))", [UInt8(index)] + Array(payload.readableBytesView)))
        }
        return seeds
    }
}
