import CohortCore
import DequeModule
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Synchronization

/// The connection this node uses to send to one member.
///
/// Its mutable state is confined to the transport's sender event loop, in a `NIOLoopBoundBox`
/// (every access checks the loop); only ``inFlight`` and ``isClosed`` are read from other threads.
/// Every data frame carries the node-wide sequence number; the peer acknowledges receipt
/// cumulatively (one `received` frame per read batch) and processing per frame, so the sender
/// knows exactly which messages a broken connection took with it. Which connection is a member's
/// is the ``SenderPool``'s decision; a connection tells the pool when it becomes ready and when
/// it closes.
final class OutboundConnection: Sendable {
    struct Entry {
        var seq: UInt64
        var ticket: SendTicket?
        var slot: Int
    }

    enum State {
        case idle
        case connecting
        case ready(any Channel)
        case closed
    }

    /// The loop-confined part.
    struct LoopState: Sendable {
        var member: Member?
        var state: State = .idle
        var beforeReady: [ByteBuffer] = []
        var outstanding = Deque<Entry>()
        var awaitingProcessing: [UInt64: Entry] = [:]
        var handshakePromise: EventLoopPromise<Member>?
        var pendingChannel: (any Channel)?
        var wasReady = false
        var deliberateClose = false
        /// Replaced by a newer connection to the same member: closes once nothing waits on it.
        var retiring = false
        var retireReason = ""
        var dirty = false
        /// Opened on the loop for the messages that found this connection closed (see
        /// ``replacement()``).
        var replacement: OutboundConnection?
    }

    /// Messages written or queued but not yet acknowledged at the level they asked for.
    let inFlight = Atomic<Int>(0)
    /// Sends waiting for room under the `block` policy.
    let room = QueueRoom()
    private let closed = Atomic<Bool>(false)
    let endpoint: Endpoint
    let core: TransportCore
    /// Told when the connection is ready and when it closed (weak: the pool's table holds the
    /// connection).
    weak let pool: SenderPool?
    let loop: any EventLoop
    private let box: NIOLoopBoundBox<LoopState>
    /// How long a retired connection may wait for its last acknowledgements.
    static let retireGrace = TimeAmount.seconds(5)

    init(endpoint: Endpoint, member: Member?, core: TransportCore, pool: SenderPool?) {
        self.endpoint = endpoint
        self.core = core
        self.pool = pool
        self.loop = core.loop
        self.box = .makeBoxSendingValue(LoopState(member: member), eventLoop: core.loop)
    }

    // Loop-only accessors into the box (each checks the loop; `_modify` mutates in place).
    private(set) var member: Member? {
        get { box.value.member }
        _modify { yield &box.value.member }
    }
    private var state: State {
        get { box.value.state }
        _modify { yield &box.value.state }
    }
    private var beforeReady: [ByteBuffer] {
        get { box.value.beforeReady }
        _modify { yield &box.value.beforeReady }
    }
    private var outstanding: Deque<Entry> {
        get { box.value.outstanding }
        _modify { yield &box.value.outstanding }
    }
    private var awaitingProcessing: [UInt64: Entry] {
        get { box.value.awaitingProcessing }
        _modify { yield &box.value.awaitingProcessing }
    }
    private var handshakePromise: EventLoopPromise<Member>? {
        get { box.value.handshakePromise }
        _modify { yield &box.value.handshakePromise }
    }
    private var pendingChannel: (any Channel)? {
        get { box.value.pendingChannel }
        _modify { yield &box.value.pendingChannel }
    }
    private var wasReady: Bool {
        get { box.value.wasReady }
        _modify { yield &box.value.wasReady }
    }
    private var deliberateClose: Bool {
        get { box.value.deliberateClose }
        _modify { yield &box.value.deliberateClose }
    }
    private var retiring: Bool {
        get { box.value.retiring }
        _modify { yield &box.value.retiring }
    }
    private var retireReason: String {
        get { box.value.retireReason }
        _modify { yield &box.value.retireReason }
    }
    var dirty: Bool {
        get { box.value.dirty }
        _modify { yield &box.value.dirty }
    }

    /// The connection that takes the messages a send meant for this one after it closed, before
    /// they were written: opened once, on the loop, and handed to the pool (which keeps it, or
    /// retires it when the member has another open connection by then). Loop only.
    func replacement() -> OutboundConnection? {
        loop.preconditionInEventLoop()
        guard let member else { return nil }
        if let existing = box.value.replacement, !existing.isClosed { return existing }
        let fresh = OutboundConnection(endpoint: member.endpoint, member: member, core: core, pool: pool)
        box.value.replacement = fresh
        pool?.send(.adopt(fresh, member))
        return fresh
    }

