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
/// - Timeouts: the deadlines of acknowledged sends wait in one queue served by one loop timer,
///   not a timer per send (see `SendDeadlines`).
public final class TCPTransport: Transport, @unchecked Sendable {
    let settings: TransportSettings
    let group: any EventLoopGroup
    /// All outbound connections live on this loop, so a fan-out is one loop task.
    let loop: any EventLoop
    let logger: Logger
    private let allocator = ByteBufferAllocator()
    private let sequence = Atomic<UInt64>(0)
    private let malformed = Atomic<Int>(0)
    private let shuttingDown = Atomic<Bool>(false)
    private let malformedCounter = Counter(label: "cohort.transport.malformed_frames")
    private let asyncFailureCounter = Counter(label: "cohort.transport.async_failures")

    private struct Shared {
        var local: Member?
        var delegate: (any TransportDelegate)?
        var server: (any Channel)?
        var connections: [MemberID: OutboundConnection] = [:]
        var inbound: [ObjectIdentifier: (channel: any Channel, member: Member)] = [:]
    }
    private let shared = NIOLockedValueBox(Shared())
    // Loop-confined: connections with unflushed writes.
    private var flushQueue: [OutboundConnection] = []
    private var flushScheduled = false
    // Loop-confined: the timeouts of acknowledged sends, and the one timer that serves them.
    private var deadlines = SendDeadlines()
    private var deadlineTimer: (task: Scheduled<Void>, at: NIODeadline)?

    /// Creates a transport.
    ///
    /// - Parameters:
    ///   - settings: frame cap and connect timeout.
    ///   - group: the event loops to use (default: NIO's shared singleton group).
    ///   - logger: where connection problems are logged.
    public init(settings: TransportSettings = TransportSettings(), group: (any EventLoopGroup)? = nil, logger: Logger = Logger(label: "cohort.transport.tcp")) {
        self.settings = settings
        self.group = group ?? MultiThreadedEventLoopGroup.singleton
        self.loop = self.group.next()
        self.logger = logger
    }

    /// Malformed frames seen so far (also exported as the `cohort.transport.malformed_frames` metric).
    public var malformedFrames: Int { malformed.load(ordering: .relaxed) }

    var localMember: Member { shared.withLockedValue { $0.local! } }
    var isShuttingDown: Bool { shuttingDown.load(ordering: .relaxed) }

    func countMalformed() {
        malformed.add(1, ordering: .relaxed)
        malformedCounter.increment()
    }

    // MARK: - lifecycle

