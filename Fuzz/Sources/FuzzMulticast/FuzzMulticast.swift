// Fuzz target `multicast`: the multicast discovery datagram
// (Plugins/CohortDiscoveryMulticast/Sources/MulticastDatagram.swift). The input is one datagram.
import CohortCore
import CohortDiscoveryMulticast
import FuzzSupport
import NIOCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMulticast(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    let decoded: MulticastDatagram.Decoded
    do throws(MulticastDatagram.DecodeError) {
        decoded = try MulticastDatagram.decode(ByteBuffer(bytes: bytes))
    } catch {
        return 0
    }
    require(!decoded.member.endpoint.host.isEmpty && (1...65535).contains(decoded.member.endpoint.port), "an unusable address was accepted")
    // A decoded datagram encodes (it came in one datagram) and decodes back to the same.
    guard let again = try? MulticastDatagram.encode(decoded.kind, member: decoded.member) else {
        require(bytes.count > MulticastDatagram.maximumSize, "a decoded datagram does not encode")
        return 0
    }
    do throws(MulticastDatagram.DecodeError) {
        let copy = try MulticastDatagram.decode(again)
        require(copy.kind == decoded.kind && copy.member.id == decoded.member.id && copy.member.endpoint == decoded.member.endpoint
            && copy.member.name == decoded.member.name && copy.member.metadata == decoded.member.metadata, "a datagram does not round-trip")
    } catch {
        // Strings repaired to valid UTF-8 on the way in may have grown past a field's length.
    }
    return 0
}

@_cdecl("LLVMFuzzerInitialize")
public func initializeMulticast(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    Seeds.writeIfAsked(multicastSeeds())
    return 0
}

private func multicastSeeds() -> [(name: String, bytes: [UInt8])] {
    let members = [
        Member(id: MemberID(high: 0x0123_4567_89AB_4CDE, low: 0x8123_4567_89AB_CDEF), name: "node1", endpoint: Endpoint(host: "10.0.0.7", port: 4001), startTime: 1_700_000_000_000),
        Member(id: MemberID(high: 7, low: 9), name: "node-2", endpoint: Endpoint(host: "fe80::1", port: 4002), domain: "shop", metadata: ["zone": "a"], startTime: 5),
    ]
    var seeds: [(String, [UInt8])] = []
    for (index, member) in members.enumerated() {
        for kind in [MulticastDatagram.Kind.alive, .leave] {
            if let datagram = try? MulticastDatagram.encode(kind, member: member) {
                seeds.append(("\(kind)-\(index)", Array(datagram.readableBytesView)))
            }
        }
    }
    return seeds
}
