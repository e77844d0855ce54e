import CohortCore
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Synchronization

/// Cohort's TCP transport on SwiftNIO.
///
/// - One long-lived connection per member for sending, opened lazily and re-opened after a
///   failure; the peer's own connection to us carries its messages and heartbeats.
/// - Fan-out: the frame is built **once**; one event-loop task writes the same `ByteBuffer` to
///   every destination connection (no copy, no allocation, no actor hop per member), and flushes
///   are coalesced, so many messages go out per system call under load.
/// - Acknowledgements: cumulative `received` frames (one per read batch) and per-message
///   `processed`/`failed` frames; the sender waits with one continuation per message.
/// - Frames above ``TransportSettings/maxFrameSize`` are refused by sender and receiver.
/// - Timeouts: the deadlines of acknowledged sends wait in one queue served by one timer on the
///   injected ``CohortClock``, not a timer per send (see `SendDeadlines`).
///
/// Control plane: the ``SenderPool`` actor owns the outbound connections (which is each member's,
/// handshakes, retiring, forgetting) and publishes the table the send path reads; the
/// ``Receiver`` actor owns the accepted connections. Both take typed messages. The send path reads
/// the pool's snapshot and never waits for an actor unless a member has no open connection.
/// Loop-confined state (the flush list, the deadline queue) lives in a `NIOLoopBoundBox`.
public final class TCPTransport: Transport, QueueDepthReporting, Sendable {
    /// What the connections and the two actors share.
    let core: TransportCore
    let group: any EventLoopGroup
    /// The clock of send timeouts (tests pass a manual clock).
    let clock: any CohortClock
    private let sequence = Atomic<UInt64>(0)
    /// The control plane of the outbound connections.
    let pool: SenderPool
    /// The control plane of the accepted connections.
    let receiver: Receiver

    /// Set by ``start(local:delegate:)``: the listener and the task that runs the two actors'
    /// mailboxes.
    private struct Running: Sendable {
        var server: (any Channel)?
        var actors: Task<Void, Never>
    }
    private let running = NIOLockedValueBox<Running?>(nil)

    /// Loop-confined: the timeouts of acknowledged sends and the one timer that serves them.
    struct DeadlineState: Sendable {
        var deadlines = SendDeadlines()
        var timer: (task: Task<Void, Never>, at: ContinuousClock.Instant)?
    }
    private let deadlineState: NIOLoopBoundBox<DeadlineState>

    var settings: TransportSettings { core.settings }
    /// All outbound connections live on this loop, so a fan-out is one loop task.
    var loop: any EventLoop { core.loop }
    var logger: Logger { core.logger }
    var allocator: ByteBufferAllocator { core.allocator }

    /// Creates a transport.
    ///
    /// - Parameters:
    ///   - settings: frame cap and connect timeout.
    ///   - group: the event loops to use (default: NIO's shared singleton group).
    ///   - logger: where connection problems are logged.
    ///   - clock: the clock of send timeouts (tests pass a manual clock).
    ///   - security: how connections are protected (``TransportSecurity/plaintext`` by default;
    ///     ``TransportSecurity/sharedKey(_:)`` for a cluster key).
    ///   - limits: caps and timeouts of inbound connections.
    public init(
        settings: TransportSettings = TransportSettings(),
        group: (any EventLoopGroup)? = nil,
        logger: Logger = Logger(label: "cohort.transport.tcp"),
        clock: any CohortClock = SystemClock(),
        security: TransportSecurity = .plaintext,
        limits: ConnectionLimits = ConnectionLimits()
    ) {
        let group = group ?? MultiThreadedEventLoopGroup.singleton
        let core = TransportCore(settings: settings, security: security, limits: limits, loop: group.next(), logger: logger)
        self.core = core
        self.group = group
        self.clock = clock
        self.pool = SenderPool(core: core)
        self.receiver = Receiver(core: core, budget: Receiver.Budget(maxFrameSize: settings.maxFrameSize))
        self.deadlineState = .makeBoxSendingValue(DeadlineState(), eventLoop: core.loop)
    }

