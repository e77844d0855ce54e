import Logging

/// The control plane of the TCP failure detector (Tribes' TcpFailureDetector): an actor that owns
/// the suspects and their probes, fed by typed messages.
///
/// ```
///  membership signals ──.joined/.missing/.sendFailed/.left──▶ ┌─────────────────────┐
///  its own probes ──────.probeAnswered/.probeFailed─────────▶ │ FailureDetector     │──▶ publish
///  its own timer (the injected CohortClock) ──.tick─────────▶ │ FailureDetectorState│    suspected /
///                                                             └─────────────────────┘    recovered /
///                                                                                        removed + forget
/// ```
///
/// Messages are handed over with ``send(_:)``, which never waits: the interceptor stage
/// (``TcpFailureDetector``) calls it from the synchronous membership path and from the send path
/// when the transport reports a broken connection. They are handled one at a time, in the order
/// they were sent, by ``run(context:)``; messages sent before it starts wait in the mailbox. The
/// decisions are the pure ``FailureDetectorState``; time is the injected ``CohortClock``, so a
/// test drives the timer with a manual clock. Nothing here is on the per-message path.
public actor FailureDetector {
    /// What the failure detector reacts to.
    public enum Message: Sendable, Equatable {
        /// A member joined: it is tracked from now on (a suspect that rejoins recovers).
        case joined(Member)
        /// A member went silent, or its connection broke: suspect it and probe it.
        case missing(Member, reason: String)
        /// A send to the member failed at the transport: suspect it and probe it.
        case sendFailed(Member, reason: String)
        /// A member left gracefully: forget it, no probe.
        case left(Member)
        /// A probe of a suspect was answered by the same incarnation.
        case probeAnswered(Member)
        /// A probe of a suspect failed: ``FailureDetectorState/ProbeResult/refused`` or
        /// ``FailureDetectorState/ProbeResult/timedOut``.
        case probeFailed(Member, FailureDetectorState.ProbeResult)
        /// Re-probe suspects that are due, give up on stale ones (sent by the actor's own timer
        /// every ``FailureDetectorState/Settings/reprobeInterval``).
        case tick
    }

    enum Envelope: Sendable {
        case message(Message)
        /// Resumed once every message sent before it has been handled.
        case barrier(CheckedContinuation<Void, Never>)
    }

    /// The settings in force.
    nonisolated public let settings: FailureDetectorState.Settings
    private var state: FailureDetectorState
    private let clock: any CohortClock
    nonisolated private let mailbox: AsyncStream<Envelope>
    nonisolated private let input: AsyncStream<Envelope>.Continuation

    /// Creates the actor.
    ///
    /// - Parameters:
    ///   - settings: probe timeout, re-probe interval, confirmations, suspect timeout.
    ///   - clock: the clock of the timer and of the state's instants (tests pass a manual clock).
    public init(settings: FailureDetectorState.Settings = .init(), clock: any CohortClock = SystemClock()) {
        self.settings = settings
        self.state = FailureDetectorState(settings: settings)
        self.clock = clock
        (self.mailbox, self.input) = AsyncStream.makeStream(of: Envelope.self)
    }

    /// Hands a message to the actor (never waits).
    nonisolated public func send(_ message: Message) {
        input.yield(.message(message))
    }

    /// Waits until every message sent before this call has been handled (for tests and for an
    /// orderly look at the state). Returns at once if ``run(context:)`` is not running.
    public func settle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if case .terminated = input.yield(.barrier(continuation)) { continuation.resume() }
        }
    }

    /// The members currently suspected.
    public var suspects: [Member] { state.suspectedMembers }

    /// Whether a probe of the member is running.
    public func isProbing(_ id: MemberID) -> Bool { state.isProbing(id) }

    /// Timed-out probes of a suspect so far.
    public func failedProbes(of id: MemberID) -> Int { state.failedProbes(of: id) }

    /// Handles messages until cancelled: the timer and the probes run as child tasks.
    public func run(context: InterceptorContext) async throws {
        let tick = settings.reprobeInterval
        let timeout = settings.probeTimeout
        defer { input.finish() }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { [clock, input] in
                while !Task.isCancelled {
                    try await clock.sleep(for: tick)
                    input.yield(.message(.tick))
                }
            }
            for await envelope in mailbox {
                guard case .message(let message) = envelope else {
                    if case .barrier(let continuation) = envelope { continuation.resume() }
                    continue
                }
                for action in handle(message, logger: context.logger) {
                    switch action {
                    case .publishSuspected(let member):
                        context.publish(.suspected(member))
                    case .publishRecovered(let member):
                        context.publish(.recovered(member))
                    case .publishRemoved(let member):
                        context.publish(.removed(member))
                        context.forget(member)
                    case .probe(let member):
                        group.addTask { [input] in
                            let result = await context.probe(member, timeout)
                            context.logger.debug("probe of \(member.name): \(result)")
                            input.yield(.message(result == .alive ? .probeAnswered(member) : .probeFailed(member, result)))
                        }
                    }
                }
            }
            group.cancelAll()
        }
    }

    private func handle(_ message: Message, logger: Logger) -> [FailureDetectorState.Action] {
        let now = clock.now
        switch message {
        case .joined(let member):
            return state.onJoined(member)
        case .missing(let member, let reason), .sendFailed(let member, let reason):
            logger.debug("\(member.name) reported missing: \(reason)")
            return state.onMissing(member, now: now)
        case .left(let member):
            return state.onLeft(member.id)
        case .probeAnswered(let member):
            return state.onProbeResult(member.id, .alive, now: now)
        case .probeFailed(let member, let result):
            return state.onProbeResult(member.id, result, now: now)
        case .tick:
            return state.onTick(now: now)
        }
    }
}
