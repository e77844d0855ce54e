import Cohort
import DequeModule
import NIOConcurrencyHelpers

/// A network of in-memory transports: nodes in one process, no sockets.
///
/// Messages between two nodes arrive in order; the receiver's handlers run one at a time per
/// node. Nodes can be killed (their peers see broken connections and refused probes) or cut
/// off from each other in one or both directions.
public final class InMemoryNetwork: Sendable {
    private struct Shared {
        var nodes: [Endpoint: InMemoryTransport] = [:]
        var nextPort = 10_000
        var cut: Set<[Endpoint]> = []
    }
    private let shared = NIOLockedValueBox(Shared())

    public init() {}

    /// A new transport on this network.
    public func makeTransport() -> InMemoryTransport { InMemoryTransport(network: self) }

    func bind(_ transport: InMemoryTransport, requested: Endpoint) throws -> Endpoint {
        try shared.withLockedValue { shared in
            var endpoint = requested
            if endpoint.port == 0 {
                endpoint.port = shared.nextPort
                shared.nextPort += 1
            }
            if shared.nodes[endpoint] != nil {
                throw CohortError(.addressInUse, "in-memory address \(endpoint) is already bound")
            }
            shared.nodes[endpoint] = transport
            return endpoint
        }
    }

    func unbind(_ endpoint: Endpoint) {
        _ = shared.withLockedValue { $0.nodes.removeValue(forKey: endpoint) }
    }

    func node(at endpoint: Endpoint, from source: Endpoint) -> InMemoryTransport? {
        shared.withLockedValue { shared in
            // Checked only when something is cut: the pair is an array, built per destination.
            if !shared.cut.isEmpty, shared.cut.contains([source, endpoint]) { return nil }
            return shared.nodes[endpoint]
        }
    }

    /// Kills the node at an address: it stops answering (probes of it time out), and every peer
    /// connected to it sees the connection break (like SIGKILL).
    public func kill(_ endpoint: Endpoint) {
        let (victim, others) = shared.withLockedValue { shared in
            (shared.nodes.removeValue(forKey: endpoint), Array(shared.nodes.values))
        }
        guard let victim, let member = victim.local else { return }
        victim.markDead()
        for other in others { other.peerDied(member) }
    }

    /// Stops traffic from `a` to `b` (both directions when `bothWays`).
    public func cut(_ a: Endpoint, _ b: Endpoint, bothWays: Bool = true) {
        shared.withLockedValue { shared in
            shared.cut.insert([a, b])
            if bothWays { shared.cut.insert([b, a]) }
        }
    }

    /// Restores traffic between `a` and `b`.
    public func heal(_ a: Endpoint, _ b: Endpoint) {
        shared.withLockedValue { shared in
            shared.cut.remove([a, b])
            shared.cut.remove([b, a])
        }
    }
}

/// A ``Transport`` that delivers inside the process, for tests and benchmarks.
public final class InMemoryTransport: Transport, @unchecked Sendable {
    let network: InMemoryNetwork
    private let lock = NIOLock()
    private var _local: Member?
    private var delegate: (any TransportDelegate)?
    private var dead = false
    private var inbox = Deque<(InboundMessage, SendTicketBox?, Int)>()
    private var draining = false

    init(network: InMemoryNetwork) {
        self.network = network
    }

    var local: Member? { lock.withLock { _local } }

    public func start(local: Member, delegate: any TransportDelegate) async throws -> Endpoint {
        let bound = try network.bind(self, requested: local.endpoint)
        lock.withLock {
            var me = local
            me.endpoint = bound
            _local = me
            self.delegate = delegate
        }
        return bound
    }

    func markDead() { lock.withLock { dead = true } }

    func peerDied(_ member: Member) {
        let delegate = lock.withLock { self.dead ? nil : self.delegate }
        delegate?.transport(lostConnectionTo: member, reason: "in-memory peer \(member.name) died")
    }

    private var isDead: Bool { lock.withLock { dead } }

    public func handshake(with endpoint: Endpoint, timeout: Duration) async throws -> Member {
        guard let me = local, !isDead, let peer = network.node(at: endpoint, from: me.endpoint), let peerMember = peer.local else {
            throw CohortError(.connectionFailed, "nothing listens at in-memory address \(endpoint)")
        }
        peer.accept(me)
        return peerMember
    }

    func accept(_ member: Member) {
        let delegate = lock.withLock { dead ? nil : self.delegate }
        delegate?.transport(didAccept: member)
    }