    /// Malformed frames seen so far (also exported as the `cohort.transport.malformed_frames` metric).
    public var malformedFrames: Int { core.malformedFrames }

    var localMember: Member { core.localMember }
    var isShuttingDown: Bool { core.isShuttingDown }

    // MARK: - lifecycle

    public func start(local: Member, delegate: any TransportDelegate) async throws -> Endpoint {
        core.start(local: local, delegate: delegate)
        // The actors run before the listener opens, so the first connection finds them.
        let actors = Task { [pool, receiver] in
            await withDiscardingTaskGroup { group in
                group.addTask { await pool.run() }
                group.addTask { await receiver.run() }
            }
        }
        running.withLockedValue { $0 = Running(server: nil, actors: actors) }
        let maxFrame = core.decoderFrameCap
        let core = self.core
        let receiver = self.receiver
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Above the caps: closed before a byte is read.
                    if let refusal = core.gate.admit(channel) {
                        core.refuse(refusal, "refused a connection from \(channel.remoteAddress.map { "\($0)" } ?? "unknown peer"): \(refusal == .connectionsTotal ? "\(core.limits.maxInboundConnections) inbound connections are open" : "\(core.limits.maxInboundConnectionsPerSource) inbound connections from that address are open")")
                        channel.close(promise: nil)
                        return
                    }
                    // Until the peer's hello, frames are capped at a member record's size.
                    let cap = FrameCap(min(maxFrame, FrameCap.beforeHello + core.security.bodyOverhead))
                    let sync = channel.pipeline.syncOperations
                    try core.addTLSHandler(to: sync, role: .server)
                    try sync.addHandler(IdleStateHandler(readTimeout: TimeAmount(core.limits.idleTimeout)))
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder(cap: cap)))
                    try core.addSecurityHandler(to: sync, role: .server)
                    try sync.addHandler(InboundHandler(core: core, receiver: receiver, delegate: delegate, cap: cap, fullCap: maxFrame))
                }
            }
        let server: any Channel
        do {
            server = try await bootstrap.bind(host: local.endpoint.host, port: local.endpoint.port).get()
        } catch {
            // Nothing to serve: the actors stop, and a later shutdown() has nothing to do.
            pool.finish()
            receiver.finish()
            await actors.value
            running.withLockedValue { $0 = nil }
            if let io = error as? IOError, io.errnoCode == EADDRINUSE {
                throw CohortError(.addressInUse, "port \(local.endpoint.port) on \(local.endpoint.host) is already in use; pick another --listen port or stop the process using it", cause: error)
            }
            throw CohortError(.connectionFailed, "cannot listen on \(local.endpoint): \(error)", cause: error)
        }
        let port = server.localAddress?.port ?? local.endpoint.port
        let bound = Endpoint(host: local.endpoint.host, port: port)
        core.bound(to: bound)
        running.withLockedValue { $0?.server = server }
        return bound
    }

    public func shutdown() async {
        core.beginShutdown()
        // Never started (or its listener failed): no actor runs, nothing is open.
        guard let started = running.withLockedValue({ $0 }) else { return }
        let (server, actors) = (started.server, started.actors)
        // Stop accepting first, so a probe arriving during shutdown is refused, not answered.
        try? await server?.close()
        await receiver.settle()
        for channel in await receiver.removeAll() { try? await channel.close() }
        await pool.settle()
        let connections = await pool.removeAll()
        try? await loop.submit {
            for connection in connections { connection.close(reason: "transport shut down") }
        }.get()
        pool.finish()
        receiver.finish()
        await actors.value
    }

    /// Closes every socket at once without telling anyone — what peers see when the process
    /// crashes. For tests and emergency stops; ``shutdown()`` is the normal way.
    public func abort() async {
        await shutdown()
    }

    /// The address the transport listens on, once started.
    public var boundEndpoint: Endpoint? {
        guard running.withLockedValue({ $0?.server }) != nil else { return nil }
        return core.localMember.endpoint
    }

    // MARK: - membership helpers

    public func handshake(with endpoint: Endpoint, timeout: Duration) async throws -> Member {
        try await pool.handshake(with: endpoint, timeout: timeout)
    }

    /// Messages in flight to a member on its current connection (its dispatch queue), or nil
    /// when it has none.
    public func queueDepth(of member: MemberID) -> Int? {
        pool.table.withLockedValue { $0[member] }?.inFlight.load(ordering: .relaxed)
    }

    public func forget(_ member: Member) {
        pool.send(.forget(member))
        receiver.send(.forget(member))
    }

    // MARK: - sending

    /// The connection a send's loop task writes to: the one looked up when the send began, unless
    /// it closed in between — typically replaced by a newer connection to the same member (both
    /// sides connecting at start-up), which retires it and closes it at once when it carries
    /// nothing. Nothing was written to it, so the message goes to the member's current connection
    /// in the pool's table, or, when the table names none that is open (the pool has not heard of
    /// the close yet), to the closed connection's one replacement, opened here and handed to the
    /// pool — as the next send would get a fresh one. Its place in the queue limit moves with it.
    /// Loop only.
    private func current(_ connection: OutboundConnection, for member: Member) -> OutboundConnection {
        guard connection.isClosed else { return connection }
        let listed = pool.table.withLockedValue { $0[member.id] }
        guard let replacement = listed.flatMap({ $0.isClosed ? nil : $0 }) ?? connection.replacement() else { return connection }
        connection.release(1)
        replacement.inFlight.add(1, ordering: .relaxed)
        return replacement
    }

    /// The open connection of every member in the pool's published table, or nil when one has
    /// none.
    private static func lookUp(_ members: [Member], in table: [MemberID: OutboundConnection]) -> [OutboundConnection]? {
        var found: [OutboundConnection] = []
        found.reserveCapacity(members.count)
        for member in members {
            guard let connection = table[member.id], !connection.isClosed else { return nil }
            found.append(connection)
        }
        return found
    }

    /// The slow path of a send: a member without an open connection (the first send to it, or
    /// the first after a failure) makes the send ask the pool, which opens one.
    private func connectionsAskingThePool(for members: [Member]) async -> [OutboundConnection] {
        await pool.connections(to: members)
    }

    /// The next sequence number. Loop only.
    private func nextSequence() -> UInt64 {
        loop.preconditionInEventLoop()
        return sequence.add(1, ordering: .relaxed).newValue
    }

    public func send(_ message: OutboundMessage, to members: [Member]) async -> SendReport {
        let frameSize = WireFormat.headerSize + 16 + message.payload.readableBytes
        if frameSize > settings.maxFrameSize {
            let why = "message of \(frameSize) bytes exceeds the frame cap of \(settings.maxFrameSize) bytes"
            return SendReport(outcomes: members.map { ($0.id, .rejected(why)) })
        }
        if isShuttingDown {
            return SendReport(outcomes: members.map { ($0.id, .connectionFailed("transport shut down")) })
        }
        var guarantee = message.options.guarantee
        // One deadline for the whole send: waiting for room in full queues and waiting for the
        // acknowledgements both end at it.
        let deadline = clock.now.advanced(by: message.options.timeout)

        let listed = pool.table.withLockedValue { table in Self.lookUp(members, in: table) }
        let connections = if let listed { listed } else { await connectionsAskingThePool(for: members) }

        // Queue limits, per member, checked without touching the loop.
        var earlyOutcomes: [Int: MemberOutcome] = [:]
        for (i, connection) in connections.enumerated() where connection.inFlight.load(ordering: .relaxed) >= message.queueLimit {
            switch message.queuePolicy {
            case .failFast: earlyOutcomes[i] = .queueFull
            case .sendSynchronously: if guarantee == .asynchronous { guarantee = .receipt }
            case .block:
                // Parked until acknowledgements make room (no polling), at most until the send's deadline.
                if await !connection.waitForRoom(below: message.queueLimit, until: deadline, clock: clock) {
                    earlyOutcomes[i] = .timedOut
                }
            }
        }

        let early = earlyOutcomes

        // The sequence number is taken on the loop, where every write happens, so numbers reach
        // each connection in increasing order (cumulative acks rely on it). The frame is built
        // there once and the same buffer goes to every connection.
        // A message counts against each member's queue limit from the moment it is handed to the
        // loop, not when the loop gets to it: otherwise a fast sender could pile up an unbounded
        // backlog of loop tasks, and heartbeats queued behind it would arrive too late.
        for (i, connection) in connections.enumerated() where early[i] == nil {
            connection.inFlight.add(1, ordering: .relaxed)
        }
        if guarantee == .asynchronous {
            loop.execute { [self] in
                let seq = nextSequence()
                let frame = Frames.data(message, seq: seq, allocator: allocator)
                for (i, connection) in connections.enumerated() where early[i] == nil {
                    current(connection, for: members[i]).enqueue(frame, seq: seq, ticket: nil, slot: i, guarantee: .asynchronous)
                }
            }
            var report = SendReport()
            report.outcomes.reserveCapacity(members.count)
            for i in members.indices { report.outcomes.append((members[i].id, early[i] ?? .queued)) }
            return report
        }

        let ticket = SendTicket(members: members.map(\.id))
        for (slot, outcome) in early { ticket.resolve(slot: slot, outcome) }
        let sendGuarantee = guarantee
        return await withCheckedContinuation { continuation in
            ticket.install(continuation)
            loop.execute { [self] in
                let seq = nextSequence()
                let frame = Frames.data(message, seq: seq, allocator: allocator)
                for (i, connection) in connections.enumerated() where early[i] == nil {
                    current(connection, for: members[i]).enqueue(frame, seq: seq, ticket: ticket, slot: i, guarantee: sendGuarantee)
                }
                if !ticket.isFinished {
                    watch(ticket, deadline: deadline)
                }
            }
        }
    }

    /// Times `ticket` out at `deadline` unless its acknowledgements arrive first. Loop only.
    private func watch(_ ticket: SendTicket, deadline: ContinuousClock.Instant) {
        let arm: ContinuousClock.Instant? = deadlineState.withValue { state in
            state.deadlines.add(ticket, deadline: deadline)
            guard let earliest = state.deadlines.earliest else { return nil }
            if let armed = state.timer, armed.at <= earliest { return nil }
            return earliest
        }
        if let arm { armDeadlineTimer(at: arm) }
    }

    /// Arms the one deadline timer: a task that sleeps on the clock, then expires what is due on
    /// the loop. Re-armed only for an earlier deadline or after it fired. Loop only.
    private func armDeadlineTimer(at deadline: ContinuousClock.Instant) {
        let task = Task { [clock, loop] in
            do {
                try await clock.sleep(for: deadline - clock.now)
            } catch {
                return
            }
            loop.execute { [self] in deadlineTimerFired(at: deadline) }
        }
        let previous = deadlineState.withValue { state in
            defer { state.timer = (task, deadline) }
            return state.timer?.task
        }
        previous?.cancel()
    }

    private func deadlineTimerFired(at deadline: ContinuousClock.Instant) {
        let now = clock.now
        let next: ContinuousClock.Instant? = deadlineState.withValue { state in
            // A timer that was replaced by an earlier one may still wake: only the armed one counts.
            guard let armed = state.timer, armed.at == deadline else { return nil }
            state.timer = nil
            return state.deadlines.expire(now: now)
        }
        if let next { armDeadlineTimer(at: next) }
    }

    /// The acknowledged sends waiting for their deadline, and the deadline the timer is armed for
    /// (for tests).
    func deadlineQueue() async -> (waiting: Int, armedAt: ContinuousClock.Instant?) {
        (try? await loop.submit { [self] in
            deadlineState.withValue { ($0.deadlines.count, $0.timer?.at) }
        }.get()) ?? (0, nil)
    }

    public func heartbeat(to members: [Member]) {
        guard !isShuttingDown else { return }
        // Like a send: members with an open connection in the pool's table get the frame from
        // one loop task at once (heartbeats are what a busy node's liveness rests on, so they do
        // not queue behind the pool); only the others ask the pool to open one.
        var missing: [Member] = []
        let open: [OutboundConnection] = pool.table.withLockedValue { table in
            members.compactMap { member in
                if let connection = table[member.id], !connection.isClosed { return connection }
                missing.append(member)
                return nil
            }
        }
        if !open.isEmpty {
            let allocator = self.allocator
            loop.execute {
                for connection in open { connection.writeControl(Frames.control(.heartbeat, allocator: allocator)) }
            }
        }
        if !missing.isEmpty { pool.send(.heartbeat(missing)) }
    }

    public func leave(notifying members: [Member]) async {
        let connections = await pool.open(to: members)
        let futures: [EventLoopFuture<Void>] = (try? await loop.submit {
            connections.map { $0.sendLeave() }
        }.get()) ?? []
        // Give the words a moment to reach the wire; a dead peer must not hold the leave up.
        let all = EventLoopFuture.andAllComplete(futures, on: loop)
        let timeout = loop.makePromise(of: Void.self)
        loop.scheduleTask(in: .milliseconds(500)) { timeout.succeed() }
        all.cascade(to: timeout)
        try? await timeout.futureResult.get()
        // Then wait, briefly, until the peers closed their connections to this node: a peer does
        // that when it has handled the leave (it forgets the member). Closing this node's listener
        // and connections before would race the leave at the peer: a connection closed under it,
        // and a probe refused, would make it remove this node as failed instead.
        let closed = loop.makePromise(of: Void.self)
        receiver.send(.whenClosed(Set(members.map(\.id)), closed))
        loop.scheduleTask(in: .seconds(1)) { closed.succeed() }
        try? await closed.futureResult.get()
    }

    // MARK: - probing

    public func probe(_ member: Member, timeout: Duration) async -> FailureDetectorState.ProbeResult {
        let local = localMember
        let wait = TimeAmount(timeout)
        let promise = loop.makePromise(of: Member.self)
        let maxFrame = core.decoderFrameCap
        let core = self.core
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(wait)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try core.addTLSHandler(to: channel.pipeline.syncOperations, role: .client)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrame)))
                    try core.addSecurityHandler(to: channel.pipeline.syncOperations, role: .client)
                    try channel.pipeline.syncOperations.addHandler(ProbeHandler(promise: promise))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: member.endpoint.host, port: member.endpoint.port).get()
        } catch {
            promise.fail(error)
            return Self.isRefused(error) ? .refused : .timedOut
        }
        var frame = channel.allocator.buffer(capacity: 128)
        var body = channel.allocator.buffer(capacity: 128)
        WireFormat.writeMember(local, into: &body)
        WireFormat.writeHeader(kind: .probe, length: body.readableBytes, into: &frame)
        frame.writeImmutableBuffer(body)
        channel.writeAndFlush(frame, promise: nil)
        let timer = loop.scheduleTask(in: wait) { promise.fail(CohortError(.timeout, "probe timed out")) }
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        do {
            let answered = try await promise.futureResult.get()
            return answered.id == member.id ? .alive : .refused
        } catch {
            return .timedOut
        }
    }

    static func isRefused(_ error: any Error) -> Bool {
        if let io = error as? IOError { return io.errnoCode == ECONNREFUSED }
        if let multi = error as? NIOConnectionError {
            return !multi.connectionErrors.isEmpty && multi.connectionErrors.allSatisfy { isRefused($0.error) }
        }
        return false
    }
}

/// Waits for the hello reply of a probe.
final class ProbeHandler: ChannelInboundHandler {
    typealias InboundIn = WireFormat.Frame
    let promise: EventLoopPromise<Member>

    init(promise: EventLoopPromise<Member>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        if frame.kind == .helloReply, let member = try? WireFormat.readMember(from: &frame.body) {
            promise.succeed(member)
        } else {
            promise.fail(CohortError(.malformedFrame, "unexpected answer to a probe"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(CohortError(.connectionFailed, "probe connection closed"))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
    }
}
