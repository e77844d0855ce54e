import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
import Synchronization

/// A node's membership in a cluster: send typed messages to members, receive theirs, and learn
/// when members come and go (Tribes' GroupChannel).
///
/// ```
///  application ── send ──▶ [dispatch] ─▶ [failureDetector] ─▶ transport ══▶ N members
///  application ◀─ handlers ◀ dispatcher ◀ [failureDetector] ◀ [dispatch] ◀ transport
///                  membership events ◀── interceptors ◀── MembershipService (actor)
/// ```
///
/// The channel is a swift-service-lifecycle `Service`: ``run()`` starts the transport, discovery,
/// membership and the interceptors' background work, and returns after a graceful leave when
/// the service group shuts down (or ``shutdown()`` is called).
///
/// The send path crosses no actor: the message is encoded once, runs through the interceptor
/// chain once, and the transport writes the same buffer to every destination.
public final class GroupChannel: Service, Sendable {
    /// The configuration in force.
    public let configuration: ClusterConfiguration
    let transport: any Transport
    /// The codec this channel sends with. Session managers and replicated maps on the channel
    /// use it too, unless their configuration names another.
    public let codec: any MessageCodec
    let codecs: CodecSet
    let discovery: any DiscoveryProvider
    let clock: any CohortClock
    /// The node's logger (its metadata carries the node name).
    public let logger: Logger
    private let allocator = ByteBufferAllocator()
    private let registry = NIOLockedValueBox(MessageRegistry())
    private let handlers = NIOLockedValueBox([UInt32: [@Sendable (any ClusterMessage, Member) async throws -> Void]]())
    private let viewBox: NIOLockedValueBox<MembershipView>
    private let subscribers = NIOLockedValueBox(Subscribers())
    private let lifecycle = NIOLockedValueBox(Lifecycle())
    private let asyncFailureHandler = NIOLockedValueBox<(@Sendable (AsyncSendFailure) -> Void)?>(nil)
    private let stopSignal: AsyncStream<Void>
    private let stopInput: AsyncStream<Void>.Continuation
    private let sink: AsyncFailureSink
    private let chainBox = NIOLockedValueBox<InterceptorChain?>(nil)
    private let membershipBox = NIOLockedValueBox<MembershipService?>(nil)
    private let sentCounter = Counter(label: "cohort.messages.sent")
    private let receivedCounter = Counter(label: "cohort.messages.received")
    private let asyncFailureCounter = Counter(label: "cohort.send.async_failures")
    private let membersGauge = Gauge(label: "cohort.members")
    let quorumTracker: QuorumTracker

    struct Subscribers {
        var next = 0
        var events: [Int: AsyncStream<MembershipEvent>.Continuation] = [:]
    }

    struct Lifecycle {
        enum State { case idle, running(Endpoint), stopped }
        var state: State = .idle
        var waiters: [CheckedContinuation<Endpoint, any Error>] = []
    }

    /// Creates a channel from resolved parts.
    ///
    /// - Parameters:
    ///   - configuration: names, addresses and settings.
    ///   - transport: the transport plugin instance.
    ///   - codec: the codec used for sending.
    ///   - codecs: every codec that can be received (the sending one is added).
    ///   - discovery: the discovery plugin instance.
    ///   - clock: the clock for timers (tests pass a manual clock).
    ///   - logger: the node's logger.
    ///   - interceptors: extra stages placed above the configured ones.
    public init(
        configuration: ClusterConfiguration,
        transport: any Transport,
        codec: any MessageCodec,
        codecs: [any MessageCodec] = [],
        discovery: any DiscoveryProvider,
        clock: any CohortClock = SystemClock(),
        logger: Logger? = nil,
        interceptors: [any Interceptor] = []
    ) {
        self.configuration = configuration
        self.transport = transport
        self.codec = codec
        var set = CodecSet(codecs)
        set.add(codec)
        self.codecs = set
        self.discovery = discovery
        self.clock = clock
        var logger = logger ?? Logger(label: "cohort")
        logger[metadataKey: "node"] = "\(configuration.name)"
        self.logger = logger
        let local = Member(
            name: configuration.name,
            endpoint: configuration.listen,
            domain: configuration.domain,
            metadata: configuration.metadata,
            startTime: Int64((Double(DispatchTimeShim.wallClockNanoseconds()) / 1_000_000).rounded())
        )
        self.viewBox = NIOLockedValueBox(MembershipView(local: local, members: [], version: 0))
        (self.stopSignal, self.stopInput) = AsyncStream.makeStream(of: Void.self)
        self.quorumTracker = QuorumTracker(minimum: configuration.minimumMembers)
        let sink = AsyncFailureSink()
        self.sink = sink
        var stages: [any Interceptor] = interceptors
        for name in configuration.interceptors {
            switch name {
            case "domainFilter":
                stages.append(DomainFilter(domain: configuration.domain, logger: logger))
            case "failureDetector":
                stages.append(TcpFailureDetector(settings: configuration.failureDetector, clock: clock))
            case "dispatch":
                stages.append(MessageDispatch(
                    settings: configuration.dispatch,
                    report: { failure in sink.report(failure) },
                    members: { id in sink.member(id) }
                ))
            default:
                break
            }
        }
        self.stagesOverride = stages
        sink.channel = self
    }

