/// A raw membership signal from the membership service, before the interceptors judge it.
import Logging

public enum MembershipSignal: Sendable, Equatable {
    /// A member completed a handshake (or was announced by discovery and verified).
    case joined(Member)
    /// A member stopped being heard from, or its connection broke; the reason says which.
    case missing(Member, reason: String)
    /// A send to the member failed at the transport.
    case sendFailed(Member, reason: String)
    /// A member left gracefully.
    case left(Member)
}

/// One stage of the interceptor chain (Tribes' ChannelInterceptor).
///
/// The chain runs **once per message** with the whole destination list; the fan-out to members
/// happens below the last stage. Every requirement has a pass-through default, so a stage
/// implements only what it cares about.
///
/// ``send(_:to:next:)`` and ``receive(_:next:)`` are the data plane: they run on the caller's
/// executor, must not block, and must not hop to an actor for every message. A stage with
/// control-plane state (suspects, counters, timers) keeps it in an actor of its own, hands it
/// typed messages without waiting (``membership(_:next:)`` is synchronous), and runs that actor's
/// mailbox in ``run(context:)``, which the channel runs as a child task. The built-in
/// `TcpFailureDetector` (actor `FailureDetector`) and `MessageDispatch` (actor
/// `DispatchAccounting`) are written that way.
public protocol Interceptor: Sendable {
    /// A short name for logs and configuration.
    var name: String { get }
    /// When non-zero, the stage sees only messages whose ``SendOptions/flags`` contain all these
    /// bits (Tribes' `optionFlag`); others pass it by.
    var optionFilter: UInt32 { get }
    /// Outbound: transform, filter or defer a message, then call `next`.
    func send(_ message: OutboundMessage, to members: [Member], next: InterceptorNext) async -> SendReport
    /// Inbound: look at a message before the dispatcher, then call `next`.
    func receive(_ message: InboundMessage, next: InterceptorNext) async -> DeliveryResult
    /// Membership signals flow upwards through the stages; call `next.membership` to pass one on.
    func membership(_ signal: MembershipSignal, next: InterceptorNext)
    /// Background work (timers, probes), run by the channel as a child task until the channel
    /// stops. Verdicts (events) flow upwards too: a stage that judged a signal emits them through
    /// ``InterceptorContext/publish`` of the `context` given here (``InterceptorNext`` carries
    /// signals, not verdicts).
    func run(context: InterceptorContext) async throws
}

extension Interceptor {
    public var optionFilter: UInt32 { 0 }
    public func send(_ message: OutboundMessage, to members: [Member], next: InterceptorNext) async -> SendReport {
        await next.send(message, to: members)
    }
    public func receive(_ message: InboundMessage, next: InterceptorNext) async -> DeliveryResult {
        await next.receive(message)
    }
    public func membership(_ signal: MembershipSignal, next: InterceptorNext) {
        next.membership(signal)
    }
    public func run(context: InterceptorContext) async throws {}
}

/// What a stage can do beyond passing messages on: probe members, publish verdicts, report
/// failures. Provided by the channel.
public struct InterceptorContext: Sendable {
    /// Probes a member over the transport.
    public var probe: @Sendable (Member, Duration) async -> FailureDetectorState.ProbeResult
    /// Publishes a membership verdict to the layers above (the channel's view and listeners).
    public var publish: @Sendable (MembershipEvent) -> Void
    /// Tells the membership service a member is gone for good (after a verdict).
    public var forget: @Sendable (Member) -> Void
    /// The local member.
    public var local: Member
    /// The clock's current instant.
    public var now: @Sendable () -> ContinuousClock.Instant
    /// Sleeps on the channel's clock.
    public var sleep: @Sendable (Duration) async throws -> Void
    /// A logger.
    public var logger: Logger

    public init(
        probe: @escaping @Sendable (Member, Duration) async -> FailureDetectorState.ProbeResult,
        publish: @escaping @Sendable (MembershipEvent) -> Void,
        forget: @escaping @Sendable (Member) -> Void,
        local: Member,
        now: @escaping @Sendable () -> ContinuousClock.Instant,
        sleep: @escaping @Sendable (Duration) async throws -> Void,
        logger: Logger
    ) {
        self.probe = probe
        self.publish = publish
        self.forget = forget
        self.local = local
        self.now = now
        self.sleep = sleep
        self.logger = logger
    }
}

