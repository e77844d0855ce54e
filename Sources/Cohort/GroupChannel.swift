import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
import Synchronization
import Tracing

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
    /// The lifecycle and the view: the send path reads both with one lock.
    private let state: NIOLockedValueBox<State>
    /// The allow-list and the handlers: the receive path reads both with one lock.
    private let receiving = NIOLockedValueBox(Receiving())
    private let subscribers = NIOLockedValueBox(Subscribers())
    private let stopSignal: AsyncStream<Void>
    private let stopInput: AsyncStream<Void>.Continuation
    /// The control plane of message dispatch: async-failure accounts and reports.
    let accounting: DispatchAccounting
    private let sentCounter: Counter
    private let receivedCounter: Counter
    private let membersGauge: Gauge
    /// Where the spans of acknowledged sends go; nil: the process's (`InstrumentationSystem.tracer`).
    let tracer: (any Tracer)?
    private let decompressionRefused = Counter(label: "cohort.compression.refused")
    /// Messages that did not decode (metric `cohort.messages.undecodable`).
    private let undecodableCounter = Counter(label: "cohort.messages.undecodable")
    /// Messages from a sender outside the view (metric `cohort.messages.not_a_member`).
    private let notAMemberCounter = Counter(label: "cohort.messages.not_a_member")
    /// Refused input, counted by kind (`undecodable`, `notAMember`), logged at a limited rate.
    let hostileInput: MalformedInputLog
    let quorumTracker: QuorumTracker

    /// What a transport callback can reach, built before the listener opens.
    struct Parts: Sendable {
        let chain: InterceptorChain
        let membership: MembershipService
    }

    struct State {
        var lifecycle = ChannelLifecycle<Parts>()
        var view: MembershipView
    }

    struct Receiving {
        var registry = MessageRegistry()
        var handlers: [UInt32: [@Sendable (any ClusterMessage, Member) async throws -> Void]] = [:]
    }

    struct Subscribers {
        var next = 0
        var events: [Int: AsyncStream<MembershipEvent>.Continuation] = [:]
        var finished = false
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
    ///   - metricsFactory: where the channel's metrics go (labelled `node`, the configured name);
    ///     nil: the process's (`MetricsSystem.factory`).
    ///   - tracer: where the spans of acknowledged sends go (`cohort.send`); nil: the process's
    ///     (`InstrumentationSystem.tracer`, a no-op tracer unless the app bootstraps one).
    ///   - registry: where interceptor plugins named in ``ClusterConfiguration/interceptors``
    ///     are looked up (nil: built-in names only).
    ///
    /// A configured interceptor list that names an unknown stage or puts stages in an order that
    /// cannot work (see ``InterceptorStack``) makes ``run()`` fail at once with
    /// ``CohortError/Code/badConfiguration``, naming the valid names and the right order
    /// (``configurationError`` holds it before that).
    public init(
        configuration: ClusterConfiguration,
        transport: any Transport,
        codec: any MessageCodec,
        codecs: [any MessageCodec] = [],
        discovery: any DiscoveryProvider,
        clock: any CohortClock = SystemClock(),
        logger: Logger? = nil,
        interceptors: [any Interceptor] = [],
        metricsFactory: (any MetricsFactory)? = nil,
        tracer: (any Tracer)? = nil,
        registry: PluginRegistry? = nil
    ) {
        self.configuration = configuration
        let factory = metricsFactory ?? MetricsSystem.factory
        let node = [("node", configuration.name)]
        self.sentCounter = Counter(label: "cohort.messages.sent", dimensions: node, factory: factory)
        self.receivedCounter = Counter(label: "cohort.messages.received", dimensions: node, factory: factory)
        self.membersGauge = Gauge(label: "cohort.members", dimensions: node, factory: factory)
        self.tracer = tracer
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
        self.hostileInput = MalformedInputLog(logger: logger)
        let local = Member(
            name: configuration.name,
            endpoint: configuration.listen,
            domain: configuration.domain,
            metadata: configuration.metadata,
            startTime: Int64((Double(DispatchTimeShim.wallClockNanoseconds()) / 1_000_000).rounded())
        )
        self.state = NIOLockedValueBox(State(view: MembershipView(local: local, members: [], version: 0)))
        (self.stopSignal, self.stopInput) = AsyncStream.makeStream(of: Void.self)
        self.quorumTracker = QuorumTracker(minimum: configuration.minimumMembers, node: configuration.name, metricsFactory: factory)
        let accounting = DispatchAccounting(logger: logger, node: configuration.name, metricsFactory: factory)
        self.accounting = accounting
        var stages: [any Interceptor] = interceptors
        var failure: CohortError?
        let queueDepth: (@Sendable (MemberID) -> Int?)? = (transport as? any QueueDepthReporting).map { reporter in
            { @Sendable id in reporter.queueDepth(of: id) }
        }
        do {
            stages += try InterceptorStack.make(configuration.interceptors, environment: .init(
                configuration: configuration,
                local: local.id,
                clock: clock,
                logger: logger,
                accounting: accounting,
                registry: registry,
                queueDepth: queueDepth,
                metricsFactory: metricsFactory
            ))
        } catch let error as CohortError {
            failure = error
        } catch {
            failure = CohortError(.badConfiguration, "configuration key 'interceptors': \(error)", cause: error)
        }
        self.configurationError = failure
        self.stagesOverride = stages
        self.fragmentation = stages.lazy.compactMap { $0 as? Fragmentation }.first
    }

    private let stagesOverride: [any Interceptor]
    /// The fragmentation stage, when configured: the size check of a send is then its
    /// ``Fragmentation/Settings/maxMessageSize`` instead of the frame cap.
    private let fragmentation: Fragmentation?

    /// Why the configured interceptor list cannot work (an unknown name, a wrong order), or nil.
    /// ``run()`` throws it before it starts anything.
    public let configurationError: CohortError?

    /// The local member (its port is the bound one once running).
    public var localMember: Member { state.withLockedValue { $0.view.local } }

    /// The transport plugin instance this channel runs on.
    public var underlyingTransport: any Transport { transport }

    /// The current membership view.
    public var view: MembershipView { state.withLockedValue { $0.view } }

    /// The interceptor stages, top first.
    public var interceptors: [any Interceptor] { stagesOverride }

    // MARK: - registration

    /// Allows a message type to be received (the allow-list).
    ///
    /// - Throws: ``CohortError/Code/duplicate`` when its id belongs to another type.
    public func register<M: ClusterMessage>(_ type: M.Type) throws {
        try receiving.withLockedValue { try $0.registry.register(type) }
    }

    /// Calls `handler` for every message of a type; registers the type.
    ///
    /// Handlers of one sender run one at a time in the order the messages were sent. Under
    /// ``DeliveryGuarantee/processed`` the sender waits for the handler; an error it throws is
    /// reported to the sender as ``MemberOutcome/remoteFailure(_:)``.
    public func onMessage<M: ClusterMessage>(_ type: M.Type, handler: @escaping @Sendable (M, Member) async throws -> Void) throws {
        try receiving.withLockedValue {
            try $0.registry.register(type)
            $0.handlers[M.messageType.rawValue, default: []].append { message, sender in
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
        let finished: Bool = subscribers.withLockedValue { subs in
            guard !subs.finished else { return true }
            let id = subs.next
            subs.next += 1
            subs.events[id] = continuation
            continuation.onTermination = { [weak self] _ in
                _ = self?.subscribers.withLockedValue { $0.events.removeValue(forKey: id) }
            }
            return false
        }
        if finished { continuation.finish() }
        return stream
    }

    /// Where failures of asynchronous sends are reported (besides the log and the metric).
    ///
    /// The handler is called by the channel's ``DispatchAccounting`` actor, one failure at a time,
    /// never on an event loop; set it before ``run()`` to see every failure.
    public func onAsyncFailure(_ handler: @escaping @Sendable (AsyncSendFailure) -> Void) {
        accounting.send(.handler(handler))
    }

    /// The accounts of asynchronous-send failures per member still in the view (kept by the
    /// ``DispatchAccounting`` actor).
    public func asyncFailureAccounts() async -> [MemberID: DispatchAccounting.Account] {
        await accounting.snapshot
    }

    func reportAsyncFailure(_ failure: AsyncSendFailure) {
        accounting.send(.failed(failure))
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
        // One lock: the chain and the view, both snapshots published by the control plane.
        let snapshot: (chain: InterceptorChain, view: MembershipView)? = state.withLockedValue { state in
            state.lifecycle.sending.map { ($0.chain, state.view) }
        }
        guard let snapshot else {
            throw CohortError(.notRunning, "the channel of \(configuration.name) is not running; call send after run() has started (waitUntilRunning) and before shutdown")
        }
        let (chain, current) = snapshot
        var payload = allocator.buffer(capacity: 256)
        do {
            try codec.encode(message, into: &payload)
        } catch {
            throw CohortError(.codecFailure, "cannot encode \(M.self) with the \(codec.name) codec: \(error)", cause: error)
        }
        if let fragmentation {
            // Fragmentation splits the message; the frame cap then applies to each fragment.
            guard payload.readableBytes <= fragmentation.settings.maxMessageSize else {
                throw CohortError(.frameTooLarge, "\(M.self) encodes to \(payload.readableBytes) bytes, above fragmentation's maxMessageSize of \(fragmentation.settings.maxMessageSize) bytes; raise maxMessageSize (COHORT_MAX_MESSAGE_SIZE) on every member if such messages are intended")
            }
        } else {
            let limit = configuration.wire.maxFrameSize - WireFormat.headerSize - 16
            guard payload.readableBytes <= limit else {
                throw CohortError(.frameTooLarge, "\(M.self) encodes to \(payload.readableBytes) bytes, above the frame cap of \(configuration.wire.maxFrameSize) bytes; add 'fragmentation' to the interceptors, split the message, or raise maxFrameSize on every member")
            }
        }
        var options = options ?? SendOptions(guarantee: .processed, timeout: configuration.sendTimeout)
        if options.timeout <= .zero { options.timeout = configuration.sendTimeout }
        let outbound = OutboundMessage(type: M.messageType, codec: codec.id, payload: payload, options: options)
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
        var report: SendReport
        if targets.isEmpty {
            report = SendReport()
        } else if options.guarantee == .asynchronous {
            report = await chain.send(outbound, to: targets)
        } else {
            report = await sendTraced(outbound, to: targets, chain: chain, type: M.self)
        }
        for id in missing { report.outcomes.append((id, .notAMember)) }
        return report
    }

    /// An acknowledged send in a `cohort.send` span (a child of the caller's span, if any):
    /// the message type, the guarantee, how many members it went to and how many failed. One
    /// span per message, whatever the fan-out; with the default no-op tracer it records nothing.
    private func sendTraced<M: ClusterMessage>(_ outbound: OutboundMessage, to targets: [Member], chain: InterceptorChain, type: M.Type) async -> SendReport {
        let span = (tracer ?? InstrumentationSystem.tracer).startSpan("cohort.send", context: ServiceContext.current ?? .topLevel, ofKind: .client)
        defer { span.end() }
        let report = await chain.send(outbound, to: targets)
        if span.isRecording {
            span.attributes["cohort.node"] = configuration.name
            span.attributes["cohort.message.type"] = "\(M.self)"
            span.attributes["cohort.send.guarantee"] = "\(outbound.options.guarantee)"
            span.attributes["cohort.send.members"] = targets.count
            let failures = report.failures
            span.attributes["cohort.send.failures"] = failures.count
            if !failures.isEmpty {
                span.setStatus(SpanStatus(code: .error, message: failures.map { "\($0.member): \($0.outcome)" }.joined(separator: ", ")))
            }
        }
        return report
    }

    // MARK: - receiving

    /// The chain a message from the transport goes up, then ``dispatch(_:membership:)``. The
    /// parts exist from before the listener opens, so a frame that arrives while the channel
    /// starts is handled like any other. (A plain read, not an async wrapper: one async frame
    /// less per message on the receive path.)
    var receivingChain: InterceptorChain? {
        state.withLockedValue { $0.lifecycle.parts?.chain }
    }

    func dispatch(_ inbound: InboundMessage, membership: MembershipService) async -> DeliveryResult {
        // Only members of the view are heard. A member's first message may overtake its
        // admission (the transport hands the hello to the membership service's mailbox and the
        // data to the receive path at once): only then, rarely, the check waits for the
        // service to handle what it was sent, and looks again. While the channel starts the
        // service does not run yet and cannot be waited for: a message that arrives then (after
        // its sender's hello, which waits in the mailbox) is let through.
        let (known, serviceRuns) = state.withLockedValue { ($0.view.member(inbound.sender.id) != nil, $0.lifecycle.sending != nil) }
        // (Senders of another domain and retired incarnations are refused by `decode` with their
        // own reasons.)
        if !known && serviceRuns && inbound.sender.domain == configuration.domain && !membership.isRetired(inbound.sender.id) {
            await membership.settle()
            guard isInView(inbound.sender.id) else {
                hostileInput.record("notAMember", "refused message \(inbound.type) from \(inbound.sender.name) (\(inbound.sender.id)): not a member of the view")
                notAMemberCounter.increment()
                return .rejected("\(inbound.sender.name) (\(inbound.sender.id)) is not a member of \(configuration.name)'s view")
            }
        }
        // The checks and the decoding are synchronous, in a function of their own, so that what
        // they use (the registry, the codec) does not sit in this async frame while handlers run.
        let (message, list, refusal) = decode(inbound, membership: membership)
        guard let message else { return refusal ?? .rejected("undecodable") }
        do {
            for handler in list { try await handler(message, inbound.sender) }
            return .processed
        } catch {
            return .handlerFailed("\(error)")
        }
    }

    private func decode(_ inbound: InboundMessage, membership: MembershipService) -> (
        message: (any ClusterMessage)?,
        handlers: [@Sendable (any ClusterMessage, Member) async throws -> Void],
        refusal: DeliveryResult?
    ) {
        receivedCounter.increment()
        // Members of another domain are invisible, and so are their messages: the DomainFilter
        // stage is the documented place; this is the backstop when it is not configured.
        guard inbound.sender.domain == configuration.domain else {
            return (nil, [], .rejected("\(configuration.name) is in domain '\(configuration.domain)', the sender in '\(inbound.sender.domain)'"))
        }
        // An incarnation that left or was replaced by a restart at its address is refused.
        if membership.isRetired(inbound.sender.id) {
            return (nil, [], .rejected("\(inbound.sender.name) (\(inbound.sender.id)) left or was replaced by a newer incarnation"))
        }
        let (registry, list) = receiving.withLockedValue { ($0.registry, $0.handlers[inbound.type.rawValue] ?? []) }
        let message: any ClusterMessage
        do {
            let codec = try codecs.codec(inbound.codec)
            var payload = try unwrap(inbound)
            message = try registry.decode(inbound.type, codec: codec, from: &payload)
        } catch {
            if let error = error as? CohortError, error.code == .decompressionRefused { decompressionRefused.increment() }
            undecodableCounter.increment()
            hostileInput.record("undecodable", "rejected message \(inbound.type) from \(inbound.sender.name): \(error)")
            return (nil, [], .rejected("\(error)"))
        }
        guard !list.isEmpty else {
            return (nil, [], .rejected("no handler for message type \(inbound.type) on \(configuration.name)"))
        }
        return (message, list, nil)
    }

    /// The payload of a message that no stage unwrapped: a node without the `order` stage skips
    /// the order header, one without `compression` decompresses (every node reads compressed
    /// messages, within ``Compression/Settings/maxDecompressedSize``); a fragment needs the
    /// `fragmentation` stage.
    private func unwrap(_ inbound: InboundMessage) throws -> ByteBuffer {
        var payload = inbound.payload
        guard inbound.flags & MessageFlags.transformations != 0 else { return payload }
        if inbound.flags & MessageFlags.fragment != 0 {
            throw CohortError(.incompleteMessage, "\(inbound.sender.name) sent a fragment of a large message, and \(configuration.name) does not reassemble them; add 'fragmentation' to the interceptors of every member")
        }
        if inbound.flags & MessageFlags.sequenced != 0 {
            _ = try OrderHeader.read(from: &payload, for: state.withLockedValue { $0.view.local.id })
        }
        if inbound.flags & MessageFlags.compressed != 0 {
            payload = try Compression.decompress(payload, maxSize: configuration.compression.maxDecompressedSize)
        }
        return payload
    }

    /// Whether a member id is in the current view.
    private func isInView(_ id: MemberID) -> Bool {
        state.withLockedValue { $0.view.member(id) != nil }
    }

    /// Messages refused because they did not decode (counted, logged at a limited rate).
    public var undecodableMessages: Int { hostileInput.count("undecodable") }

    /// Messages refused because their sender was not a member of the view.
    public var messagesFromNonMembers: Int { hostileInput.count("notAMember") }

    // MARK: - membership

    /// A membership event from the control plane (the failure detector's verdicts, joins and
    /// leaves from the top of the chain): the view snapshot is replaced, then listeners hear it.
    func publish(_ event: MembershipEvent) {
        let changed: MembershipView? = state.withLockedValue { state in
            let view = state.view
            var members = view.members
            var suspected = view.suspected
            switch event {
            case .added(let member):
                guard !members.contains(member) else { return nil }
                members.append(member)
            case .suspected(let member):
                guard members.contains(member), !suspected.contains(member.id) else { return nil }
                suspected.insert(member.id)
            case .recovered(let member):
                guard suspected.remove(member.id) != nil else { return nil }
            case .removed(let member), .left(let member):
                guard members.contains(member) else { return nil }
                members.removeAll { $0 == member }
                suspected.remove(member.id)
            }
            state.view = MembershipView(local: view.local, members: members, suspected: suspected, version: view.version + 1)
            return state.view
        }
        guard let view = changed else { return }
        switch event {
        case .removed(let member), .left(let member): accounting.send(.memberGone(member.id))
        default: break
        }
        membersGauge.record(view.members.count)
        quorumTracker.update(members: view.members.count + 1, logger: logger)
        logger.info("\(event)")
        let continuations = subscribers.withLockedValue { Array($0.events.values) }
        for continuation in continuations { continuation.yield(event) }
    }

    /// What reaches the top of the chain unjudged: joins become members; without a failure
    /// detector a missing member is removed at once.
    func topSignal(_ signal: MembershipSignal, membership: MembershipService) {
        switch signal {
        case .joined(let member): publish(.added(member))
        case .left(let member): publish(.left(member))
        case .missing(let member, _):
            publish(.removed(member))
            membership.send(.removed(member))
        case .sendFailed: break
        }
    }

    // MARK: - lifecycle

    /// Whether ``run()`` is active: the channel has started and not yet closed its transport.
    public var isRunning: Bool {
        state.withLockedValue { $0.lifecycle.sending != nil }
    }

    /// Waits until the transport listens and returns the bound address.
    ///
    /// - Throws: ``CohortError/Code/notRunning`` if the channel stopped (or failed to start).
    public func waitUntilRunning() async throws -> Endpoint {
        try await withCheckedThrowingContinuation { continuation in
            let wait = state.withLockedValue { $0.lifecycle.onWait(continuation) }
            switch wait {
            case .resume(let endpoint): continuation.resume(returning: endpoint)
            case .fail: continuation.resume(throwing: CohortError(.notRunning, "the channel of \(configuration.name) has stopped"))
            case .wait: break
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
    ///
    /// The lifecycle (``ChannelLifecycle``): everything a transport callback can reach — the
    /// membership service and the interceptor chain — is built first (starting), then the
    /// transport opens its listener (running), and on the stop signal the node leaves (leaving),
    /// then closes (stopped). A channel runs once.
    public func run(stopOnGracefulShutdown: Bool) async throws {
        if let configurationError {
            logger.error("\(configuration.name) cannot start: \(configurationError.message)")
            throw configurationError
        }
        // 1. starting: build the parts a callback can reach, before the listener opens.
        let unbound = localMember
        let membership = MembershipService(local: unbound, settings: configuration.membership, transport: transport, clock: clock, logger: logger)
        let chain = InterceptorChain(
            stages: stagesOverride,
            ends: ChainEnds(
                transmit: { [transport] message, members in await transport.send(message, to: members) },
                dispatch: { [weak self] message in
                    guard let self else { return .rejected("node stopped") }
                    return await self.dispatch(message, membership: membership)
                },
                signal: { [weak self] signal in self?.topSignal(signal, membership: membership) }
            )
        )
        let started = state.withLockedValue { $0.lifecycle.onStart(Parts(chain: chain, membership: membership)) }
        guard started else {
            throw CohortError(.notRunning, "the channel of \(configuration.name) has already run; a channel runs once, make a new one")
        }

        // 2. open the listener.
        let bound: Endpoint
        do {
            bound = try await transport.start(local: unbound, delegate: NodeDelegate(channel: self, membership: membership))
        } catch {
            let waiters = state.withLockedValue { $0.lifecycle.onStartFailed() }
            for waiter in waiters { waiter.resume(throwing: error) }
            finishSubscribers()
            throw error
        }

        // 3. running.
        let (me, waiters): (Member, [ChannelLifecycle<Parts>.Waiter]) = state.withLockedValue { state in
            var me = state.view.local
            me.endpoint = bound
            state.view = MembershipView(local: me, members: state.view.members, suspected: state.view.suspected, version: state.view.version)
            return (me, state.lifecycle.onListening(bound))
        }
        let context = InterceptorContext(
            probe: { [transport] member, timeout in await transport.probe(member, timeout: timeout) },
            publish: { [weak self] event in self?.publish(event) },
            forget: { member in membership.send(.removed(member)) },
            local: me,
            now: { [clock] in clock.now },
            sleep: { [clock] duration in try await clock.sleep(for: duration) },
            logger: logger
        )
        for waiter in waiters { waiter.resume(returning: bound) }
        logger.info("\(me.name) listening on \(bound) as \(me.id)")

        var failure: (any Error)?
        do {
            try await withGracefulShutdownHandler {
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        try await membership.run(local: me) { signal in chain.membership(signal) }
                        return false
                    }
                    group.addTask { [accounting] in
                        await accounting.run()
                        return false
                    }
                    group.addTask { [discovery] in
                        try await discovery.run(local: me) { event in membership.send(.discovered(event)) }
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

        // 4. leaving: tell every member, then discovery (so that a peer hears the leave before a
        // multicast leave datagram, which would only make it probe), then close.
        let members: [Member] = state.withLockedValue { state in
            state.lifecycle.onLeave()
            return state.view.members
        }
        await transport.leave(notifying: members)
        await discovery.leave(local: me)
        await transport.shutdown()

        // 5. stopped.
        let late = state.withLockedValue { $0.lifecycle.onStopped() }
        for waiter in late { waiter.resume(throwing: CohortError(.notRunning, "the channel of \(configuration.name) has stopped")) }
        finishSubscribers()
        logger.info("\(me.name) left the cluster")
        if let failure { throw failure }
    }

    private func finishSubscribers() {
        let continuations = subscribers.withLockedValue { subs -> [AsyncStream<MembershipEvent>.Continuation] in
            subs.finished = true
            defer { subs.events.removeAll() }
            return Array(subs.events.values)
        }
        for continuation in continuations { continuation.finish() }
        quorumTracker.finish()
    }
}

/// Routes transport events to the membership service (as messages) and the chain.
///
/// Holds the channel and the membership service weakly: the transport keeps its delegate as
/// long as it lives, and the membership service holds the transport.
final class NodeDelegate: TransportDelegate {
    weak let channel: GroupChannel?
    weak let membership: MembershipService?

    init(channel: GroupChannel, membership: MembershipService) {
        self.channel = channel
        self.membership = membership
    }

    func transport(didAccept member: Member) { membership?.send(.accepted(member)) }
    func transport(heardFrom member: Member) { membership?.send(.heard(member)) }
    func transport(sawActivityFrom member: Member) { membership?.send(.active(member.id)) }
    func transport(received message: InboundMessage) async -> DeliveryResult {
        guard let chain = channel?.receivingChain else { return .rejected("node stopped") }
        return await chain.receive(message)
    }
    func transport(lostConnectionTo member: Member, reason: String) {
        membership?.send(.connectionLost(member.id, reason: reason))
    }
    func transport(memberLeft member: Member) { membership?.send(.left(member)) }
    func transport(asyncMessagesFailed count: Int, to member: Member, reason: String) {
        channel?.reportAsyncFailure(AsyncSendFailure(member: member, count: count, reason: reason))
    }
}

/// Wall-clock time for member start times (the only wall-clock read; ordering only).
enum DispatchTimeShim {
    static func wallClockNanoseconds() -> UInt64 {
        UInt64(Date().timeIntervalSince1970 * 1_000_000_000)
    }
}
