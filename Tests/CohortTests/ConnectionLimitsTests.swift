import Cohort
import CohortTestKit
import Foundation
import NIOCore
import Testing
@testable import CohortTransportTCP

#if canImport(Glibc)
import Glibc
#endif

/// Caps on inbound connections, the handshake timeout and the pre-hello frame cap hold under a
/// flood of idle and half-frame connections, and the node keeps serving its members.
@Suite("connection limits under a flood", .timeLimit(.minutes(1)))
struct ConnectionLimitsTests {
    /// A blocking socket from `source` (any 127.x address works on loopback) to 127.0.0.1:`port`.
    static func open(from source: String, to port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    static func write(_ fd: Int32, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    @Test func idleAndHalfFrameConnectionsAreCappedAndTimedOutWhileMembersAreServed() async throws {
        let key = ClusterKey.generate()
        let limits = ConnectionLimits(maxInboundConnections: 64, maxInboundConnectionsPerSource: 8, handshakeTimeout: .milliseconds(500), idleTimeout: .seconds(30))
        let node = TCPTransport(security: try .sharedKey([key]), limits: limits)
        let log = RecordingTransportDelegate()
        var target = TransportConformance.localMember(1)
        target.endpoint = try await node.start(local: target, delegate: log)

        // The flood, from another loopback address: idle sockets, half a header, and a header
        // that announces a 16 MiB frame followed by a little of it.
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        for i in 0..<40 {
            guard let fd = Self.open(from: "127.0.0.2", to: target.endpoint.port) else { continue }
            sockets.append(fd)
            switch i % 3 {
            case 1: Self.write(fd, Array("COHT".utf8) + [1, 11])
            case 2:
                Self.write(fd, Array("COHT".utf8) + [1, 11, 0, 0] + [0x01, 0x00, 0x00, 0x00] + [UInt8](repeating: 0x41, count: 4096))
            default: break
            }
        }
        #expect(sockets.count >= 30, "the test could not open its flood")

        // A member still joins and is served.
        let member = TCPTransport(security: try .sharedKey([key]))
        let memberRecord = TransportConformance.localMember(0)
        _ = try await member.start(local: memberRecord, delegate: RecordingTransportDelegate())
        let peer = try await member.handshake(with: target.endpoint, timeout: .seconds(20))
        #expect(peer.id == target.id)
        let message = OutboundMessage(type: MessageType(7), codec: .binary, payload: ByteBuffer(string: "still here"), options: SendOptions(guarantee: .processed, timeout: .seconds(20)))
        #expect(await member.send(message, to: [target]).outcome(for: target.id) == .delivered)

        // What held: the per-source cap refused most of the flood, the oversized announcement
        // was refused at its header, the idle ones were closed by the handshake timeout.
        #expect(await eventually(timeout: .seconds(30)) { node.core.refusedCount(.connectionsPerSource) >= 10 })
        #expect(await eventually(timeout: .seconds(30)) { node.core.refusedCount(.handshakeTimeout) >= 1 })
        #expect(await eventually(timeout: .seconds(30)) { node.core.gate.openConnections <= 2 }, "open: \(node.core.gate.openConnections)")
        #expect(node.core.gate.openConnections <= limits.maxInboundConnectionsPerSource + 2)
        #expect(Set(log.snapshot.accepted.map(\.id)) == [memberRecord.id], "only the member was accepted (once per connection it opened)")

        // The member is served after the flood as well.
        #expect(await member.send(message, to: [target]).outcome(for: target.id) == .delivered)
        await member.shutdown()
        await node.shutdown()
    }

    @Test func beforeItsHelloAPeerCannotAnnounceALargeFrame() throws {
        // The decoder's cap before the hello is a member record's size, whatever maxFrameSize is.
        let cap = FrameCap(FrameCap.beforeHello)
        var decoder = FrameDecoder(cap: cap)
        _ = decoder
        var header = ByteBuffer()
        WireFormat.writeHeader(kind: .data, length: 1 << 20, into: &header)
        #expect(throws: CohortError.self) { _ = try WireFormat.parse(from: &header, maxFrameSize: decoder.maxFrameSize) }
        cap.value = 16 << 20
        decoder = FrameDecoder(cap: cap)
        var again = ByteBuffer()
        WireFormat.writeHeader(kind: .data, length: 1 << 20, into: &again)
        #expect(try WireFormat.parse(from: &again, maxFrameSize: decoder.maxFrameSize) == nil, "allowed once raised: waits for the body")
    }
}
