/// Owns the membership state of one node (Tribes' MembershipService).
///
/// An actor fed by typed messages: discovery results, handshakes, heartbeats and broken
/// connections from the transport, verdicts from the failure detector. It drives the pure
/// ``MembershipState``, performs its actions (handshakes, heartbeats, disconnects) and passes
/// membership signals up the interceptor chain. It is the control plane only: messages never go
/// through it. The one thing the data plane reads of it, the ids that may no longer send
/// (``isRetired(_:)``), is a snapshot it publishes after every change.
///
/// **This is Cohort's TcpPing** (Tribes' `TcpPingInterceptor`): every
/// ``MembershipState/Settings/heartbeatInterval`` (250 ms) it sends a heartbeat frame over TCP to
/// every known member, whatever the discovery — static members included — and a member unheard of
/// for ``MembershipState/Settings/missingAfter`` (1 s), or whose connection breaks, is reported
/// missing, which makes the ``TcpFailureDetector`` probe it. No extra interceptor is needed.
import Logging
import NIOConcurrencyHelpers

public actor MembershipService {
    /// What the membership service reacts to.
    public enum Message: Sendable {
        case discovered(DiscoveryEvent)
        case accepted(Member)
        case heard(Member)
        /// Traffic other than heartbeats from a known member (never admits one).
        case active(MemberID)
        case connectionLost(MemberID, reason: String)
        case left(Member)
        case removed(Member)
        case handshakeFinished(Endpoint, Member?)
        case tick
    }

    /// The former name of ``Message``.
    public typealias Command = Message

    enum Envelope: Sendable {
        case message(Message)
        case barrier(CheckedContinuation<Void, Never>)
    }

    private var state: MembershipState
    private let transport: any Transport
    private let clock: any CohortClock
    private let logger: Logger
    nonisolated private let mailbox: AsyncStream<Envelope>
    nonisolated private let input: AsyncStream<Envelope>.Continuation
    /// Ids that left or were replaced by a newer incarnation, readable without an actor hop.
    nonisolated private let retired = NIOLockedValueBox<Set<MemberID>>([])

    /// Creates the service; it handles messages once ``run(local:signal:)`` runs (messages sent
    /// before wait in its mailbox).
    ///
    /// - Parameters:
    ///   - local: the local member (its endpoint may still be the configured one).
    ///   - settings: heartbeat, silence, retry and handshake times.
    ///   - transport: what handshakes, heartbeats and disconnects go through.
    ///   - clock: the clock of the timer and of the state's instants (tests pass a manual clock).
    ///   - logger: where to log.
    public init(
        local: Member,
        settings: MembershipState.Settings,
        transport: any Transport,
        clock: any CohortClock,
        logger: Logger
    ) {
        self.state = MembershipState(local: local, settings: settings)
        self.transport = transport
        self.clock = clock
        self.logger = logger
        (self.mailbox, self.input) = AsyncStream.makeStream(of: Envelope.self)
    }

    /// Hands a message to the service (never waits).
    nonisolated public func send(_ message: Message) {
        input.yield(.message(message))
    }

    /// Hands a message to the service (never waits); the same as ``send(_:)``.
    nonisolated public func submit(_ message: Message) {
        input.yield(.message(message))
    }

    /// Waits until every message sent before this call has been handled. Returns at once if
    /// the service is not running.
    public func settle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if case .terminated = input.yield(.barrier(continuation)) { continuation.resume() }
        }
    }

    /// The members currently known (before the failure detector's judgement).
    public var members: [Member] { state.members }

    /// The local member as the service knows it.
    public var local: Member { state.local }

    /// Whether a member id left or was replaced by a newer incarnation at its address: messages
    /// from it are refused.
    nonisolated public func isRetired(_ id: MemberID) -> Bool {
        retired.withLockedValue { $0.contains(id) }
    }

    /// Handles messages until cancelled; a timer on the injected clock sends ``Message/tick``
    /// every min(heartbeat interval, 100 ms).
    ///
    /// - Parameters:
    ///   - local: the local member with the address the transport is bound to.
    ///   - signal: where membership signals go (the interceptor chain).
    public func run(local: Member, signal: @escaping @Sendable (MembershipSignal) -> Void) async throws {
        state.onListening(local.endpoint)
        let tickInterval = min(state.settings.heartbeatInterval, .milliseconds(100))
        let handshakeTimeout = state.settings.handshakeTimeout
        defer { input.finish() }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { [clock, input] in
                while !Task.isCancelled {
                    try await clock.sleep(for: tickInterval)
                    input.yield(.message(.tick))
                }
            }
            for await envelope in mailbox {
                if Task.isCancelled { break }
                guard case .message(let message) = envelope else {
                    if case .barrier(let continuation) = envelope { continuation.resume() }
                    continue
                }
                let actions = handle(message)
                let tombstones = state.retiredIDs
                if tombstones.count != retired.withLockedValue({ $0.count }) {
                    retired.withLockedValue { $0 = tombstones }
                }
                for action in actions {
                    switch action {
                    case .handshake(let endpoint):
                        group.addTask { [transport, input] in
                            let member = try? await transport.handshake(with: endpoint, timeout: handshakeTimeout)
                            input.yield(.message(.handshakeFinished(endpoint, member)))
                        }
                    case .signal(let event):
                        signal(event)
                    case .heartbeat(let members):
                        transport.heartbeat(to: members)
                    case .disconnect(let member):
                        transport.forget(member)
                    }
                }
            }
            group.cancelAll()
        }
    }

    private func handle(_ message: Message) -> [MembershipState.Action] {
        let now = clock.now
        switch message {
        case .discovered(.candidates(let endpoints)):
            return state.onCandidates(endpoints, now: now)
        case .discovered(.alive(let member)):
            return state.onAnnounced(member, now: now)
        case .discovered(.gone(let id)):
            return state.onDiscoveryGone(id, now: now)
        case .accepted(let member):
            return state.onAccepted(member, now: now)
        case .heard(let member):
            return state.onHeard(member, now: now)
        case .active(let id):
            state.onActivity(id, now: now)
            return []
        case .connectionLost(let id, let reason):
            return state.onConnectionLost(id, reason: reason, now: now)
        case .left(let member):
            return state.onLeft(member.id)
        case .removed(let member):
            return state.onRemoved(member.id, now: now)
        case .handshakeFinished(let endpoint, let member):
            if let member {
                return state.onHandshake(member, at: endpoint, now: now)
            }
            return state.onHandshakeFailed(endpoint, now: now)
        case .tick:
            return state.onTick(now: now)
        }
    }
}
