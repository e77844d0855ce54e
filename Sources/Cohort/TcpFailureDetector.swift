/// Verifies members before they are declared dead (Tribes' TcpFailureDetector).
///
/// A member reported missing (silent, or its connection broke) or failing a send becomes a
/// suspect and is probed with a fresh TCP connection and handshake. Only failed probes remove it
/// (see ``FailureDetectorState``); a suspect that answers recovers. The logic is the pure
/// ``FailureDetectorState`` behind a lock; probes run in ``run(context:)``.
import Logging
import NIOConcurrencyHelpers

public final class TcpFailureDetector: Interceptor, Sendable {
    private struct Shared {
        var state: FailureDetectorState
        var context: InterceptorContext?
        var deferred: [FailureDetectorState.Action] = []
    }

    private let shared: NIOLockedValueBox<Shared>
    private let probeRequests: AsyncStream<Member>
    private let probeInput: AsyncStream<Member>.Continuation
    private let clock: any CohortClock

    /// Creates the stage.
    public init(settings: FailureDetectorState.Settings = .init(), clock: any CohortClock = SystemClock()) {
        self.shared = NIOLockedValueBox(Shared(state: FailureDetectorState(settings: settings)))
        (self.probeRequests, self.probeInput) = AsyncStream.makeStream(of: Member.self)
        self.clock = clock
    }

    public var name: String { "failureDetector" }

    /// The settings in force.
    public var settings: FailureDetectorState.Settings { shared.withLockedValue { $0.state.settings } }

    public func membership(_ signal: MembershipSignal, next: InterceptorNext) {
        let now = clock.now
        switch signal {
        case .joined(let member):
            let actions = shared.withLockedValue { $0.state.onJoined(member) }
            next.membership(signal)
            perform(actions)
        case .missing(let member, _), .sendFailed(let member, _):
            let actions = shared.withLockedValue { $0.state.onMissing(member, now: now) }
            perform(actions)
        case .left(let member):
            _ = shared.withLockedValue { $0.state.onLeft(member.id) }
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
                membership(.sendFailed(member, reason: why), next: next)
            }
        }
        return report
    }

    public func run(context: InterceptorContext) async throws {
        let deferred = shared.withLockedValue { shared -> [FailureDetectorState.Action] in
            shared.context = context
            defer { shared.deferred.removeAll() }
            return shared.deferred
        }
        perform(deferred)
        let timeout = settings.probeTimeout
        let tick = settings.reprobeInterval
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { [self] in
                while !Task.isCancelled {
                    try await clock.sleep(for: tick)
                    let now = clock.now
                    perform(shared.withLockedValue { $0.state.onTick(now: now) })
                }
            }
            for await member in probeRequests {
                group.addTask { [self] in
                    let result = await context.probe(member, timeout)
                    let now = clock.now
                    context.logger.debug("probe of \(member.name): \(result)")
                    perform(shared.withLockedValue { $0.state.onProbeResult(member.id, result, now: now) })
                }
            }
        }
    }

    private func perform(_ actions: [FailureDetectorState.Action]) {
        guard !actions.isEmpty else { return }
        let context: InterceptorContext? = shared.withLockedValue { shared in
            if shared.context == nil { shared.deferred.append(contentsOf: actions) }
            return shared.context
        }
        guard let context else { return }
        for action in actions {
            switch action {
            case .publishSuspected(let member): context.publish(.suspected(member))
            case .publishRecovered(let member): context.publish(.recovered(member))
            case .publishRemoved(let member):
                context.publish(.removed(member))
                context.forget(member)
            case .probe(let member): probeInput.yield(member)
            }
        }
    }
}
