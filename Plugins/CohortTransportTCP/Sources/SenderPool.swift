import CohortCore
import NIOConcurrencyHelpers
import NIOCore

/// The sender pool (Tribes' `PooledParallelSender`): an actor that owns the outbound connections —
/// which connection is each member's, opening them, handshakes, retiring a connection that a
/// newer one replaced, forgetting members — and publishes the table the send path reads.
///
/// ```
///  send path (a member without an open connection) ──connections(to:)──▶ ┌────────────┐
///  MembershipService ──handshake(with:) / .heartbeat / .forget─────────▶ │ SenderPool │──▶ table snapshot
///  connections, on the sender loop ──.ready / .closed──────────────────▶ └────────────┘    (read by send)
///                                                                              │
///                                   lost connections, async losses ◀───────────┘ (TransportDelegate)
/// ```
///
/// The per-message path never waits for it while the members it sends to have open connections:
/// ``TCPTransport/send(_:to:)`` reads the published ``table`` under one short lock and writes on
/// the sender loop. Only a send to a member with no open connection (the first one, or the first
/// after a failure) asks the actor for one. A connection's own state (frames before the hello
/// reply, messages waiting for acknowledgement) is confined to the sender loop, in the
/// connection.
actor SenderPool {
    /// What the pool reacts to.
    enum Message: Sendable {
        /// A connection finished its hello exchange with `member`: it becomes the member's
        /// connection, and the one it replaces retires (it delivers what it carries, then closes).
        case ready(OutboundConnection, Member)
        /// A connection closed; `reportLoss` when it was ready and nobody closed it on purpose,
        /// `asyncLost` asynchronous messages went with it.
        case closed(OutboundConnection, Member?, reason: String, reportLoss: Bool, asyncLost: Int)
        /// A connection the sender loop opened for a message whose connection closed before the
        /// message was written: it becomes the member's connection unless the member has an open
        /// one already, in which case it delivers that message and retires.
        case adopt(OutboundConnection, Member)
        /// Heartbeats to these members (opening connections where needed).
        case heartbeat([Member])
        /// The member left the view: close its connection.
        case forget(Member)
    }

    enum Envelope: Sendable {
        case message(Message)
        case barrier(CheckedContinuation<Void, Never>)
    }

    /// The connection of each member, as last published: the send path's snapshot. Written only by
    /// this actor.
    nonisolated let table = NIOLockedValueBox<[MemberID: OutboundConnection]>([:])
    private var connections: [MemberID: OutboundConnection] = [:]
    /// Connections this actor retired and that have not closed yet: a late `ready` from one of
    /// them (its hello reply crossed the retirement on the loop) must not bring it back.
    private var retired: Set<ObjectIdentifier> = []
    private let core: TransportCore
    nonisolated private let mailbox: AsyncStream<Envelope>
    nonisolated private let input: AsyncStream<Envelope>.Continuation

    init(core: TransportCore) {
        self.core = core
        (self.mailbox, self.input) = AsyncStream.makeStream(of: Envelope.self)
    }

    /// Hands a message to the pool (never waits).
    nonisolated func send(_ message: Message) {
        input.yield(.message(message))
    }

    /// Waits until every message sent before this call has been handled.
    func settle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if case .terminated = input.yield(.barrier(continuation)) { continuation.resume() }
        }
    }

    /// Handles messages until ``finish()``.
    func run() async {
        for await envelope in mailbox {
            switch envelope {
            case .barrier(let continuation): continuation.resume()
            case .message(let message): handle(message)
            }
        }
    }

    /// Ends ``run()`` once the messages sent so far are handled.
    nonisolated func finish() {
        input.finish()
    }

    private func handle(_ message: Message) {
        switch message {
        case .ready(let connection, let member):
            let previous = connections[member.id]
            guard previous !== connection, !retired.contains(ObjectIdentifier(connection)), !connection.isClosed else { return }
            connections[member.id] = connection
            publish()
            if let previous {
                // Both sides connected at once, or a handshake raced a send. The older connection
                // may still carry messages waiting for acknowledgement: it takes no new writes
                // (the table no longer names it) and closes once those are answered, so nothing
                // is failed for the race.
                retire(previous, reason: "replaced by a newer connection")
            }
        case .adopt(let connection, let member):
            if let existing = connections[member.id], existing !== connection, !existing.isClosed {
                retire(connection, reason: "\(member.name) has a newer connection")
            } else if !connection.isClosed {
                connections[member.id] = connection
                publish()
            }
        case .closed(let connection, let member, let reason, let reportLoss, let asyncLost):
            retired.remove(ObjectIdentifier(connection))
            if let member, connections[member.id] === connection {
                connections.removeValue(forKey: member.id)
                publish()
            }
            guard let member, !core.isShuttingDown else { return }
            if asyncLost > 0 { core.reportAsyncFailure(count: asyncLost, to: member, reason: reason) }
            if reportLoss { core.delegate?.transport(lostConnectionTo: member, reason: reason) }
        case .heartbeat(let members):
            guard !core.isShuttingDown else { return }
            let targets = members.map { connection(to: $0) }
            let allocator = core.allocator
            core.loop.execute {
                for connection in targets {
                    connection.writeControl(Frames.control(.heartbeat, allocator: allocator))
                }
            }
        case .forget(let member):
            guard let connection = connections.removeValue(forKey: member.id) else { return }
            publish()
            core.loop.execute { connection.close(reason: "\(member.name) left the view") }
        }
    }

    private func retire(_ connection: OutboundConnection, reason: String) {
        retired.insert(ObjectIdentifier(connection))
        core.loop.execute { connection.retire(reason: reason) }
    }

    /// The open connection of each member, created (not yet connected) where missing: what the
    /// send path asks for when its snapshot has none.
    func connections(to members: [Member]) -> [OutboundConnection] {
        members.map { connection(to: $0) }
    }

    /// Connects to an address and exchanges member records. The connection joins the table when
    /// its hello reply arrives (``Message/ready(_:_:)``); the actor is free while it waits.
    func handshake(with endpoint: Endpoint, timeout: Duration) async throws -> Member {
        let connection = OutboundConnection(endpoint: endpoint, member: nil, core: core, pool: self)
        return try await core.loop.flatSubmit { connection.connect(timeout: timeout) }.get()
    }

    /// The open connections to these members (none is created: a member without one hears
    /// nothing).
    func open(to members: [Member]) -> [OutboundConnection] {
        members.compactMap { member in connections[member.id].flatMap { $0.isClosed ? nil : $0 } }
    }

    /// Every connection, emptying the table (shutdown).
    func removeAll() -> [OutboundConnection] {
        defer {
            connections.removeAll()
            publish()
        }
        return Array(connections.values)
    }

    private func connection(to member: Member) -> OutboundConnection {
        if let existing = connections[member.id], !existing.isClosed { return existing }
        let fresh = OutboundConnection(endpoint: member.endpoint, member: member, core: core, pool: self)
        connections[member.id] = fresh
        publish()
        return fresh
    }

    private func publish() {
        let snapshot = connections
        table.withLockedValue { $0 = snapshot }
    }
}
