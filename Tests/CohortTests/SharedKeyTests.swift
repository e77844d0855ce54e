import Cohort
import CohortTestKit
import Logging
import NIOCore
import NIOEmbedded
import Testing
@testable import CohortTransportTCP

/// Shared-key mode: the key handshake and sealed frames on embedded channels (every byte chosen
/// or captured by the test), then two real transports on loopback.
@Suite("shared-key mode", .timeLimit(.minutes(1)))
struct SharedKeyTests {
    static let k1 = ClusterKey.generate(id: 1)
    static let k2 = ClusterKey.generate(id: 2)
    static let otherK1 = ClusterKey.generate(id: 1)

    /// A client and a server connection end: frame decoder + key handler each, bytes carried by
    /// the test.
    final class Pair {
        let client = EmbeddedChannel()
        let server = EmbeddedChannel()
        let clientCore: TransportCore
        let serverCore: TransportCore
        /// Every buffer the client put on the wire, in order.
        var clientWire: [ByteBuffer] = []
        /// Every buffer the server put on the wire, in order.
        var serverWire: [ByteBuffer] = []

        init(client clientKeys: [ClusterKey], server serverKeys: [ClusterKey]) throws {
            clientCore = try Self.core(clientKeys, on: client)
            serverCore = try Self.core(serverKeys, on: server)
            for (channel, core, role) in [(client, clientCore, SharedKeyHandler.Role.client), (server, serverCore, .server)] {
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: core.decoderFrameCap)))
                try core.addSecurityHandler(to: channel.pipeline.syncOperations, role: role)
            }
            try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        }

        static func core(_ keys: [ClusterKey], on channel: EmbeddedChannel) throws -> TransportCore {
            let security: TransportSecurity = keys.isEmpty ? .plaintext : try .sharedKey(keys)
            return TransportCore(settings: TransportSettings(maxFrameSize: 1 << 16), security: security, loop: channel.eventLoop, logger: Logger(label: "test"))
        }

        /// Carries bytes both ways until neither side has anything to send.
        func pump() {
            for _ in 0..<16 {
                var moved = false
                while let bytes = try? client.readOutbound(as: ByteBuffer.self) {
                    clientWire.append(bytes)
                    if server.isActive { _ = try? server.writeInbound(bytes) }
                    moved = true
                }
                while let bytes = try? server.readOutbound(as: ByteBuffer.self) {
                    serverWire.append(bytes)
                    if client.isActive { _ = try? client.writeInbound(bytes) }
                    moved = true
                }
                if !moved { return }
            }
        }

        /// The plaintext frames the server's connection handler would get.
        func serverFrames() -> [WireFormat.Frame] {
            var frames: [WireFormat.Frame] = []
            while let frame = try? server.readInbound(as: WireFormat.Frame.self) { frames.append(frame) }
            return frames
        }

        func clientFrames() -> [WireFormat.Frame] {
            var frames: [WireFormat.Frame] = []
            while let frame = try? client.readInbound(as: WireFormat.Frame.self) { frames.append(frame) }
            return frames
        }

        var serverRefusals: Int { serverCore.refusedCount(.unauthenticated) }
    }

    static func data(_ text: String, seq: UInt64 = 1, guarantee: DeliveryGuarantee = .processed) -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(seq)
        body.writeInteger(UInt32(101))
        body.writeInteger(UInt32(0))
        body.writeString(text)
        var frame = ByteBuffer()
        WireFormat.writeHeader(kind: .data, codec: 2, guarantee: guarantee.rawValue, length: body.readableBytes, into: &frame)
        frame.writeImmutableBuffer(body)
        return frame
    }

    static func contains(_ wire: [ByteBuffer], _ text: String) -> Bool {
        let needle = Array(text.utf8)
        return wire.contains { buffer in
            let bytes = Array(buffer.readableBytesView)
            guard bytes.count >= needle.count else { return false }
            return (0...(bytes.count - needle.count)).contains { Array(bytes[$0..<($0 + needle.count)]) == needle }
        }
    }

    // MARK: - handshake and sealing

    @Test func framesWrittenBeforeTheHandshakeGoOutSealedAndOpenOnTheOtherSide() throws {
        let pair = try Pair(client: [Self.k1], server: [Self.k1])
        // The connection's handler writes at once; the frame waits for the handshake.
        pair.client.writeAndFlush(Self.data("secret session id 42"), promise: nil)
        pair.pump()
        let frames = pair.serverFrames()
        #expect(frames.count == 1)
        var frame = try #require(frames.first)
        #expect(frame.kind == .data && frame.codec == 2 && frame.guarantee == DeliveryGuarantee.processed.rawValue)
        #expect(frame.body.readInteger(as: UInt64.self) == 1)
        #expect(frame.body.readInteger(as: UInt32.self) == 101)
        frame.body.moveReaderIndex(forwardBy: 4)
        #expect(frame.body.readString(length: frame.body.readableBytes) == "secret session id 42")
        // The other way as well; neither payload is on the wire in clear.
        pair.server.writeAndFlush(Self.data("the answer"), promise: nil)
        pair.pump()
        #expect(pair.clientFrames().count == 1)
        #expect(!Self.contains(pair.clientWire, "secret session"))
        #expect(!Self.contains(pair.serverWire, "the answer"))
        #expect(pair.serverRefusals == 0)
    }

    @Test func aReplayedFrameIsRefusedOnItsOwnConnectionAndOnAnother() throws {
        let pair = try Pair(client: [Self.k1], server: [Self.k1])
        pair.pump()
        let before = pair.clientWire.count
        pair.client.writeAndFlush(Self.data("transfer everything"), promise: nil)
        pair.pump()
        #expect(pair.serverFrames().count == 1)
        let captured = pair.clientWire[before]

        // The same bytes again on the same connection: the counter nonce moved on.
        _ = try? pair.server.writeInbound(captured)
        #expect(pair.serverFrames().isEmpty)
        #expect(pair.serverRefusals == 1)
        #expect(!pair.server.isActive, "a connection that replays is closed")

        // On a new connection with its own handshake: other keys.
        let second = try Pair(client: [Self.k1], server: [Self.k1])
        second.pump()
        _ = try? second.server.writeInbound(captured)
        #expect(second.serverFrames().isEmpty)
        #expect(second.serverRefusals == 1)
    }

    @Test func theHeaderIsAuthenticatedSenderTypeAndOptionsCannotBeChanged() throws {
        for offset in [5, 6, 7] {  // kind, codec, guarantee
            let pair = try Pair(client: [Self.k1], server: [Self.k1])
            pair.pump()
            let before = pair.clientWire.count
            pair.client.writeAndFlush(Self.data("x"), promise: nil)
            // Take the sealed frame off the client's wire before the server sees it.
            var sealed = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
            #expect(pair.clientWire.count == before)
            let original = sealed.getInteger(at: sealed.readerIndex + offset, as: UInt8.self)!
            // A value the parser still accepts (kind 7 is a heartbeat).
            sealed.setInteger(offset == 5 ? UInt8(7) : original ^ 1, at: sealed.readerIndex + offset)
            _ = try? pair.server.writeInbound(sealed)
            #expect(pair.serverFrames().isEmpty, "header byte \(offset)")
            #expect(pair.serverRefusals == 1)
        }
    }

    @Test func aStrangersPlaintextHelloIsRefusedWithoutAWord() throws {
        let pair = try Pair(client: [], server: [Self.k1])
        var body = ByteBuffer()
        WireFormat.writeMember(Member(name: "stranger", endpoint: Endpoint(host: "127.0.0.1", port: 9), startTime: 0), into: &body)
        var hello = ByteBuffer()
        WireFormat.writeHeader(kind: .hello, length: body.readableBytes, into: &hello)
        hello.writeImmutableBuffer(body)
        _ = try? pair.server.writeInbound(hello)
        #expect(pair.serverFrames().isEmpty)
        #expect(try pair.server.readOutbound(as: ByteBuffer.self) == nil, "the stranger learns nothing, not even why")
        #expect(!pair.server.isActive)
        #expect(pair.serverRefusals == 1)
    }

    @Test func aPeerWithoutTheKeyCannotFinishTheHandshakeEitherWay() throws {
        // Same id, other secret: the client sees the server's proof fail and never says hello;
        // the server never passes a frame up.
        let wrong = try Pair(client: [Self.otherK1], server: [Self.k1])
        wrong.client.writeAndFlush(Self.data("let me in"), promise: nil)
        wrong.pump()
        #expect(wrong.serverFrames().isEmpty)
        #expect(!Self.contains(wrong.clientWire, "let me in"))
        #expect(!wrong.client.isActive)
        #expect(wrong.clientCore.refusedCount(.unauthenticated) == 1)

        // A key id the server does not hold: refused at the first frame.
        let unknown = try Pair(client: [Self.k2], server: [Self.k1])
        unknown.pump()
        #expect(unknown.serverRefusals == 1)
        #expect(!unknown.server.isActive)

        // A forged client proof (a peer that relays the challenge but lacks the key).
        let forged = try Pair(client: [Self.k1], server: [Self.k1])
        let hello = try #require(try forged.client.readOutbound(as: ByteBuffer.self))
        try forged.server.writeInbound(hello)
        _ = try #require(try forged.server.readOutbound(as: ByteBuffer.self))
        var proof = ByteBuffer()
        WireFormat.writeHeader(kind: .authProof, length: 32, into: &proof)
        proof.writeBytes([UInt8](repeating: 0xAB, count: 32))
        _ = try? forged.server.writeInbound(proof)
        #expect(forged.serverRefusals == 1)
        #expect(!forged.server.isActive)
    }

    @Test func duringARotationBothKeysAreAccepted() throws {
        // The server holds the old and the new key; clients that moved to the new one and
        // clients that did not both get in; a key outside the list does not.
        for (clientKeys, admitted) in [([Self.k1], true), ([Self.k2, Self.k1], true), ([ClusterKey.generate(id: 3)], false)] {
            let pair = try Pair(client: clientKeys, server: [Self.k1, Self.k2])
            pair.client.writeAndFlush(Self.data("hi"), promise: nil)
            pair.pump()
            #expect(pair.serverFrames().count == (admitted ? 1 : 0), "client keys \(clientKeys.map(\.id))")
        }
    }

    @Test func keysParseFromTextAndNeverShowTheirSecret() throws {
        let key = ClusterKey.generate(id: 7)
        #expect(try ClusterKey(parsing: key.text) == key)
        #expect(try ClusterKey.parseList(" \(Self.k1.text) , \(Self.k2.text)") == [Self.k1, Self.k2])
        #expect(!"\(key)".contains(String(key.text.dropFirst(2).prefix(8))))
        #expect(throws: CohortError.self) { try ClusterKey(parsing: "1:abcd") }
        #expect(throws: CohortError.self) { try ClusterKey(parsing: "0:" + String(repeating: "a", count: 64)) }
        #expect(throws: CohortError.self) { try ClusterKey.parseList("\(Self.k1.text),\(Self.otherK1.text)") }
    }

    // MARK: - over loopback

    @Test func keyedTransportsTalkAndAKeylessOrWrongKeyedOneCannotJoin() async throws {
        let receiver = TCPTransport(security: try .sharedKey([Self.k1]))
        let receiverLog = RecordingTransportDelegate()
        var target = TransportConformance.localMember(1)
        target.endpoint = try await receiver.start(local: target, delegate: receiverLog)

        let member = TCPTransport(security: try .sharedKey([Self.k1]))
        let memberRecord = TransportConformance.localMember(0)
        _ = try await member.start(local: memberRecord, delegate: RecordingTransportDelegate())
        let peer = try await member.handshake(with: target.endpoint, timeout: .seconds(30))
        #expect(peer.id == target.id)
        let message = OutboundMessage(type: MessageType(7), codec: .binary, payload: ByteBuffer(string: "hello members"), options: SendOptions(guarantee: .processed, timeout: .seconds(30)))
        #expect(await member.send(message, to: [target]).outcome(for: target.id) == .delivered)
        #expect(receiverLog.snapshot.received.map { String(decoding: $0.payload, as: UTF8.self) } == ["hello members"])
        await member.shutdown()

        for security in [TransportSecurity.plaintext, try .sharedKey([Self.otherK1])] {
            let outsider = TCPTransport(security: security)
            _ = try await outsider.start(local: TransportConformance.localMember(2), delegate: RecordingTransportDelegate())
            await #expect(throws: (any Error).self) { try await outsider.handshake(with: target.endpoint, timeout: .seconds(30)) }
            let report = await outsider.send(message, to: [target])
            #expect(report.outcome(for: target.id) != .delivered)
            await outsider.shutdown()
        }
        // Only the member was ever admitted, and only its message arrived.
        #expect(Set(receiverLog.snapshot.accepted.map(\.id)) == [memberRecord.id], "only the member was accepted (once per connection it opened)")
        #expect(receiverLog.snapshot.received.count == 1)
        #expect(receiver.core.refusedCount(.unauthenticated) >= 2)
        await receiver.shutdown()
    }
}
