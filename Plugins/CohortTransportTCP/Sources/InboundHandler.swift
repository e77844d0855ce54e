import CohortCore
import DequeModule
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Hands inbound messages of one connection to the node, one at a time and in order, and sends
/// processing acknowledgements back. A drain task runs only while messages are waiting.
///
/// The queue is shared by the connection's event loop (which appends) and the drain task (which
/// takes), so it sits behind a lock. When more than the ``Receiver/Budget`` waits — in messages or
/// in bytes — the connection stops reading until the queue is short again (TCP backpressure to
/// the sender), and the ``Receiver`` is told.
final class InboundProcessor: Sendable {
    struct Item {
        var message: InboundMessage
        var seq: UInt64
    }

    private struct Queue {
        var items = Deque<Item>()
        var bytes = 0
        var running = false
        var paused = false
        /// Drain-task only: while reading is paused the peer's newer frames (heartbeats included)
        /// wait in the socket behind our own backlog; that silence is ours, not the peer's.
        var signOfLife = SignOfLife()
    }

    private let queue = NIOLockedValueBox(Queue())
    private let channel: any Channel
    private let delegate: any TransportDelegate
    private let member: Member
    private let budget: Receiver.Budget
    private let receiver: Receiver?
    /// Set when handlers run on the connection's event loop (``TransportSettings/handlersOnEventLoop``).
    private let loopExecutor: EventLoopTaskExecutor?
    /// Messages handled between two voluntary yields of the drain task.
    static let yieldEvery = 32

    /// The node-wide count of waiting bytes (nil in tests that run a processor alone).
    private let gate: InboundGate?

    init(channel: any Channel, member: Member, delegate: any TransportDelegate, handlersOnEventLoop: Bool, budget: Receiver.Budget, receiver: Receiver?, gate: InboundGate? = nil) {
        self.gate = gate
        self.channel = channel
        self.member = member
        self.delegate = delegate
        self.budget = budget
        self.receiver = receiver
        self.loopExecutor = handlersOnEventLoop ? EventLoopTaskExecutor(channel.eventLoop) : nil
    }

    func enqueue(_ item: Item) {
        let size = item.message.payload.readableBytes
        // The node-wide budget: every connection's waiting bytes together.
        let overNodeBudget = gate.map { $0.addWaiting(size) > $0.limits.inboundBytes } ?? false
        let (start, pause): (Bool, Bool) = queue.withLockedValue { queue in
            queue.items.append(item)
            queue.bytes += size
            var pause = false
            if !queue.paused && (queue.items.count > budget.highWater || queue.bytes > budget.bytes || overNodeBudget) {
                queue.paused = true
                pause = true
            }
            if queue.running { return (false, pause) }
            queue.running = true
            return (true, pause)
        }
        if pause {
            channel.setOption(.autoRead, value: false).whenComplete { _ in }
            receiver?.send(.paused(channel))
        }
        if start {
            if let loopExecutor {
                // Called on the loop: the task's first job joins the loop's queue, no wake-up.
                Task(executorPreference: loopExecutor) { await self.drain() }
            } else {
                Task { await self.drain() }
            }
        }
    }

    private func next() -> (item: Item?, resume: Bool, activity: Bool) {
        queue.withLockedValue { queue in
            var resume = false
            // Paused for the node-wide budget as well, a connection reads again once the node is
            // below it or its own queue is empty (so no connection waits on another forever).
            let nodeAllows = gate.map { !$0.overBudget } ?? true
            if queue.paused && queue.items.count < budget.lowWater && queue.bytes <= budget.bytes / 4 && (nodeAllows || queue.items.isEmpty) {
                queue.paused = false
                resume = true
            }
            let activity = queue.paused && queue.signOfLife.due()
            guard let item = queue.items.popFirst() else {
                queue.running = false
                return (nil, resume, activity)
            }
            queue.bytes -= item.message.payload.readableBytes
            gate?.removeWaiting(item.message.payload.readableBytes)
            return (item, resume, activity)
        }
    }