    /// Whether the connection closed (readable from any thread).
    var isClosed: Bool { closed.load(ordering: .acquiring) }

    /// Messages waiting for an acknowledgement (loop only; for tests).
    var unacknowledged: (received: Int, processed: Int) { (outstanding.count, awaitingProcessing.count) }

    /// Whether the connection retires (loop only; for tests).
    var isRetiring: Bool { retiring }


    // MARK: - connecting

    /// Opens the connection (if idle) and returns the peer's member record once the hello
    /// exchange is done.
    func connect(timeout: Duration) -> EventLoopFuture<Member> {
        loop.preconditionInEventLoop()
        switch state {
        case .ready:
            if let member { return loop.makeSucceededFuture(member) }
            return loop.makeFailedFuture(CohortError(.connectionFailed, "connection to \(endpoint) has no member"))
        case .connecting:
            if let handshakePromise { return handshakePromise.futureResult }
        case .closed:
            return loop.makeFailedFuture(CohortError(.connectionFailed, "connection to \(endpoint) is closed"))
        case .idle:
            break
        }
        let promise = loop.makePromise(of: Member.self)
        handshakePromise = promise
        state = .connecting
        let maxFrame = core.decoderFrameCap
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(TimeAmount(timeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try core.addTLSHandler(to: channel.pipeline.syncOperations, role: .client)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrame)))
                    try core.addSecurityHandler(to: channel.pipeline.syncOperations, role: .client)
                    try channel.pipeline.syncOperations.addHandler(OutboundHandler(connection: self))
                }
            }
        bootstrap.connect(host: endpoint.host, port: endpoint.port).whenComplete { [self] result in
            switch result {
            case .success(let channel):
                if case .closed = state {
                    channel.close(promise: nil)
                    return
                }
                let hello = Frames.hello(kind: .hello, member: core.localMember, allocator: channel.allocator)
                channel.writeAndFlush(hello, promise: nil)
                // The hello reply moves the state to ready (see onHelloReply).
                loop.scheduleTask(in: TimeAmount(timeout)) { [self] in
                    if case .connecting = state {
                        fail(reason: "no hello reply from \(endpoint) within \(timeout)")
                        channel.close(promise: nil)
                    }
                }
                pendingChannel = channel
            case .failure(let error):
                fail(reason: "cannot connect to \(endpoint): \(error)")
            }
        }
        return promise.futureResult
    }

    /// Takes a channel that is already connected (its pipeline ends in an ``OutboundHandler`` for
    /// this connection) and says hello on it; the hello reply makes the connection ready. What
    /// ``connect(timeout:)`` does once the socket is open; tests hand in an `EmbeddedChannel`.
    func attach(_ channel: any Channel) -> EventLoopFuture<Member> {
        loop.preconditionInEventLoop()
        guard case .idle = state else {
            return loop.makeFailedFuture(CohortError(.connectionFailed, "connection to \(endpoint) is not idle"))
        }
        let promise = loop.makePromise(of: Member.self)
        handshakePromise = promise
        state = .connecting
        pendingChannel = channel
        channel.writeAndFlush(Frames.hello(kind: .hello, member: core.localMember, allocator: channel.allocator), promise: nil)
        return promise.futureResult
    }

    func onHelloReply(_ peer: Member) {
        loop.preconditionInEventLoop()
        guard case .connecting = state, let channel = pendingChannel else { return }
        if let expected = member, expected.id != peer.id {
            fail(reason: "\(endpoint) is now a different incarnation (\(peer.id)), not \(expected.id)")
            channel.close(promise: nil)
            return
        }
        // Mutual TLS: the server's certificate must name the member it says it is.
        if !core.certificateNames(peer, on: channel) {
            core.refuse(.impersonation, "\(endpoint) answered as \(peer.name), a name its certificate does not hold; not admitted")
            fail(reason: "\(endpoint) answered as \(peer.name), which its certificate does not name")
            channel.close(promise: nil)
            return
        }
        // A discovery handshake (no member expected yet) must not take over the identity of a
        // member this node already sends to at another address: the answer would otherwise
        // become that member's connection and receive its traffic.
        if member == nil, let existing = pool?.table.withLockedValue({ $0[peer.id] }), !existing.isClosed, existing.endpoint != endpoint {
            core.refuse(.impersonation, "\(endpoint) answered a handshake with the id of \(peer.name) (\(peer.id)), which is at \(existing.endpoint); not admitted")
            fail(reason: "\(endpoint) answered with the id of the member at \(existing.endpoint)")
            channel.close(promise: nil)
            return
        }
        member = peer
        pendingChannel = nil
        state = .ready(channel)
        wasReady = true
        for frame in beforeReady { channel.write(frame, promise: nil) }
        beforeReady.removeAll()
        channel.flush()
        if !retiring { pool?.send(.ready(self, peer)) }
        handshakePromise?.succeed(peer)
        handshakePromise = nil
        closeIfRetiredAndDone()
    }

    /// Stops taking part: the connection was replaced by a newer one to the same member. It keeps
    /// reading acknowledgements for what it already carries, then closes (at the latest after
    /// ``retireGrace``); a connection that carries nothing closes at once.
    func retire(reason: String) {
        loop.preconditionInEventLoop()
        guard !retiring, !isClosed else { return }
        retiring = true
        retireReason = reason
        // A connection still connecting closes after its hello reply, once drained.
        if !closeIfRetiredAndDone() {
            loop.scheduleTask(in: Self.retireGrace) { [self] in close(reason: reason) }
        }
    }

    /// Closes a retired connection that nothing waits on any more.
    @discardableResult
    private func closeIfRetiredAndDone() -> Bool {
        guard retiring, !isClosed else { return false }
        if case .connecting = state { return false }
        guard outstanding.isEmpty, awaitingProcessing.isEmpty else { return false }
        close(reason: retireReason)
        return true
    }

    // MARK: - writing

    /// Queues a frame and remembers who waits for its acknowledgement. Loop only.
    func enqueue(_ frame: ByteBuffer, seq: UInt64, ticket: SendTicket?, slot: Int, guarantee: DeliveryGuarantee) {
        switch state {
        case .closed:
            release(1)
            if let ticket {
                ticket.resolve(slot: slot, .connectionFailed("connection to \(endpoint) is closed"))
            } else if let member {
                core.reportAsyncFailure(count: 1, to: member, reason: "connection to \(endpoint) is closed")
            }
            return
        case .ready(let channel):
            channel.write(frame, promise: nil)
            if !dirty {
                dirty = true
                core.scheduleFlush(self)
            }
        case .connecting:
            beforeReady.append(frame)
        case .idle:
            beforeReady.append(frame)
            _ = connect(timeout: core.settings.connectTimeout)
        }
        let entry = Entry(seq: seq, ticket: ticket, slot: slot)
        if guarantee == .processed {
            awaitingProcessing[seq] = entry
        } else {
            outstanding.append(entry)
        }
    }

    /// Writes a control frame (a heartbeat) if connected, flushed at once: the coalesced flush may
    /// wait behind a long backlog of loop tasks under load, and heartbeats must not. Connects if idle.
    func writeControl(_ frame: ByteBuffer) {
        switch state {
        case .ready(let channel):
            channel.writeAndFlush(frame, promise: nil)
        case .idle:
            beforeReady.append(frame)
            _ = connect(timeout: core.settings.connectTimeout)
        case .connecting:
            beforeReady.append(frame)
        case .closed:
            break
        }
    }

    func flush() {
        dirty = false
        if case .ready(let channel) = state { channel.flush() }
    }

    /// Writes the leave frame and completes once it is on the wire (or failed).
    func sendLeave() -> EventLoopFuture<Void> {
        guard case .ready(let channel) = state else { return loop.makeSucceededVoidFuture() }
        deliberateClose = true
        return channel.writeAndFlush(Frames.control(.leave, allocator: channel.allocator))
    }

    // MARK: - acknowledgements

    /// `count` messages left the queue: wakes senders waiting for room.
    func release(_ count: Int) {
        guard count > 0 else { return }
        let left = inFlight.subtract(count, ordering: .sequentiallyConsistent).newValue
        if room.hasWaiters { room.released(inFlight: left) }
    }

    /// Waits until fewer than `limit` messages are in flight, at most until `deadline`.
    func waitForRoom(below limit: Int, until deadline: ContinuousClock.Instant, clock: any CohortClock) async -> Bool {
        await room.wait(for: { [self] in inFlight.load(ordering: .sequentiallyConsistent) }, below: limit, until: deadline, clock: clock)
    }

    func onReceived(upTo seq: UInt64) {
        while let first = outstanding.first, first.seq <= seq {
            outstanding.removeFirst()
            release(1)
            first.ticket?.resolve(slot: first.slot, .delivered)
        }
        if retiring { closeIfRetiredAndDone() }
    }

    func onProcessed(_ seq: UInt64) {
        guard let entry = awaitingProcessing.removeValue(forKey: seq) else { return }
        release(1)
        entry.ticket?.resolve(slot: entry.slot, .delivered)
        if retiring { closeIfRetiredAndDone() }
    }

    func onFailed(_ seq: UInt64, reason: UInt8, text: String) {
        let outcome: MemberOutcome = reason == 1 ? .remoteFailure(text) : .rejected(text)
        defer { if retiring { closeIfRetiredAndDone() } }
        if let entry = awaitingProcessing.removeValue(forKey: seq) {
            release(1)
            entry.ticket?.resolve(slot: entry.slot, outcome)
            return
        }
        if let index = outstanding.firstIndex(where: { $0.seq == seq }) {
            let entry = outstanding.remove(at: index)
            release(1)
            if let ticket = entry.ticket {
                ticket.resolve(slot: entry.slot, outcome)
                return
            }
        }
        // An asynchronous (or receipt-acknowledged) message that the receiver could not handle:
        // its sender has already returned, so the failure goes to the async-failure report.
        if let member {
            let what = reason == 1 ? "the receiver's handler failed" : "rejected by the receiver"
            core.reportAsyncFailure(count: 1, to: member, reason: "\(what): \(text)")
        }
    }

    // MARK: - failure

    /// Closes on purpose (member forgotten, shutdown): waiters fail, no loss is reported as a surprise.
    func close(reason: String) {
        deliberateClose = true
        fail(reason: reason)
    }

    /// Fails everything outstanding and closes.
    func fail(reason: String) {
        loop.preconditionInEventLoop()
        if case .closed = state { return }
        let channel: (any Channel)?
        if case .ready(let c) = state { channel = c } else { channel = pendingChannel }
        state = .closed
        closed.store(true, ordering: .releasing)
        pendingChannel = nil
        beforeReady.removeAll()
        handshakePromise?.fail(CohortError(.connectionFailed, reason))
        handshakePromise = nil
        var asyncLost = 0
        for entry in outstanding {
            if let ticket = entry.ticket { ticket.resolve(slot: entry.slot, .connectionFailed(reason)) } else { asyncLost += 1 }
        }
        for entry in awaitingProcessing.values {
            if let ticket = entry.ticket { ticket.resolve(slot: entry.slot, .connectionFailed(reason)) } else { asyncLost += 1 }
        }
        release(outstanding.count + awaitingProcessing.count)
        outstanding.removeAll()
        awaitingProcessing.removeAll()
        channel?.close(promise: nil)
        let report = SenderPool.Message.closed(self, member, reason: reason, reportLoss: wasReady && !deliberateClose, asyncLost: asyncLost)
        if let pool {
            pool.send(report)
        } else if let member, !core.isShuttingDown {
            // A connection whose pool is gone (the transport was released without shutdown).
            if asyncLost > 0 { core.reportAsyncFailure(count: asyncLost, to: member, reason: reason) }
        }
    }
}

