import Cohort
import CohortDiscoveryMulticast
import NIOCore
import Testing

/// Signed multicast datagrams (shared-key mode): a MAC under the cluster key and a time window.
@Suite("Multicast discovery: datagram MAC")
struct MulticastMACTests {
    let b = Member(name: "b", endpoint: Endpoint(host: "10.231.0.2", port: 4000), metadata: ["zone": "z1"], startTime: 2)
    let k1 = ClusterKey.generate(id: 1)
    let k2 = ClusterKey.generate(id: 2)
    let now: Int64 = 1_800_000_000_000

    func decode(_ buffer: ByteBuffer, keys: [ClusterKey], at time: Int64) -> Result<MulticastDatagram.Decoded, MulticastDatagram.DecodeError> {
        do throws(MulticastDatagram.DecodeError) {
            return .success(try MulticastDatagram.decode(buffer, keys: keys, now: time, window: .seconds(30)))
        } catch {
            return .failure(error)
        }
    }

    func isUnauthenticated(_ result: Result<MulticastDatagram.Decoded, MulticastDatagram.DecodeError>) -> Bool {
        if case .failure(.unauthenticated) = result { return true }
        return false
    }

    @Test func aSignedDatagramIsReadByHoldersOfTheKeyWithinTheWindow() throws {
        let signed = try MulticastDatagram.encode(.alive, member: b, signing: k1, time: now)
        #expect(signed.getInteger(at: 4, as: UInt8.self) == MulticastDatagram.signedVersion)
        let decoded = try decode(signed, keys: [k1], at: now + 5_000).get()
        #expect(decoded.kind == .alive && decoded.member.id == b.id && decoded.member.metadata == b.metadata)
        // During a rotation a node holding both keys reads either.
        let newer = try MulticastDatagram.encode(.leave, member: b, signing: k2, time: now)
        #expect(try decode(newer, keys: [k1, k2], at: now).get().kind == .leave)
    }

    @Test func unsignedForgedAlteredOrReplayedDatagramsAreIgnored() throws {
        // A stranger's unsigned datagram.
        #expect(isUnauthenticated(decode(try MulticastDatagram.encode(.alive, member: b), keys: [k1], at: now)))
        // Signed with a key this node does not hold, or another secret under the same id.
        let other = ClusterKey.generate(id: 1)
        #expect(isUnauthenticated(decode(try MulticastDatagram.encode(.alive, member: b, signing: other, time: now), keys: [k1], at: now)))
        #expect(isUnauthenticated(decode(try MulticastDatagram.encode(.alive, member: b, signing: k2, time: now), keys: [k1], at: now)))
        // Any byte changed: kind, record (the address), time.
        let signed = try MulticastDatagram.encode(.alive, member: b, signing: k1, time: now)
        let bytes = Array(signed.readableBytesView)
        for offset in [5, MulticastDatagram.headerSize + 30, bytes.count - 33] {
            var altered = bytes
            altered[offset] ^= 0x01
            let result = decode(ByteBuffer(bytes: altered), keys: [k1], at: now)
            if case .success = result { Issue.record("byte \(offset) altered and still accepted") }
        }
        // Captured and replayed later than the window, or sent from a clock far ahead.
        #expect(isUnauthenticated(decode(signed, keys: [k1], at: now + 31_000)))
        #expect(isUnauthenticated(decode(signed, keys: [k1], at: now - 31_000)))
        // Every truncation is refused without trapping.
        for length in 0..<bytes.count {
            if case .success = decode(ByteBuffer(bytes: bytes[0..<length]), keys: [k1], at: now) { Issue.record("truncated to \(length) accepted") }
        }
    }

    @Test func aNodeWithoutKeysDoesNotReadSignedDatagrams() throws {
        let signed = try MulticastDatagram.encode(.alive, member: b, signing: k1, time: now)
        #expect(throws: MulticastDatagram.DecodeError.incompatibleVersion(MulticastDatagram.signedVersion)) {
            try MulticastDatagram.decode(signed)
        }
    }

    @Test func theKeysReachTheMulticastSettings() throws {
        let configuration = try MulticastDiscoveryConfiguration(settings: ["clusterKeys": "\(k1.text),\(k2.text)", "macWindowMs": "5000"])
        #expect(configuration.keys == [k1, k2])
        #expect(configuration.macWindow == .seconds(5))
    }
}
