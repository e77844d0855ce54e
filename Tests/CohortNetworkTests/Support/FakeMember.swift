import Cohort
import CohortCodecBinary
import CohortTestKit
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A hand-made Cohort peer on a raw TCP connection: it says hello with any member record and
/// sends data frames, so a test can play an old incarnation or a member of another domain.
final class FakeMember: @unchecked Sendable {
    final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        var buffer = ByteBuffer()
        let frames = NIOLockedValueBox<[WireFormat.Frame]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            buffer.writeBuffer(&bytes)
            while let frame = try? WireFormat.parse(from: &buffer, maxFrameSize: 1 << 20) {
                frames.withLockedValue { $0.append(frame) }
            }
        }
    }

    let member: Member
    let channel: any Channel
    let collector: Collector
    private var sequence: UInt64 = 0

    private init(member: Member, channel: any Channel, collector: Collector) {
        self.member = member
        self.channel = channel
        self.collector = collector
    }

    /// Connects to a node and introduces itself as `member`; returns once the node answered.
    static func connect(to endpoint: Endpoint, as member: Member) async throws -> FakeMember {
        let collector = Collector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: endpoint.host, port: endpoint.port).get()
        var body = ByteBuffer()
        WireFormat.writeMember(member, into: &body)
        var frame = ByteBuffer()
        WireFormat.writeHeader(kind: .hello, length: body.readableBytes, into: &frame)
        frame.writeBuffer(&body)
        try await channel.writeAndFlush(frame)
        let fake = FakeMember(member: member, channel: channel, collector: collector)
        let answered = await eventually(timeout: .seconds(30)) { fake.frames.contains { $0.kind == .helloReply } }
        guard answered else { throw CohortError(.timeout, "no hello reply from \(endpoint)") }
        return fake
    }

    var frames: [WireFormat.Frame] { collector.frames.withLockedValue { $0 } }

    /// What the node answered to a data frame, once it did.
    enum Answer: Equatable {
        case processed
        case failed(reason: UInt8, text: String)
    }

    /// Sends a message waiting for processing and returns the node's answer.
    func send<M: ClusterMessage>(_ message: M, codec: any MessageCodec = BinaryCodec()) async throws -> Answer {
        sequence += 1
        let seq = sequence
        var payload = ByteBuffer()
        try codec.encode(message, into: &payload)
        var body = ByteBuffer()
        body.writeInteger(seq)
        body.writeInteger(M.messageType.rawValue)
        body.writeInteger(UInt32(0))
        body.writeBuffer(&payload)
        var frame = ByteBuffer()
        WireFormat.writeHeader(kind: .data, codec: codec.id.rawValue, guarantee: DeliveryGuarantee.processed.rawValue, length: body.readableBytes, into: &frame)
        frame.writeBuffer(&body)
        try await channel.writeAndFlush(frame)
        var answer: Answer?
        _ = await eventually(timeout: .seconds(30)) {
            for var frame in self.frames where frame.kind == .processed || frame.kind == .failed {
                guard frame.body.readInteger(as: UInt64.self) == seq else { continue }
                if frame.kind == .processed {
                    answer = .processed
                } else {
                    let reason = frame.body.readInteger(as: UInt8.self) ?? 0
                    answer = .failed(reason: reason, text: (try? WireFormat.readString(from: &frame.body)) ?? "")
                }
                return true
            }
            return false
        }
        guard let answer else { throw CohortError(.timeout, "no answer to message \(seq)") }
        return answer
    }

    func close() async { try? await channel.close() }
}