    private func drain() async {
        var handled = 0
        while true {
            // The handlers rarely suspend: without a yield a long burst would hold the event loop
            // (or a thread of the cooperative pool) and starve other connections' I/O and the
            // node's timers, heartbeats included, until the burst is over.
            handled &+= 1
            if handled % Self.yieldEvery == 0 { await Task.yield() }
            let (item, resume, activity) = next()
            if resume {
                channel.setOption(.autoRead, value: true).whenComplete { _ in }
                receiver?.send(.resumed(channel))
            }
            if activity { delegate.transport(sawActivityFrom: member) }
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
    // `shutdown()`, and may still reset after the transport is gone. The pipeline drops the
    // handler when the connection closes, so this is no lasting cycle.
    let core: TransportCore
    /// Told of the hello, pauses and the close; nil in tests that run the handler alone.
    let receiver: Receiver?
    let delegate: any TransportDelegate
    private var member: Member?
    private var processor: InboundProcessor?
    private var highestReceived: UInt64 = 0
    /// A frame of this read batch waits for the cumulative `received` acknowledgement (every
    /// guarantee but `.processed`, which is answered by its own `processed`/`failed` frame).
    private var ackPending = false
    /// This read batch carried data (a sign of life of the peer).
    private var sawData = false
    private var left = false
    /// When data from this member last counted as a sign of life (rate-limited: traffic is as good
    /// as a heartbeat, but one report per ``SignOfLife/interval`` is enough).
    private var signOfLife = SignOfLife()

    /// The connection decoder's cap, raised to ``fullCap`` by the hello (nil in tests that
    /// run the handler alone).
    private let cap: FrameCap?
    private let fullCap: Int
    /// Closes the connection when no hello arrived in time.
    private var handshakeTimer: Scheduled<Void>?

    init(core: TransportCore, receiver: Receiver?, delegate: any TransportDelegate, cap: FrameCap? = nil, fullCap: Int? = nil) {
        self.core = core
        self.receiver = receiver
        self.delegate = delegate
        self.cap = cap
        self.fullCap = fullCap ?? core.settings.maxFrameSize
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // A connection that says no hello (nor a probe, nor finishes its key handshake) within
        // the handshake timeout is closed: it holds a slot of the connection caps.
        let timeout = core.limits.handshakeTimeout
        let core = self.core
        let channel = context.channel
        handshakeTimer = context.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            core.refuse(.handshakeTimeout, "closed a connection from \(channel.remoteAddress.map { "\($0)" } ?? "unknown peer"): no hello within \(timeout)")
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        handshakeTimer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            let peer = member.map(\.name) ?? context.remoteAddress.map { "\($0)" } ?? "unknown peer"
            core.refuse(.idle, "closed the connection from \(peer): nothing read for \(core.limits.idleTimeout)")
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        do {
            switch frame.kind {
            case .hello:
                let peer = try WireFormat.readMember(from: &frame.body)
                guard member == nil else { throw CohortError(.malformedFrame, "a second hello on one connection") }
                // Mutual TLS: the client's certificate must name the member it says it is; every
                // later frame on this connection (data, heartbeat, leave) is then that member's.
                guard core.certificateNames(peer, on: context.channel) else {
                    core.refuse(.impersonation, "refused a hello as \(peer.name) from \(context.remoteAddress.map { "\($0)" } ?? "unknown peer"): its certificate does not name that member")
                    context.close(promise: nil)
                    return
                }
                member = peer
                handshakeTimer?.cancel()
                handshakeTimer = nil
                cap?.value = fullCap
                processor = InboundProcessor(
                    channel: context.channel,
                    member: peer,
                    delegate: delegate,
                    handlersOnEventLoop: core.settings.handlersOnEventLoop,
                    budget: receiver?.budget ?? Receiver.Budget(maxFrameSize: core.settings.maxFrameSize),
                    receiver: receiver,
                    gate: core.gate
                )
                context.writeAndFlush(wrapOutboundOut(Frames.hello(kind: .helloReply, member: core.localMember, allocator: context.channel.allocator)), promise: nil)
                receiver?.send(.accepted(context.channel, peer))
                delegate.transport(didAccept: peer)
            case .probe:
                _ = try WireFormat.readMember(from: &frame.body)
                // Answered; the prober closes. The handshake timer closes it if it does not.
                context.writeAndFlush(wrapOutboundOut(Frames.hello(kind: .helloReply, member: core.localMember, allocator: context.channel.allocator)), promise: nil)
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
                sawData = true
                if guarantee != .processed { ackPending = true }
                processor.enqueue(.init(
                    message: InboundMessage(sender: member, type: MessageType(type), codec: CodecID(rawValue: frame.codec), payload: frame.body, guarantee: guarantee, flags: flags),
                    seq: seq
                ))
            case .heartbeat:
                if let member {
                    delegate.transport(heardFrom: member)
                }
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
            // Cumulative: it also covers `.processed` frames read earlier, which the sender
            // tracks by their own answer and ignores here.
            context.writeAndFlush(wrapOutboundOut(Frames.seq(.received, highestReceived, allocator: context.channel.allocator)), promise: nil)
        }
        if sawData {
            sawData = false
            if let member, signOfLife.due() { delegate.transport(sawActivityFrom: member) }
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The receiver knows whether another connection from the member is still open.
        if let receiver {
            receiver.send(.closed(context.channel, member, left: left))
        } else if let member, !left, !core.isShuttingDown {
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
            core.countMalformed()
            core.refusals.record("malformed", "closing connection from \(peer): \(error)")
            context.writeAndFlush(wrapOutboundOut(Frames.error("\(error)", allocator: context.channel.allocator)), promise: nil)
        } else {
            core.logger.debug("connection from \(peer) failed: \(error)")
        }
        context.close(promise: nil)
    }
}

/// Rate limit for reporting traffic as a sign of life: a member that sends data or acknowledgements
/// is alive even when its heartbeats queue behind that traffic, so a busy peer is not suspected.
struct SignOfLife {
    static let interval = TimeAmount.milliseconds(100)
    private var last = NIODeadline.uptimeNanoseconds(0)

    /// Whether to report now; records the report.
    mutating func due() -> Bool {
        let now = NIODeadline.now()
        guard now - last >= Self.interval else { return false }
        last = now
        return true
    }
}

/// Runs tasks on one event loop: the executor preference of a connection's drain task, so that
/// handling a message and writing its acknowledgement happen on the loop that read it.
final class EventLoopTaskExecutor: TaskExecutor, Sendable {
    let loop: any EventLoop

    init(_ loop: any EventLoop) {
        self.loop = loop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { [self] in
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
