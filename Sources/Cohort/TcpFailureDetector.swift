/// Verifies members before they are declared dead (Tribes' TcpFailureDetector): the interceptor
/// stage in front of the ``FailureDetector`` actor.
///
/// A member reported missing (silent, or its connection broke) or failing a send becomes a
/// suspect and is probed with a fresh TCP connection and handshake. Only failed probes remove it
/// (see ``FailureDetectorState``); a suspect that answers recovers.
///
/// The stage itself holds no state: its membership path turns signals into
/// ``FailureDetector/Message``s for the actor without waiting, its send path passes messages on
/// and reports connection failures to the actor, and ``run(context:)`` runs the actor's mailbox,
/// probes and timer. No message hops to the actor on its way out.
public struct TcpFailureDetector: Interceptor {
    /// The actor that owns the suspects and probes.
    public let detector: FailureDetector

    /// Creates the stage and its actor.
    ///
    /// - Parameters:
    ///   - settings: probe timeout, re-probe interval, confirmations, suspect timeout.
    ///   - clock: the clock of the actor's timer (tests pass a manual clock).
    public init(settings: FailureDetectorState.Settings = .init(), clock: any CohortClock = SystemClock()) {
        self.detector = FailureDetector(settings: settings, clock: clock)
    }

    public var name: String { "failureDetector" }

    /// The settings in force.
    public var settings: FailureDetectorState.Settings { detector.settings }

    public func membership(_ signal: MembershipSignal, next: InterceptorNext) {
        switch signal {
        case .joined(let member):
            detector.send(.joined(member))
            next.membership(signal)
        case .missing(let member, let reason):
            detector.send(.missing(member, reason: reason))
        case .sendFailed(let member, let reason):
            detector.send(.sendFailed(member, reason: reason))
        case .left(let member):
            detector.send(.left(member))
            next.membership(signal)
        }
    }

    public func send(_ message: OutboundMessage, to members: [Member], next: InterceptorNext) async -> SendReport {
        let report = await next.send(message, to: members)
        if !report.allSucceeded {
            for failure in report.failures {
                guard case .connectionFailed(let why) = failure.outcome,
                      let member = members.first(where: { $0.id == failure.member })
                else { continue }
                detector.send(.sendFailed(member, reason: why))
            }
        }
        return report
    }

    public func run(context: InterceptorContext) async throws {
        try await detector.run(context: context)
    }
}
