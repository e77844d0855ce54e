import Cohort
import Logging
import NIOCore
import NIOEmbedded
import Synchronization
import Testing
@testable import CohortTestKit
@testable import CohortTransportTCP

/// The TCP transport's frame decoder, handlers and acknowledgement bookkeeping on NIO's embedded
/// channels: no sockets, no threads, every frame and byte chosen by the test.
///
/// The synchronous tests run on one thread, as `EmbeddedChannel` requires; the one that needs the
/// drain task uses `NIOAsyncTestingChannel`.
@Suite("TCP handlers (embedded channels)", .timeLimit(.minutes(1)))
struct TCPHandlerTests {
    static let local = Member(name: "local", endpoint: Endpoint(host: "127.0.0.1", port: 1), startTime: 0)
    static let peer = Member(name: "peer", endpoint: Endpoint(host: "127.0.0.1", port: 2), startTime: 1)

    static func frame(_ kind: WireFormat.Kind, codec: UInt8 = 0, guarantee: UInt8 = 0, body: ByteBuffer = ByteBuffer()) -> ByteBuffer {
        var frame = ByteBuffer()
        WireFormat.writeHeader(kind: kind, codec: codec, guarantee: guarantee, length: body.readableBytes, into: &frame)
        frame.writeImmutableBuffer(body)
        return frame
    }

    static func hello(_ kind: WireFormat.Kind, _ member: Member) -> ByteBuffer {
        var body = ByteBuffer()
        WireFormat.writeMember(member, into: &body)
        return frame(kind, body: body)
    }