    public func start(local: Member, delegate: any TransportDelegate) async throws -> Endpoint {
        shared.withLockedValue {
            $0.local = local
            $0.delegate = delegate
        }
        let maxFrame = settings.maxFrameSize
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrame)))
                    try channel.pipeline.syncOperations.addHandler(InboundHandler(transport: self, delegate: delegate))
                }
            }
        let server: any Channel
        do {
            server = try await bootstrap.bind(host: local.endpoint.host, port: local.endpoint.port).get()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw CohortError(.addressInUse, "port \(local.endpoint.port) on \(local.endpoint.host) is already in use; pick another --listen port or stop the process using it", cause: error)
        } catch {
            throw CohortError(.connectionFailed, "cannot listen on \(local.endpoint): \(error)", cause: error)
        }
        let port = server.localAddress?.port ?? local.endpoint.port
        let bound = Endpoint(host: local.endpoint.host, port: port)
        shared.withLockedValue {
            $0.server = server
            $0.local?.endpoint = bound
        }
        return bound
    }

    public func shutdown() async {
        shuttingDown.store(true, ordering: .relaxed)
        let (server, inbound) = shared.withLockedValue { ($0.server, $0.inbound.values.map(\.channel)) }
        // Stop accepting first, so a probe arriving during shutdown is refused, not answered.
        try? await server?.close()
        for channel in inbound { try? await channel.close() }
        try? await loop.submit { [self] in
            for connection in shared.withLockedValue({ Array($0.connections.values) }) {
                connection.close(reason: "transport shut down")
            }
        }.get()
    }

    /// Closes every socket at once without telling anyone — what peers see when the process
    /// crashes. For tests and emergency stops; ``shutdown()`` is the normal way.
    public func abort() async {
        await shutdown()
    }

    /// The address the transport listens on, once started.
    public var boundEndpoint: Endpoint? { shared.withLockedValue { $0.server == nil ? nil : $0.local?.endpoint } }

    // MARK: - membership helpers

    public func handshake(with endpoint: Endpoint, timeout: Duration) async throws -> Member {
        let connection = OutboundConnection(endpoint: endpoint, member: nil, transport: self, loop: loop)
        return try await loop.flatSubmit { connection.connect(timeout: timeout) }.get()
    }

    func connectionBecameReady(_ connection: OutboundConnection) {
        guard let member = connection.member else { return }
        let previous: OutboundConnection? = shared.withLockedValue { shared in
            let old = shared.connections[member.id]
            shared.connections[member.id] = connection
            return old
        }
        if let previous, previous !== connection {
            // Both sides connected at once, or a handshake raced a send. The older connection may
            // still carry messages waiting for acknowledgement: it takes no new writes and closes
            // once those are answered, so nothing is failed for the race.
            previous.retire(reason: "replaced by a newer connection")
        }
    }

    func connectionClosed(_ connection: OutboundConnection, reason: String, reportLoss: Bool, asyncLost: Int) {
        let delegate: (any TransportDelegate)? = shared.withLockedValue { shared in
            if let member = connection.member, shared.connections[member.id] === connection {
                shared.connections.removeValue(forKey: member.id)
            }
            return shared.delegate
        }
        guard let member = connection.member, !isShuttingDown else { return }
        if asyncLost > 0 { reportAsyncFailure(count: asyncLost, to: member, reason: reason) }
        if reportLoss { delegate?.transport(lostConnectionTo: member, reason: reason) }
    }

    func reportAsyncFailure(count: Int, to member: Member, reason: String) {
        asyncFailureCounter.increment(by: count)
        shared.withLockedValue { $0.delegate }?.transport(asyncMessagesFailed: count, to: member, reason: reason)
    }

    /// Traffic from a member counts as a sign of life (see ``SignOfLife``).
    func reportActivity(_ member: Member) {
        shared.withLockedValue { $0.delegate }?.transport(sawActivityFrom: member)
    }

    func registerInbound(_ channel: any Channel, member: Member) {
        shared.withLockedValue { $0.inbound[ObjectIdentifier(channel)] = (channel, member) }
    }

    /// Forgets an inbound connection.
    ///
    /// - Returns: whether it was the last inbound connection from its member (two may briefly
    ///   exist while both sides connect at once; only losing the last one is news).
    func unregisterInbound(_ channel: any Channel) -> Bool {
        shared.withLockedValue { shared in
            guard let removed = shared.inbound.removeValue(forKey: ObjectIdentifier(channel)) else { return true }
            return !shared.inbound.values.contains { $0.member.id == removed.member.id }
        }
    }

    public func forget(_ member: Member) {
        let inbound: [any Channel] = shared.withLockedValue { shared in
            shared.inbound.values.filter { $0.member.id == member.id }.map(\.channel)
        }
        loop.execute { [self] in
            shared.withLockedValue { $0.connections[member.id] }?.close(reason: "\(member.name) left the view")
        }
        for channel in inbound { channel.close(promise: nil) }
    }

    // MARK: - sending

    /// The connection to a member, created (not yet connected) if missing. Loop only.
    private func connection(to member: Member) -> OutboundConnection {
        shared.withLockedValue { shared in
            if let existing = shared.connections[member.id], !existing.isClosed { return existing }
            let fresh = OutboundConnection(endpoint: member.endpoint, member: member, transport: self, loop: loop)
            shared.connections[member.id] = fresh
            return fresh
        }
    }

    /// The connection a send's loop task writes to: the one looked up when the send began, unless
    /// it closed in between — typically replaced by a newer connection to the same member (both
    /// sides connecting at start-up), which retires it and closes it at once when it carries
    /// nothing. Nothing was written to it, so the message goes to the member's current connection
    /// (a fresh one if there is none, as the next send would get) and its place in the queue limit
    /// moves with it. Loop only.
    private func current(_ connection: OutboundConnection, for member: Member) -> OutboundConnection {
        guard connection.isClosed else { return connection }
        let replacement = self.connection(to: member)
        connection.inFlight.subtract(1, ordering: .relaxed)
        replacement.inFlight.add(1, ordering: .relaxed)
        return replacement
    }

    /// The next sequence number. Loop only.
    private func nextSequence() -> UInt64 {
        loop.preconditionInEventLoop()
        return sequence.add(1, ordering: .relaxed).newValue
    }

    func scheduleFlush(_ connection: OutboundConnection) {
        flushQueue.append(connection)
        if !flushScheduled {
            flushScheduled = true
            // Runs after every write task already queued on the loop: one flush per batch.
            loop.execute { [self] in
                flushScheduled = false
                let pending = flushQueue
                flushQueue.removeAll(keepingCapacity: true)
                for connection in pending { connection.flush() }
            }
        }
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

        // Queue limits, per member, checked without touching the loop.
        var early: [Int: MemberOutcome] = [:]
        let connections: [OutboundConnection] = shared.withLockedValue { shared in
            members.map { member in
                if let existing = shared.connections[member.id], !existing.isClosed { return existing }
                let fresh = OutboundConnection(endpoint: member.endpoint, member: member, transport: self, loop: loop)
                shared.connections[member.id] = fresh
                return fresh
            }
        }
        for (i, connection) in connections.enumerated() where connection.inFlight.load(ordering: .relaxed) >= message.queueLimit {
            switch message.queuePolicy {
            case .failFast: early[i] = .queueFull
            case .sendSynchronously: if guarantee == .asynchronous { guarantee = .receipt }
            case .block:
                let deadline = ContinuousClock.now.advanced(by: message.options.timeout)
                var waited = Duration.microseconds(50)
                while connection.inFlight.load(ordering: .relaxed) >= message.queueLimit {
                    if ContinuousClock.now >= deadline {
                        early[i] = .timedOut
                        break
                    }
                    try? await Task.sleep(for: waited)
                    waited = min(waited * 2, .milliseconds(5))
                }
            }
        }

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
        let timeout = message.options.timeout
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
                    watch(ticket, deadline: .now() + TimeAmount(timeout))
                }
            }
        }
    }

    /// Times `ticket` out at `deadline` unless its acknowledgements arrive first. Loop only.
    private func watch(_ ticket: SendTicket, deadline: NIODeadline) {
        deadlines.add(ticket, deadline: deadline)
        guard let earliest = deadlines.earliest else { return }
        if let armed = deadlineTimer, armed.at <= earliest { return }
        armDeadlineTimer(at: earliest)
    }

    private func armDeadlineTimer(at deadline: NIODeadline) {
        deadlineTimer?.task.cancel()
        let task = loop.scheduleTask(deadline: deadline) { [self] in
            deadlineTimer = nil
            if let next = deadlines.expire(now: .now()) { armDeadlineTimer(at: next) }
        }
        deadlineTimer = (task, deadline)
    }

    public func heartbeat(to members: [Member]) {
        guard !isShuttingDown else { return }
        loop.execute { [self] in
            for member in members {
                connection(to: member).writeControl(Frames.control(.heartbeat, allocator: allocator))
            }
        }
    }

    public func leave(notifying members: [Member]) async {
        let futures: [EventLoopFuture<Void>] = (try? await loop.submit { [self] in
            members.map { connection(to: $0).sendLeave() }
        }.get()) ?? []
        // Give the words a moment to reach the wire; a dead peer must not hold the leave up.
        let all = EventLoopFuture.andAllComplete(futures, on: loop)
        let timeout = loop.makePromise(of: Void.self)
        loop.scheduleTask(in: .milliseconds(500)) { timeout.succeed() }
        all.cascade(to: timeout)
        try? await timeout.futureResult.get()
    }

    // MARK: - probing

    public func probe(_ member: Member, timeout: Duration) async -> FailureDetectorState.ProbeResult {
        let local = localMember
        let wait = TimeAmount(timeout)
        let promise = loop.makePromise(of: Member.self)
        let maxFrame = settings.maxFrameSize
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(wait)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrame)))
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