/// The rest of the chain below (outbound) or above (inbound, membership) a stage.
///
/// A value, not a closure: a stage may keep it to continue later (deferral) without allocating.
public struct InterceptorNext: Sendable {
    @usableFromInline let chain: InterceptorChain
    @usableFromInline let index: Int

    @usableFromInline init(chain: InterceptorChain, index: Int) {
        self.chain = chain
        self.index = index
    }

    /// Passes an outbound message to the next stage (or the transport).
    @inlinable
    public func send(_ message: OutboundMessage, to members: [Member]) async -> SendReport {
        await chain.send(message, to: members, from: index)
    }

    /// Passes an inbound message to the next stage (or the dispatcher).
    @inlinable
    public func receive(_ message: InboundMessage) async -> DeliveryResult {
        await chain.receive(message, from: index)
    }

    /// Passes a membership signal to the next stage.
    @inlinable
    public func membership(_ signal: MembershipSignal) {
        chain.membership(signal, from: index)
    }
}

/// The ends of the chain: what lies below the last stage and above the first.
public struct ChainEnds: Sendable {
    /// Below the last outbound stage: the transport's fan-out.
    public var transmit: @Sendable (OutboundMessage, [Member]) async -> SendReport
    /// Above the last inbound stage: the dispatcher that decodes and calls handlers.
    public var dispatch: @Sendable (InboundMessage) async -> DeliveryResult
    /// Above the last membership stage: signals nobody judged become events by default.
    public var signal: @Sendable (MembershipSignal) -> Void

    public init(
        transmit: @escaping @Sendable (OutboundMessage, [Member]) async -> SendReport,
        dispatch: @escaping @Sendable (InboundMessage) async -> DeliveryResult,
        signal: @escaping @Sendable (MembershipSignal) -> Void
    ) {
        self.transmit = transmit
        self.dispatch = dispatch
        self.signal = signal
    }
}

/// A fixed list of stages between the channel and the transport.
///
/// Outbound, stage 0 runs first and the transport last; inbound and for membership signals,
/// stage 0 is the lowest (nearest the transport) and the dispatcher runs last, as in Tribes where
/// the stack order is the same both ways.
public final class InterceptorChain: Sendable {
    /// The stages, top (nearest the application) first for outbound traffic.
    public let stages: [any Interceptor]
    @usableFromInline let ends: ChainEnds

    public init(stages: [any Interceptor], ends: ChainEnds) {
        self.stages = stages
        self.ends = ends
    }

    /// Runs an outbound message through every stage, then the transport.
    @inlinable
    public func send(_ message: OutboundMessage, to members: [Member]) async -> SendReport {
        await send(message, to: members, from: 0)
    }

    @usableFromInline
    func send(_ message: OutboundMessage, to members: [Member], from index: Int) async -> SendReport {
        var i = index
        while i < stages.count {
            let stage = stages[i]
            let filter = stage.optionFilter
            if filter == 0 || message.options.flags & filter == filter {
                return await stage.send(message, to: members, next: InterceptorNext(chain: self, index: i + 1))
            }
            i += 1
        }
        return await ends.transmit(message, members)
    }

    /// Runs an inbound message up through the stages (lowest first), then the dispatcher.
    @inlinable
    public func receive(_ message: InboundMessage) async -> DeliveryResult {
        await receive(message, from: 0)
    }

    @usableFromInline
    func receive(_ message: InboundMessage, from index: Int) async -> DeliveryResult {
        var i = index
        while i < stages.count {
            let stage = stages[stages.count - 1 - i]
            let filter = stage.optionFilter
            if filter == 0 || message.flags & filter == filter {
                return await stage.receive(message, next: InterceptorNext(chain: self, index: i + 1))
            }
            i += 1
        }
        return await ends.dispatch(message)
    }

    /// Runs a membership signal up through the stages (lowest first).
    public func membership(_ signal: MembershipSignal) {
        membership(signal, from: 0)
    }

    @usableFromInline
    func membership(_ signal: MembershipSignal, from index: Int) {
        if index < stages.count {
            stages[stages.count - 1 - index].membership(signal, next: InterceptorNext(chain: self, index: index + 1))
        } else {
            ends.signal(signal)
        }
    }
}