    static func data(seq: UInt64, type: UInt32 = 7, guarantee: DeliveryGuarantee, payload: String = "x") -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(seq)
        body.writeInteger(type)
        body.writeInteger(UInt32(0))
        body.writeString(payload)
        return frame(.data, codec: CodecID.binary.rawValue, guarantee: guarantee.rawValue, body: body)
    }

    static func seqFrame(_ kind: WireFormat.Kind, _ seq: UInt64) -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(seq)
        return frame(kind, body: body)
    }

    /// Reads the frames the handler wrote.
    static func written(_ channel: EmbeddedChannel, maxFrameSize: Int = 1 << 20) throws -> [WireFormat.Frame] {
        var frames: [WireFormat.Frame] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            while let frame = try WireFormat.parse(from: &buffer, maxFrameSize: maxFrameSize) { frames.append(frame) }
        }
        return frames
    }

    /// Handlers run on the global pool here (not the embedded loop, which only its own thread may
    /// touch): the drain task of these tests never writes to the channel.
    static func core(on channel: EmbeddedChannel, delegate: any TransportDelegate, settings: TransportSettings = TransportSettings(handlersOnEventLoop: false)) -> TransportCore {
        let core = TransportCore(settings: settings, loop: channel.eventLoop, logger: Logger(label: "test"))
        core.start(local: local, delegate: delegate)
        return core
    }

    // MARK: - frame decoder

    @Test func decoderWaitsForWholeFramesAndSplitsBatches() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameSize: 1024)))
        var bytes = Self.hello(.hello, Self.peer)
        bytes.writeImmutableBuffer(Self.frame(.heartbeat))
        // Byte by byte: nothing until the first frame is complete.
        let total = bytes.readableBytes
        var decoded: [WireFormat.Kind] = []
        for i in 0..<total {
            try channel.writeInbound(bytes.getSlice(at: bytes.readerIndex + i, length: 1)!)
            while let frame = try channel.readInbound(as: WireFormat.Frame.self) { decoded.append(frame.kind) }
            if i < total - WireFormat.headerSize - 1 { #expect(decoded.count <= 1) }
        }
        #expect(decoded == [.hello, .heartbeat])
        // Two frames in one buffer come out as two.
        var batch = Self.frame(.heartbeat)
        batch.writeImmutableBuffer(Self.seqFrame(.received, 9))
        try channel.writeInbound(batch)
        #expect(try channel.readInbound(as: WireFormat.Frame.self)?.kind == .heartbeat)
        var ack = try #require(try channel.readInbound(as: WireFormat.Frame.self))
        #expect(ack.kind == .received && ack.body.readInteger(as: UInt64.self) == 9)
        #expect(try channel.finish().isClean)
    }

    @Test func decoderRefusesAFrameAboveTheCapFromItsHeaderAlone() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameSize: 1024)))
        var header = ByteBuffer()
        WireFormat.writeHeader(kind: .data, length: 10_000_000, into: &header)
        // Only the header: the announced size is refused before any body byte is buffered.
        let error = #expect(throws: CohortError.self) { try channel.writeInbound(header) }
        #expect(error?.code == .frameTooLarge)
        _ = try? channel.finish()
    }

    @Test func decoderRefusesBytesThatAreNotCohort() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameSize: 1024)))
        let error = #expect(throws: CohortError.self) { try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n")) }
        #expect(error?.code == .malformedFrame)
        _ = try? channel.finish()
    }

    // MARK: - inbound handler

    @Test func helloIsAnsweredAndReceiptAcksAreCumulativePerReadBatch() throws {
        let channel = EmbeddedChannel()
        let delegate = RecordingTransportDelegate()
        let core = Self.core(on: channel, delegate: delegate)
        try channel.pipeline.syncOperations.addHandler(InboundHandler(core: core, receiver: nil, delegate: delegate))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()

        try channel.writeInbound(try Self.parsed(Self.hello(.hello, Self.peer)))
        var reply = try #require(try Self.written(channel).first)
        #expect(reply.kind == .helloReply)
        #expect(try WireFormat.readMember(from: &reply.body).id == Self.local.id)
        #expect(delegate.snapshot.accepted.map(\.id) == [Self.peer.id])

        // One read batch of three receipt-acknowledged frames: one cumulative ack, for the highest.
        for seq in [UInt64(3), 4, 5] {
            channel.pipeline.syncOperations.fireChannelRead(NIOAny(try Self.parsed(Self.data(seq: seq, guarantee: .receipt))))
        }
        channel.pipeline.syncOperations.fireChannelReadComplete()
        let acks = try Self.written(channel)
        #expect(acks.count == 1)
        var ack = try #require(acks.first)
        #expect(ack.kind == .received && ack.body.readInteger(as: UInt64.self) == 5)

        // A heartbeat is a sign of life; a leave is not a lost connection.
        channel.pipeline.syncOperations.fireChannelRead(NIOAny(try Self.parsed(Self.frame(.heartbeat))))
        #expect(delegate.snapshot.heard.map(\.id) == [Self.peer.id])
        channel.pipeline.syncOperations.fireChannelRead(NIOAny(try Self.parsed(Self.frame(.leave))))
        #expect(delegate.snapshot.left.map(\.id) == [Self.peer.id])
        _ = try? channel.finish()
        #expect(delegate.snapshot.lost.isEmpty)
    }

    @Test func dataBeforeHelloIsRefusedCountedAndClosesTheConnection() throws {
        let channel = EmbeddedChannel()
        let delegate = RecordingTransportDelegate()
        let core = Self.core(on: channel, delegate: delegate)
        try channel.pipeline.syncOperations.addHandler(InboundHandler(core: core, receiver: nil, delegate: delegate))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        channel.pipeline.syncOperations.fireChannelRead(NIOAny(try Self.parsed(Self.data(seq: 1, guarantee: .asynchronous))))
        var error = try #require(try Self.written(channel).first)
        #expect(error.kind == .error)
        #expect(try WireFormat.readString(from: &error.body).contains("before hello"))
        #expect(core.malformedFrames == 1)
        #expect(!channel.isActive)
        #expect(delegate.snapshot.received.isEmpty)
    }

    @Test func aClosedConnectionFromAKnownMemberIsReportedLost() throws {
        let channel = EmbeddedChannel()
        let delegate = RecordingTransportDelegate()
        let core = Self.core(on: channel, delegate: delegate)
        try channel.pipeline.syncOperations.addHandler(InboundHandler(core: core, receiver: nil, delegate: delegate))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        channel.pipeline.syncOperations.fireChannelRead(NIOAny(try Self.parsed(Self.hello(.hello, Self.peer))))
        _ = try Self.written(channel)
        _ = try? channel.finish()
        #expect(delegate.snapshot.lost.map(\.member.id) == [Self.peer.id])
    }

    /// A processed message is handed to the node by the connection's drain task, which writes the
    /// `processed` answer; a handler failure and a rejection come back as `failed` frames.
    @Test func processedMessagesAreAnsweredByTheDrainTask() async throws {
        let channel = NIOAsyncTestingChannel()
        let delegate = RecordingTransportDelegate()
        let core = TransportCore(settings: TransportSettings(handlersOnEventLoop: false), loop: channel.eventLoop, logger: Logger(label: "test"))
        core.start(local: Self.local, delegate: delegate)
        try await channel.testingEventLoop.executeInContext {
            try channel.pipeline.syncOperations.addHandler(InboundHandler(core: core, receiver: nil, delegate: delegate))
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2))
        try await channel.writeInbound(try Self.parsed(Self.hello(.hello, Self.peer)))
        #expect(try await Self.next(channel).kind == .helloReply)

        try await channel.writeInbound(try Self.parsed(Self.data(seq: 10, guarantee: .processed)))
        var processed = try await Self.next(channel)
        #expect(processed.kind == .processed && processed.body.readInteger(as: UInt64.self) == 10)

        try await channel.writeInbound(try Self.parsed(Self.data(seq: 11, type: TransportConformance.failingType.rawValue, guarantee: .processed)))
        var failed = try await Self.next(channel)
        #expect(failed.kind == .failed)
        #expect(failed.body.readInteger(as: UInt64.self) == 11 && failed.body.readInteger(as: UInt8.self) == 1)
        #expect(try WireFormat.readString(from: &failed.body) == RecordingTransportDelegate.failureText)

        try await channel.writeInbound(try Self.parsed(Self.data(seq: 12, type: TransportConformance.rejectingType.rawValue, guarantee: .processed)))
        var rejected = try await Self.next(channel)
        #expect(rejected.kind == .failed)
        #expect(rejected.body.readInteger(as: UInt64.self) == 12 && rejected.body.readInteger(as: UInt8.self) == 2)
        #expect(delegate.snapshot.received.count == 3)
        _ = try? await channel.finish()
    }

    // MARK: - outbound connection and its handler: the ack bookkeeping

    /// An outbound connection on an embedded channel: hello, then acknowledgements resolve the
    /// tickets of the right messages, and a broken connection fails what is still open.
    @Test func acknowledgementsResolveTheirMessagesAndABrokenConnectionFailsTheRest() throws {
        let channel = EmbeddedChannel()
        let delegate = RecordingTransportDelegate()
        let core = Self.core(on: channel, delegate: delegate)
        let connection = OutboundConnection(endpoint: Self.peer.endpoint, member: Self.peer, core: core, pool: nil)
        try channel.pipeline.syncOperations.addHandler(OutboundHandler(connection: connection))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()

        let handshake = connection.attach(channel)
        var hello = try #require(try Self.written(channel).first)
        #expect(hello.kind == .hello)
        let introduced = try WireFormat.readMember(from: &hello.body)
        #expect(introduced.id == Self.local.id)
        // Frames queued before the hello reply wait, then go out in order.
        let early = SendTicket(members: [Self.peer.id])
        connection.inFlight.add(1, ordering: .relaxed)
        connection.enqueue(Self.data(seq: 1, guarantee: .receipt), seq: 1, ticket: early, slot: 0, guarantee: .receipt)
        #expect(try Self.written(channel).isEmpty)
        channel.pipeline.syncOperations.fireChannelRead(NIOAny(try Self.parsed(Self.hello(.helloReply, Self.peer))))
        #expect(try handshake.wait().id == Self.peer.id)
        #expect(try Self.written(channel).map(\.kind) == [.data])

        // Three more: receipt 2, processed 3, processed 4, asynchronous 5.
        let receipt = SendTicket(members: [Self.peer.id])
        let processed = SendTicket(members: [Self.peer.id])
        let failing = SendTicket(members: [Self.peer.id])
        for (seq, ticket, guarantee) in [(UInt64(2), receipt, DeliveryGuarantee.receipt), (3, processed, .processed), (4, failing, .processed)] {
            connection.inFlight.add(1, ordering: .relaxed)
            connection.enqueue(Self.data(seq: seq, guarantee: guarantee), seq: seq, ticket: ticket, slot: 0, guarantee: guarantee)
        }
        connection.inFlight.add(1, ordering: .relaxed)
        connection.enqueue(Self.data(seq: 5, guarantee: .asynchronous), seq: 5, ticket: nil, slot: 0, guarantee: .asynchronous)
        channel.embeddedEventLoop.run()  // the coalesced flush
        #expect(try Self.written(channel).count == 4)
        #expect(connection.inFlight.load(ordering: .relaxed) == 5)

        // A cumulative `received` up to 2 settles 1 and 2, not the processed ones.
        channel.pipeline.syncOperations.fireChannelRead(NIOAny(try Self.parsed(Self.seqFrame(.received, 2))))
        #expect(early.isFinished && receipt.isFinished)
        #expect(!processed.isFinished && !failing.isFinished)
        #expect(connection.unacknowledged == (received: 1, processed: 2))
        channel.pipeline.syncOperations.fireChannelRead(NIOAny(try Self.parsed(Self.seqFrame(.processed, 3))))
        #expect(processed.isFinished)
        var failedBody = ByteBuffer()
        failedBody.writeInteger(UInt64(4))
        failedBody.writeInteger(UInt8(1))
        WireFormat.writeString("handler threw", into: &failedBody)
        channel.pipeline.syncOperations.fireChannelRead(NIOAny(WireFormat.Frame(kind: .failed, body: failedBody)))
        #expect(failing.isFinished)
        #expect(connection.inFlight.load(ordering: .relaxed) == 1)
        let outcomes = try [early, receipt, processed, failing].map { ticket in
            try Self.report(of: ticket).outcome(for: Self.peer.id)
        }
        #expect(outcomes == [.delivered, .delivered, .delivered, .remoteFailure("handler threw")])

        // An acknowledgement for a sequence number never sent changes nothing.
        channel.pipeline.syncOperations.fireChannelRead(NIOAny(try Self.parsed(Self.seqFrame(.processed, 99))))
        #expect(connection.inFlight.load(ordering: .relaxed) == 1)

        // The connection breaks with the asynchronous message 5 unacknowledged: it is reported
        // lost (no pool here, so straight to the delegate), nothing is left in flight.
        channel.pipeline.syncOperations.fireChannelInactive()
        #expect(connection.isClosed)
        #expect(connection.inFlight.load(ordering: .relaxed) == 0)
        #expect(delegate.snapshot.asyncFailures.map(\.count) == [1])
        _ = try? channel.finish()
    }

    @Test func malformedAcknowledgementFailsTheConnectionAndIsCounted() throws {
        let channel = EmbeddedChannel()
        let delegate = RecordingTransportDelegate()
        let core = Self.core(on: channel, delegate: delegate)
        let connection = OutboundConnection(endpoint: Self.peer.endpoint, member: Self.peer, core: core, pool: nil)
        try channel.pipeline.syncOperations.addHandler(OutboundHandler(connection: connection))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        _ = connection.attach(channel)
        channel.pipeline.syncOperations.fireChannelRead(NIOAny(try Self.parsed(Self.hello(.helloReply, Self.peer))))
        let ticket = SendTicket(members: [Self.peer.id])
        connection.inFlight.add(1, ordering: .relaxed)
        connection.enqueue(Self.data(seq: 1, guarantee: .receipt), seq: 1, ticket: ticket, slot: 0, guarantee: .receipt)
        // A `received` frame whose body is cut short.
        channel.pipeline.syncOperations.fireChannelRead(NIOAny(WireFormat.Frame(kind: .received, body: ByteBuffer(bytes: [1, 2]))))
        #expect(core.malformedFrames == 1)
        #expect(connection.isClosed)
        guard case .connectionFailed = try Self.report(of: ticket).outcome(for: Self.peer.id) else {
            Issue.record("expected a connection failure")
            return
        }
        _ = try? channel.finish()
    }

    /// A connection whose hello is answered by another incarnation than the member it was opened
    /// for is not used.
    @Test func helloReplyFromAnotherIncarnationFailsTheHandshake() throws {
        let channel = EmbeddedChannel()
        let core = Self.core(on: channel, delegate: RecordingTransportDelegate())
        let connection = OutboundConnection(endpoint: Self.peer.endpoint, member: Self.peer, core: core, pool: nil)
        try channel.pipeline.syncOperations.addHandler(OutboundHandler(connection: connection))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        let handshake = connection.attach(channel)
        let restarted = Member(name: "peer", endpoint: Self.peer.endpoint, startTime: 5)
        channel.pipeline.syncOperations.fireChannelRead(NIOAny(try Self.parsed(Self.hello(.helloReply, restarted))))
        #expect(throws: CohortError.self) { try handshake.wait() }
        #expect(connection.isClosed)
        _ = try? channel.finish()
    }

    // MARK: - helpers

    static func parsed(_ bytes: ByteBuffer) throws -> WireFormat.Frame {
        var bytes = bytes
        return try #require(try WireFormat.parse(from: &bytes, maxFrameSize: 1 << 20))
    }

    /// The report of a finished ticket.
    static func report(of ticket: SendTicket) throws -> SendReport {
        try #require(ticket.finishedReport)
    }

    static func next(_ channel: NIOAsyncTestingChannel) async throws -> WireFormat.Frame {
        var buffer = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
        return try #require(try WireFormat.parse(from: &buffer, maxFrameSize: 1 << 20))
    }
}