    public func send(_ message: OutboundMessage, to members: [Member]) async -> SendReport {
        guard let me = local, !isDead else {
            return SendReport(outcomes: members.map { ($0.id, .connectionFailed("transport stopped")) })
        }
        let inbound = InboundMessage(sender: me, type: message.type, codec: message.codec, payload: message.payload, guarantee: message.options.guarantee, flags: message.options.flags)
        if message.options.guarantee == .asynchronous {
            var report = SendReport()
            report.outcomes.reserveCapacity(members.count)
            for member in members {
                if let peer = network.node(at: member.endpoint, from: me.endpoint) {
                    peer.enqueue(inbound, ticket: nil, slot: 0)
                    report.outcomes.append((member.id, .queued))
                } else {
                    report.outcomes.append((member.id, .connectionFailed("unreachable")))
                }
            }
            return report
        }
        let ticket = SendTicketBox(members: members.map(\.id))
        return await withCheckedContinuation { continuation in
            ticket.install(continuation)
            for (slot, member) in members.enumerated() {
                if let peer = network.node(at: member.endpoint, from: me.endpoint), peer.local?.id == member.id {
                    peer.enqueue(inbound, ticket: ticket, slot: slot)
                } else {
                    ticket.resolve(slot: slot, .connectionFailed("unreachable"))
                }
            }
        }
    }

    func enqueue(_ message: InboundMessage, ticket: SendTicketBox?, slot: Int) {
        let start: Bool = lock.withLock {
            inbox.append((message, ticket, slot))
            if draining { return false }
            draining = true
            return true
        }
        if start { Task { await self.drain() } }
    }

    private func drain() async {
        while true {
            let next: (InboundMessage, SendTicketBox?, Int)?  = lock.withLock {
                if let item = inbox.popFirst() { return item }
                draining = false
                return nil
            }
            guard let (message, ticket, slot) = next else { return }
            guard let delegate = lock.withLock({ dead ? nil : self.delegate }) else {
                ticket?.resolve(slot: slot, .connectionFailed("peer died"))
                continue
            }
            if message.guarantee == .receipt { ticket?.resolve(slot: slot, .delivered) }
            let result = await delegate.transport(received: message)
            switch result {
            case .processed: ticket?.resolve(slot: slot, .delivered)
            case .handlerFailed(let why): ticket?.resolve(slot: slot, .remoteFailure(why))
            case .rejected(let why): ticket?.resolve(slot: slot, .rejected(why))
            }
        }
    }

    public func heartbeat(to members: [Member]) {
        guard let me = local, !isDead else { return }
        for member in members {
            if let peer = network.node(at: member.endpoint, from: me.endpoint) {
                let delegate = peer.lock.withLock { peer.dead ? nil : peer.delegate }
                delegate?.transport(heardFrom: me)
            }
        }
    }

    public func probe(_ member: Member, timeout: Duration) async -> FailureDetectorState.ProbeResult {
        guard let me = local else { return .refused }
        guard let peer = network.node(at: member.endpoint, from: me.endpoint) else {
            return .timedOut
        }
        return peer.local?.id == member.id ? .alive : .refused
    }

    public func leave(notifying members: [Member]) async {
        guard let me = local else { return }
        for member in members {
            if let peer = network.node(at: member.endpoint, from: me.endpoint) {
                let delegate = peer.lock.withLock { peer.dead ? nil : peer.delegate }
                delegate?.transport(memberLeft: me)
            }
        }
    }

    public func forget(_ member: Member) {}

    public func shutdown() async {
        if let me = local { network.unbind(me.endpoint) }
        markDead()
    }
}

/// The waiter of one in-memory send.
final class SendTicketBox: @unchecked Sendable {
    private let lock = NIOLock()
    private var outcomes: [MemberOutcome?]
    private let members: [MemberID]
    private var remaining: Int
    private var continuation: CheckedContinuation<SendReport, Never>?
    private var report: SendReport?

    init(members: [MemberID]) {
        self.members = members
        self.outcomes = Array(repeating: nil, count: members.count)
        self.remaining = members.count
        if members.isEmpty { report = SendReport() }
    }

    func install(_ continuation: CheckedContinuation<SendReport, Never>) {
        let ready: SendReport? = lock.withLock {
            if let report { return report }
            self.continuation = continuation
            return nil
        }
        if let ready { continuation.resume(returning: ready) }
    }

    func resolve(slot: Int, _ outcome: MemberOutcome) {
        let resume: (CheckedContinuation<SendReport, Never>, SendReport)? = lock.withLock {
            guard outcomes[slot] == nil, report == nil else { return nil }
            outcomes[slot] = outcome
            remaining -= 1
            guard remaining == 0 else { return nil }
            var result = SendReport()
            for i in members.indices { result.outcomes.append((members[i], outcomes[i]!)) }
            report = result
            guard let continuation else { return nil }
            self.continuation = nil
            return (continuation, result)
        }
        if let (continuation, report) = resume { continuation.resume(returning: report) }
    }
}
