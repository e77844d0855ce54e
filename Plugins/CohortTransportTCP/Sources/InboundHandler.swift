import CohortNIO
import DequeModule

/// Hands inbound messages of one connection to the node, one at a time and in order, and sends
/// processing acknowledgements back. A drain task runs only while messages are waiting.
final class InboundProcessor: @unchecked Sendable {
    struct Item {
        var message: InboundMessage
        var seq: UInt64
    }

    private let lock = NIOLock()
    private var queue = Deque<Item>()
    private var running = false
    private var paused = false
    private let channel: any Channel
    private let delegate: any TransportDelegate
    /// Above this many waiting messages the connection stops reading (backpressure).
    static let highWater = 4096
    static let lowWater = 512

    init(channel: any Channel, delegate: any TransportDelegate) {
        self.channel = channel
        self.delegate = delegate
    }

    func enqueue(_ item: Item) {
        let (start, pause): (Bool, Bool) = lock.withLock {
            queue.append(item)
            var pause = false
            if !paused && queue.count > Self.highWater {
                paused = true
                pause = true
            }
            if running { return (false, pause) }
            running = true
            return (true, pause)
        }
        if pause { channel.setOption(.autoRead, value: false).whenComplete { _ in } }
        if start {
            Task { await self.drain() }
        }
    }

    private func next() -> (Item?, Bool) {
        lock.withLock {
            var resume = false
            if paused && queue.count < Self.lowWater {
                paused = false
                resume = true
            }
            guard let item = queue.popFirst() else {
                running = false
                return (nil, resume)
            }
            return (item, resume)
        }
    }

    private func drain() async {
        while true {
            let (item, resume) = next()
            if resume { channel.setOption(.autoRead, value: true).whenComplete { _ in } }
            guard let item else { return }
            let guarantee = item.message.guarantee
            let result = await delegate.transport(received: item.message)
            switch (guarantee, result) {
            case (.processed, .processed):
                channel.writeAndFlush(Frames.seq(.processed, item.seq, allocator: channel.allocator), promise: nil)
            case (_, .handlerFailed(let text)):
                // Reported for every guarantee: an asynchronous sender learns of it through its
                // async-failure report.
                channel.writeAndFlush(Frames.failed(item.seq, reason: 1, text: text, allocator: channel.allocator), promise: nil)
            case (_, .rejected(let text)):
                channel.writeAndFlush(Frames.failed(item.seq, reason: 2, text: text, allocator: channel.allocator), promise: nil)
            case (_, .processed):
                break
            }
        }
    }
}

/// The server side of a connection: hello, data, heartbeats, leave.
final class InboundHandler: ChannelInboundHandler {
    typealias InboundIn = WireFormat.Frame
    typealias OutboundOut = ByteBuffer

    // Strong: an accepted connection that never said hello (or a probe) is not closed by
    // `shutdown()`, and may still reset after the transport is gone; an unowned reference then
    // traps in `reject`. The pipeline drops the handler when the connection closes, so this is
    // no lasting cycle.
    let transport: TCPTransport
    let delegate: any TransportDelegate
    private var member: Member?
    private var processor: InboundProcessor?
    private var highestReceived: UInt64 = 0
    private var ackPending = false
    private var left = false

    init(transport: TCPTransport, delegate: any TransportDelegate) {
        self.transport = transport
        self.delegate = delegate
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        do {
            switch frame.kind {
            case .hello:
                let peer = try WireFormat.readMember(from: &frame.body)
                member = peer
                processor = InboundProcessor(channel: context.channel, delegate: delegate)
                context.writeAndFlush(wrapOutboundOut(Frames.hello(kind: .helloReply, member: transport.localMember, allocator: context.channel.allocator)), promise: nil)
                transport.registerInbound(context.channel, member: peer)
                delegate.transport(didAccept: peer)
            case .probe:
                _ = try WireFormat.readMember(from: &frame.body)
                context.writeAndFlush(wrapOutboundOut(Frames.hello(kind: .helloReply, member: transport.localMember, allocator: context.channel.allocator)), promise: nil)
            case .data:
                guard let member, let processor else {
                    throw CohortError(.malformedFrame, "data frame before hello")
                }
                guard let seq = frame.body.readInteger(as: UInt64.self),
                      let type = frame.body.readInteger(as: UInt32.self),
                      let flags = frame.body.readInteger(as: UInt32.self)
                else { throw WireFormat.truncated("data") }
                let guarantee = DeliveryGuarantee(rawValue: frame.guarantee) ?? .processed
                highestReceived = max(highestReceived, seq)
                ackPending = true
                processor.enqueue(.init(
                    message: InboundMessage(sender: member, type: MessageType(type), codec: CodecID(rawValue: frame.codec), payload: frame.body, guarantee: guarantee, flags: flags),
                    seq: seq
                ))
            case .heartbeat:
                if let member { delegate.transport(heardFrom: member) }
            case .leave:
                if let member {
                    left = true
                    delegate.transport(memberLeft: member)
                }
            default:
                throw CohortError(.malformedFrame, "unexpected frame kind \(frame.kind) on an inbound connection")
            }
        } catch {
            reject(context: context, error: error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if ackPending {
            ackPending = false
            context.writeAndFlush(wrapOutboundOut(Frames.seq(.received, highestReceived, allocator: context.channel.allocator)), promise: nil)
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let wasLast = transport.unregisterInbound(context.channel)
        if let member, wasLast, !left, !transport.isShuttingDown {
            delegate.transport(lostConnectionTo: member, reason: "connection from \(member.name) closed")
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        reject(context: context, error: error)
    }

    private func reject(context: ChannelHandlerContext, error: any Error) {
        let peer = member.map { "\($0.name)" } ?? "\(context.remoteAddress.map { "\($0)" } ?? "unknown peer")"
        if error is CohortError || error is ByteToMessageDecoderError {
            transport.countMalformed()
            transport.logger.warning("closing connection from \(peer): \(error)")
            context.writeAndFlush(wrapOutboundOut(Frames.error("\(error)", allocator: context.channel.allocator)), promise: nil)
        } else {
            transport.logger.debug("connection from \(peer) failed: \(error)")
        }
        context.close(promise: nil)
    }
}