    private let stagesOverride: [any Interceptor]

    /// The local member (its port is the bound one once running).
    public var localMember: Member { viewBox.withLockedValue { $0.local } }

    /// The transport plugin instance this channel runs on.
    public var underlyingTransport: any Transport { transport }

    /// The current membership view.
    public var view: MembershipView { viewBox.withLockedValue { $0 } }

    /// The interceptor stages, top first.
    public var interceptors: [any Interceptor] { stagesOverride }

    // MARK: - registration

    /// Allows a message type to be received (the allow-list).
    ///
    /// - Throws: ``CohortError/Code/duplicate`` when its id belongs to another type.
    public func register<M: ClusterMessage>(_ type: M.Type) throws {
        try registry.withLockedValue { try $0.register(type) }
    }

    /// Calls `handler` for every message of a type; registers the type.
    ///
    /// Handlers of one sender run one at a time in the order the messages were sent. Under
    /// ``DeliveryGuarantee/processed`` the sender waits for the handler; an error it throws is
    /// reported to the sender as ``MemberOutcome/remoteFailure(_:)``.
    public func onMessage<M: ClusterMessage>(_ type: M.Type, handler: @escaping @Sendable (M, Member) async throws -> Void) throws {
        try register(type)
        handlers.withLockedValue {
            $0[M.messageType.rawValue, default: []].append { message, sender in
                try await handler(message as! M, sender)
            }
        }
    }

    /// Messages of a type as an async sequence (processed as soon as they are buffered).
    public func messages<M: ClusterMessage>(of type: M.Type) throws -> AsyncStream<(message: M, sender: Member)> {
        let (stream, continuation) = AsyncStream.makeStream(of: (message: M, sender: Member).self)
        try onMessage(type) { message, sender in continuation.yield((message, sender)) }
        return stream
    }