/// The client side of a connection: hello reply and acknowledgements.
final class OutboundHandler: ChannelInboundHandler {
    typealias InboundIn = WireFormat.Frame
    let connection: OutboundConnection
    private var acknowledged = false
    private var signOfLife = SignOfLife()

    init(connection: OutboundConnection) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        do {
            switch frame.kind {
            case .helloReply:
                connection.onHelloReply(try WireFormat.readMember(from: &frame.body))
            case .received:
                guard let seq = frame.body.readInteger(as: UInt64.self) else { throw WireFormat.truncated("ack") }
                acknowledged = true
                connection.onReceived(upTo: seq)
            case .processed:
                guard let seq = frame.body.readInteger(as: UInt64.self) else { throw WireFormat.truncated("ack") }
                acknowledged = true
                connection.onProcessed(seq)
            case .failed:
                guard let seq = frame.body.readInteger(as: UInt64.self), let reason = frame.body.readInteger(as: UInt8.self) else {
                    throw WireFormat.truncated("failure ack")
                }
                connection.onFailed(seq, reason: reason, text: try WireFormat.readString(from: &frame.body))
            case .error:
                let text = (try? WireFormat.readString(from: &frame.body)) ?? "unreadable error"
                connection.fail(reason: "peer refused the connection: \(text)")
            default:
                break
            }
        } catch {
            connection.core.countMalformed()
            connection.fail(reason: "malformed frame from \(connection.endpoint): \(error)")
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Acknowledgements prove the peer alive as well as its heartbeats do.
        if acknowledged {
            acknowledged = false
            if let member = connection.member, signOfLife.due() {
                connection.core.reportActivity(member)
            }
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.fail(reason: "connection to \(connection.endpoint) closed")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? CohortError, error.code != .unauthenticated { connection.core.countMalformed() }
        connection.fail(reason: "connection to \(connection.endpoint) failed: \(error)")
    }
}

extension WireFormat {
    static func truncated(_ what: String) -> CohortError {
        CohortError(.malformedFrame, "truncated \(what) frame")
    }
}
