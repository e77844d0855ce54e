/// Owns the membership state of one node (Tribes' MembershipService).
///
/// An actor fed by typed commands: discovery results, handshakes, heartbeats and broken
/// connections from the transport, verdicts from the failure detector. It drives the pure
/// ``MembershipState``, performs its actions (handshakes, heartbeats, disconnects) and passes
/// membership signals up the interceptor chain. It is the control plane only: messages never go
/// through it.
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
    public enum Command: Sendable {
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

    private var state: MembershipState
    private let transport: any Transport
    private let clock: any CohortClock
    private let signal: @Sendable (MembershipSignal) -> Void
    private let logger: Logger
    nonisolated private let commands: AsyncStream<Command>
    nonisolated private let input: AsyncStream<Command>.Continuation
    private var handshakes: [Endpoint] = []
    /// Ids that left or were replaced by a newer incarnation, readable without an actor hop.
    nonisolated private let retired = NIOLockedValueBox<Set<MemberID>>([])

    init(
        local: Member,
        settings: MembershipState.Settings,
        transport: any Transport,
        clock: any CohortClock,
        logger: Logger,
        signal: @escaping @Sendable (MembershipSignal) -> Void
    ) {
        self.state = MembershipState(local: local, settings: settings)
        self.transport = transport
        self.clock = clock
        self.logger = logger
        self.signal = signal
        (self.commands, self.input) = AsyncStream.makeStream(of: Command.self)
    }

    /// Hands a command to the service (never blocks).
    nonisolated public func submit(_ command: Command) {
        input.yield(command)
    }

    /// The members currently known (before the failure detector's judgement).
    public var members: [Member] { state.members }

    /// Whether a member id left or was replaced by a newer incarnation at its address: messages
    /// from it are refused.
    nonisolated public func isRetired(_ id: MemberID) -> Bool {
        retired.withLockedValue { $0.contains(id) }
    }

    /// Runs until cancelled.
    func run() async throws {
        let tickInterval = min(state.settings.heartbeatInterval, .milliseconds(100))
        let handshakeTimeout = state.settings.handshakeTimeout
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { [clock, input] in
                while !Task.isCancelled {
                    try await clock.sleep(for: tickInterval)
                    input.yield(.tick)
                }
            }
            for await command in commands {
                if Task.isCancelled { break }
                let actions = handle(command)
                let tombstones = state.retiredIDs
                if tombstones.count != retired.withLockedValue({ $0.count }) {
                    retired.withLockedValue { $0 = tombstones }
                }
                for action in actions {
                    switch action {
                    case .handshake(let endpoint):
                        group.addTask { [transport, input] in
                            let member = try? await transport.handshake(with: endpoint, timeout: handshakeTimeout)
                            input.yield(.handshakeFinished(endpoint, member))
                        }
                    case .signal(let signal):
                        self.signal(signal)
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

    private func handle(_ command: Command) -> [MembershipState.Action] {
        let now = clock.now
        switch command {
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