    /// Membership events from now on (each call makes a new subscription).
    public func membershipEvents() -> AsyncStream<MembershipEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: MembershipEvent.self, bufferingPolicy: .bufferingNewest(4096))
        let stopped: Bool = subscribers.withLockedValue { subs in
            let id = subs.next
            subs.next += 1
            subs.events[id] = continuation
            continuation.onTermination = { [weak self] _ in
                _ = self?.subscribers.withLockedValue { $0.events.removeValue(forKey: id) }
            }
            return false
        }
        if stopped { continuation.finish() }
        if case .stopped = lifecycle.withLockedValue({ $0.state }) { continuation.finish() }
        return stream
    }

    /// Where failures of asynchronous sends are reported (besides the log and the metric).
    public func onAsyncFailure(_ handler: @escaping @Sendable (AsyncSendFailure) -> Void) {
        asyncFailureHandler.withLockedValue { $0 = handler }
    }

    func reportAsyncFailure(_ failure: AsyncSendFailure) {
        asyncFailureCounter.increment(by: failure.count)
        logger.warning("\(failure)")
        asyncFailureHandler.withLockedValue { $0 }?(failure)
    }

    // MARK: - sending

    /// Sends a message to members.
    ///
    /// The message is encoded once and the same bytes go to every destination.
    ///
    /// - Parameters:
    ///   - message: the message; its type must be registered on the receivers.
    ///   - destination: ``Destination/all`` members of the view, or some.
    ///   - options: how far to wait (default: until processed) and the timeout.
    /// - Returns: the per-member outcome. A member's failure does not throw; check the report.
    /// - Throws: ``CohortError`` when nothing could be sent: the channel is not running
    ///   (``CohortError/Code/notRunning``), the message does not encode
    ///   (``CohortError/Code/codecFailure``) or exceeds the frame cap
    ///   (``CohortError/Code/frameTooLarge``).
    public func send<M: ClusterMessage>(_ message: M, to destination: Destination = .all, options: SendOptions? = nil) async throws -> SendReport {
        guard isRunning else {
            throw CohortError(.notRunning, "the channel of \(configuration.name) is not running; call send after run() has started (waitUntilRunning) and before shutdown")
        }
        var payload = allocator.buffer(capacity: 256)
        do {
            try codec.encode(message, into: &payload)
        } catch {
            throw CohortError(.codecFailure, "cannot encode \(M.self) with the \(codec.name) codec: \(error)", cause: error)
        }
        let limit = configuration.wire.maxFrameSize - WireFormat.headerSize - 16
        guard payload.readableBytes <= limit else {
            throw CohortError(.frameTooLarge, "\(M.self) encodes to \(payload.readableBytes) bytes, above the frame cap of \(configuration.wire.maxFrameSize) bytes; split the message or raise maxFrameSize on every member")
        }
        var options = options ?? SendOptions(guarantee: .processed, timeout: configuration.sendTimeout)
        if options.timeout <= .zero { options.timeout = configuration.sendTimeout }
        let outbound = OutboundMessage(type: M.messageType, codec: codec.id, payload: payload, options: options)
        let current = view
        let targets: [Member]
        var missing: [MemberID] = []
        switch destination {
        case .all:
            targets = current.members
        case .members(let ids):
            var found: [Member] = []
            found.reserveCapacity(ids.count)
            for id in ids {
                if let member = current.member(id) { found.append(member) } else { missing.append(id) }
            }
            targets = found
        }
        sentCounter.increment()
        var report = targets.isEmpty ? SendReport() : await chain.send(outbound, to: targets)
        for id in missing { report.outcomes.append((id, .notAMember)) }
        return report
    }

    var chain: InterceptorChain { chainBox.withLockedValue { $0! } }

    // MARK: - receiving

    func dispatch(_ inbound: InboundMessage) async -> DeliveryResult {
        receivedCounter.increment()
        // Members of another domain are invisible, and so are their messages: the DomainFilter
        // stage is the documented place; this is the backstop when it is not configured.
        guard inbound.sender.domain == configuration.domain else {
            return .rejected("\(configuration.name) is in domain '\(configuration.domain)', the sender in '\(inbound.sender.domain)'")
        }
        // An incarnation that left or was replaced by a restart at its address is refused.
        if membershipService?.isRetired(inbound.sender.id) == true {
            return .rejected("\(inbound.sender.name) (\(inbound.sender.id)) left or was replaced by a newer incarnation")
        }
        let message: any ClusterMessage
        do {
            let codec = try codecs.codec(inbound.codec)
            var payload = inbound.payload
            message = try registry.withLockedValue { $0 }.decode(inbound.type, codec: codec, from: &payload)
        } catch {
            logger.warning("rejected message \(inbound.type) from \(inbound.sender.name): \(error)")
            return .rejected("\(error)")
        }
        let list = handlers.withLockedValue { $0[inbound.type.rawValue] ?? [] }
        guard !list.isEmpty else {
            return .rejected("no handler for message type \(inbound.type) on \(configuration.name)")
        }
        do {
            for handler in list { try await handler(message, inbound.sender) }
            return .processed
        } catch {
            return .handlerFailed("\(error)")
        }
    }

    // MARK: - membership

    func publish(_ event: MembershipEvent) {
        let changed: Bool = viewBox.withLockedValue { view in
            var members = view.members
            var suspected = view.suspected
            switch event {
            case .added(let member):
                guard !members.contains(member) else { return false }
                members.append(member)
            case .suspected(let member):
                guard members.contains(member), !suspected.contains(member.id) else { return false }
                suspected.insert(member.id)
            case .recovered(let member):
                guard suspected.remove(member.id) != nil else { return false }
            case .removed(let member), .left(let member):
                guard members.contains(member) else { return false }
                members.removeAll { $0 == member }
                suspected.remove(member.id)
            }
            view = MembershipView(local: view.local, members: members, suspected: suspected, version: view.version + 1)
            return true
        }
        guard changed else { return }
        membersGauge.record(view.members.count)
        quorumTracker.update(members: view.members.count + 1, logger: logger)
        logger.info("\(event)")
        let continuations = subscribers.withLockedValue { Array($0.events.values) }
        for continuation in continuations { continuation.yield(event) }
    }

    /// What reaches the top of the chain unjudged: joins become members; without a failure
    /// detector a missing member is removed at once.
    func topSignal(_ signal: MembershipSignal) {
        switch signal {
        case .joined(let member): publish(.added(member))
        case .left(let member): publish(.left(member))
        case .missing(let member, _):
            publish(.removed(member))
            membershipBox.withLockedValue { $0 }?.submit(.removed(member))
        case .sendFailed: break
        }
    }

    // MARK: - lifecycle

    /// Whether ``run()`` is active.
    public var isRunning: Bool {
        if case .running = lifecycle.withLockedValue({ $0.state }) { return true }
        return false
    }

    /// Waits until the transport listens and returns the bound address.
    ///
    /// - Throws: ``CohortError/Code/notRunning`` if the channel stopped (or failed to start).
    public func waitUntilRunning() async throws -> Endpoint {
        try await withCheckedThrowingContinuation { continuation in
            lifecycle.withLockedValue { life in
                switch life.state {
                case .running(let endpoint): continuation.resume(returning: endpoint)
                case .stopped: continuation.resume(throwing: CohortError(.notRunning, "the channel has stopped"))
                case .idle: life.waiters.append(continuation)
                }
            }
        }
    }

    /// Asks ``run()`` to leave the cluster gracefully and return.
    public func shutdown() {
        stopInput.finish()
    }

    /// Runs the node until ``shutdown()``, task cancellation, or the service group's graceful
    /// shutdown; then leaves the cluster gracefully.
    public func run() async throws {
        try await run(stopOnGracefulShutdown: true)
    }

    /// Runs the node; with `stopOnGracefulShutdown: false` only ``shutdown()`` or cancellation
    /// stops it, so an owner can finish its own hand-off first (a session node stops its
    /// managers, then the channel).
    public func run(stopOnGracefulShutdown: Bool) async throws {
        let local = localMember
        let delegate = NodeDelegate(channel: self)
        let bound: Endpoint
        do {
            bound = try await transport.start(local: local, delegate: delegate)
        } catch {
            let waiters = lifecycle.withLockedValue { life -> [CheckedContinuation<Endpoint, any Error>] in
                life.state = .stopped
                defer { life.waiters.removeAll() }
                return life.waiters
            }
            for waiter in waiters { waiter.resume(throwing: error) }
            throw error
        }
        viewBox.withLockedValue { view in
            var me = view.local
            me.endpoint = bound
            view = MembershipView(local: me, members: view.members, suspected: view.suspected, version: view.version)
        }
        let me = localMember
        let membership = MembershipService(
            local: me,
            settings: configuration.membership,
            transport: transport,
            clock: clock,
            logger: logger,
            signal: { [weak self] signal in self?.chainBox.withLockedValue { $0 }?.membership(signal) }
        )
        membershipBox.withLockedValue { $0 = membership }
        let chain = InterceptorChain(
            stages: stagesOverride,
            ends: ChainEnds(
                transmit: { [transport] message, members in await transport.send(message, to: members) },
                dispatch: { [weak self] message in
                    guard let self else { return .rejected("node stopped") }
                    return await self.dispatch(message)
                },
                signal: { [weak self] signal in self?.topSignal(signal) }
            )
        )
        chainBox.withLockedValue { $0 = chain }
        let context = InterceptorContext(
            probe: { [transport] member, timeout in await transport.probe(member, timeout: timeout) },
            publish: { [weak self] event in self?.publish(event) },
            forget: { [weak membership] member in membership?.submit(.removed(member)) },
            local: me,
            now: { [clock] in clock.now },
            sleep: { [clock] duration in try await clock.sleep(for: duration) },
            logger: logger
        )
        let waiters = lifecycle.withLockedValue { life -> [CheckedContinuation<Endpoint, any Error>] in
            life.state = .running(bound)
            defer { life.waiters.removeAll() }
            return life.waiters
        }
        for waiter in waiters { waiter.resume(returning: bound) }
        logger.info("\(me.name) listening on \(bound) as \(me.id)")

        var failure: (any Error)?
        do {
            try await withGracefulShutdownHandler {
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        try await membership.run()
                        return false
                    }
                    group.addTask { [discovery] in
                        try await discovery.run(local: me) { event in membership.submit(.discovered(event)) }
                        return false
                    }
                    for stage in stagesOverride {
                        group.addTask {
                            try await stage.run(context: context)
                            return false
                        }
                    }
                    group.addTask { [stopSignal] in
                        for await _ in stopSignal {}
                        return true
                    }
                    // The stop signal ends the node; a component that throws ends it too.
                    // Components that simply finish (a stage with no background work) do not.
                    do {
                        while let isStop = try await group.next() {
                            if isStop { break }
                        }
                    } catch {
                        group.cancelAll()
                        throw error
                    }
                    group.cancelAll()
                }
            } onGracefulShutdown: { [stopInput] in
                if stopOnGracefulShutdown { stopInput.finish() }
            }
        } catch is CancellationError {
        } catch {
            failure = error
            logger.error("\(me.name) stopped: \(error)")
        }

        // Leave gracefully: tell every member, then discovery (so that a peer hears the leave
        // before a multicast leave datagram, which would only make it probe), then close.
        let members = view.members
        await transport.leave(notifying: members)
        await discovery.leave(local: me)
        await transport.shutdown()
        lifecycle.withLockedValue { $0.state = .stopped }
        let continuations = subscribers.withLockedValue { subs -> [AsyncStream<MembershipEvent>.Continuation] in
            defer { subs.events.removeAll() }
            return Array(subs.events.values)
        }
        for continuation in continuations { continuation.finish() }
        quorumTracker.finish()
        logger.info("\(me.name) left the cluster")
        if let failure { throw failure }
    }
}

/// Routes transport events to the membership service and the chain.
final class NodeDelegate: TransportDelegate {
    weak var channel: GroupChannel?

    init(channel: GroupChannel) {
        self.channel = channel
    }

    private var membership: MembershipService? { channel?.membershipService }

    func transport(didAccept member: Member) { membership?.submit(.accepted(member)) }
    func transport(heardFrom member: Member) { membership?.submit(.heard(member)) }
    func transport(sawActivityFrom member: Member) { membership?.submit(.active(member.id)) }
    func transport(received message: InboundMessage) async -> DeliveryResult {
        guard let channel else { return .rejected("node stopped") }
        return await channel.chain.receive(message)
    }
    func transport(lostConnectionTo member: Member, reason: String) {
        membership?.submit(.connectionLost(member.id, reason: reason))
    }
    func transport(memberLeft member: Member) { membership?.submit(.left(member)) }
    func transport(asyncMessagesFailed count: Int, to member: Member, reason: String) {
        channel?.reportAsyncFailure(AsyncSendFailure(member: member, count: count, reason: reason))
    }
}

extension GroupChannel {
    var membershipService: MembershipService? { membershipBox.withLockedValue { $0 } }
}

extension NodeDelegate: @unchecked Sendable {}

/// Wall-clock time for member start times (the only wall-clock read; ordering only).
enum DispatchTimeShim {
    static func wallClockNanoseconds() -> UInt64 {
        UInt64(Date().timeIntervalSince1970 * 1_000_000_000)
    }
}

/// Lets the dispatch stage report to the channel that owns it without a retain cycle.
final class AsyncFailureSink: @unchecked Sendable {
    private let lock = NIOLock()
    private weak var _channel: GroupChannel?
    var channel: GroupChannel? {
        get { lock.withLock { _channel } }
        set { lock.withLock { _channel = newValue } }
    }
    func report(_ failure: AsyncSendFailure) { channel?.reportAsyncFailure(failure) }
    func member(_ id: MemberID) -> Member? { channel?.view.member(id) }
}
