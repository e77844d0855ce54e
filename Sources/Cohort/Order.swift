import CohortCore
import Logging
import Metrics
import NIOCore
import Synchronization

/// Per-sender FIFO delivery for messages that ask for it (Tribes' OrderInterceptor): a message
/// sent with ``SendOptions/ordered`` (flag ``MessageFlags/ordered``) is handed to the receiver's
/// handlers after every ordered message the same sender incarnation sent it before — across
/// reconnections too.
///
/// **Sending.** Each destination gets its own sequence number (1, 2, 3… per sender incarnation
/// and destination), written in one ``OrderHeader`` shared by every destination, so the message
/// is still one buffer for N members. Ordered sends of one node go out one at a time — the next
/// one starts when the previous one's transport hand-off (and, for acknowledged sends, its
/// acknowledgements) is done; the wait for that turn is part of the send's own deadline. (Tribes
/// pays the same price: its ordered sends are serial.) A member whose outcome shows the message
/// never left (a full queue under `failFast`) gets its number back.
///
/// **Receiving.** ``OrderState`` decides. A message ahead of a gap is held (bounded per sender);
/// a gap not filled within ``OrderState/Settings/gapTimeout`` on the channel's clock is reported
/// — a warning, the `cohort.order.gaps` metric and ``gapsReported`` — and skipped. A held
/// `.processed` message's sender keeps waiting until the message was really handled; a held
/// asynchronous or receipt message is acknowledged at once and handed up in turn. A new
/// incarnation of a member has a new id and starts at 1. A receiver without this stage skips
/// the header and delivers in arrival order.
///
/// Unordered messages pass the stage by (``optionFilter``).
public final class Order: Interceptor, Sendable {
    /// What the receiving state holds: the message and, when its receiver waits, its turn.
    struct Item: Sendable {
        let id: UInt64
        let message: InboundMessage
        let turn: Turn?
    }

    /// A one-shot signal that a held message's turn came (true: in order; false: late).
    final class Turn: Sendable {
        private let state = Mutex<(granted: Bool?, waiter: CheckedContinuation<Bool, Never>?)>((nil, nil))

        func grant(inOrder: Bool) {
            let waiter: CheckedContinuation<Bool, Never>? = state.withLock { state in
                if let waiter = state.waiter {
                    state.waiter = nil
                    return waiter
                }
                state.granted = inOrder
                return nil
            }
            waiter?.resume(returning: inOrder)
        }

        func wait() async -> Bool {
            await withCheckedContinuation { continuation in
                let granted: Bool? = state.withLock { state in
                    if let granted = state.granted { return granted }
                    state.waiter = continuation
                    return nil
                }
                if let granted { continuation.resume(returning: granted) }
            }
        }
    }

    public let settings: OrderSettings
    private let local: MemberID
    private let clock: any CohortClock
    private let logger: Logger
    private let gate: SendGate
    private let counters = Mutex<[MemberID: UInt64]>([:])
    private let state: Mutex<OrderState<Item>>
    private let upward = Mutex<InterceptorNext?>(nil)
    private let ids = Atomic<UInt64>(0)
    private let allocator = ByteBufferAllocator()
    private let gapCounter = Counter(label: "cohort.order.gaps")
    private let lateCounter = Counter(label: "cohort.order.late")

    /// Creates the stage.
    ///
    /// - Parameters:
    ///   - settings: the gap timeout and the bound of held messages per sender.
    ///   - local: this node's member id (its entry in a received header).
    ///   - clock: the clock of the gap timeout and of send deadlines.
    ///   - logger: where gaps are reported.
    public init(settings: OrderSettings = .init(), local: MemberID, clock: any CohortClock = SystemClock(), logger: Logger = Logger(label: "cohort.order")) {
        self.settings = settings
        self.local = local
        self.clock = clock
        self.logger = logger
        self.gate = SendGate(clock: clock)
        self.state = Mutex(OrderState(settings: settings))
    }

    public var name: String { "order" }
    public var optionFilter: UInt32 { MessageFlags.ordered }

    /// Gaps reported so far.
    public var gapsReported: Int { state.withLock { $0.gaps } }
    /// Messages handed up late, after their gap was skipped.
    public var lateDeliveries: Int { state.withLock { $0.lateDeliveries } }
    /// Messages held now.
    public var held: Int { state.withLock { $0.held } }

    // MARK: - sending

    public func send(_ message: OutboundMessage, to members: [Member], next: InterceptorNext) async -> SendReport {
        let deadline = clock.now.advanced(by: message.options.timeout)
        guard await gate.acquire(until: deadline) else {
            return SendReport(outcomes: members.map { ($0.id, .timedOut) })
        }
        defer { gate.release() }
        let entries: [(member: MemberID, seq: UInt64)] = counters.withLock { counters in
            members.map { member in
                let seq = (counters[member.id] ?? 0) + 1
                counters[member.id] = seq
                return (member.id, seq)
            }
        }
        var buffer = allocator.buffer(capacity: OrderHeader.size(entries: entries.count) + message.payload.readableBytes)
        OrderHeader.write(entries, into: &buffer)
        buffer.writeImmutableBuffer(message.payload)
        var sequenced = message
        sequenced.payload = buffer
        sequenced.options.flags |= MessageFlags.sequenced
        let left = deadline - clock.now
        guard left > .zero else {
            giveBack(members.map(\.id))
            return SendReport(outcomes: members.map { ($0.id, .timedOut) })
        }
        sequenced.options.timeout = left
        let report = await next.send(sequenced, to: members)
        // Numbers of messages that never left go back (the gate is still held: nobody took a later one).
        let unsent = report.outcomes.filter { $0.outcome == .queueFull || $0.outcome == .notAMember }.map(\.member)
        if !unsent.isEmpty { giveBack(unsent) }
        return report
    }

    private func giveBack(_ members: [MemberID]) {
        counters.withLock { counters in
            for id in members { if let seq = counters[id], seq > 0 { counters[id] = seq - 1 } }
        }
    }

    // MARK: - receiving

    public func receive(_ message: InboundMessage, next: InterceptorNext) async -> DeliveryResult {
        guard message.flags & MessageFlags.sequenced != 0 else { return await next.receive(message) }
        upward.withLock { if $0 == nil { $0 = next } }
        var stripped = message
        let seq: UInt64?
        do {
            seq = try OrderHeader.read(from: &stripped.payload, for: local)
        } catch {
            logger.warning("order: refused a message from \(message.sender.name): \(error)")
            return .rejected("\(error)")
        }
        stripped.flags &= ~MessageFlags.sequenced
        guard let seq else { return await next.receive(stripped) }
        let sender = message.sender.id
        let now = clock.now
        let (actions, item): ([OrderState<Item>.Action], Item) = state.withLock { state in
            let mustWait = message.guarantee == .processed || state.held(from: sender) >= state.settings.maxHeldPerSender
            let item = Item(id: ids.wrappingAdd(1, ordering: .relaxed).newValue, message: stripped, turn: mustWait ? Turn() : nil)
            return (state.onMessage(item, seq: seq, from: sender, now: now), item)
        }
        if let result = await perform(actions, sender: sender, mine: item.id, next: next) { return result }
        guard let turn = item.turn else { return .processed }
        let inOrder = await turn.wait()
        let result = await next.receive(item.message)
        if inOrder {
            let more = state.withLock { $0.onDelivered(from: sender, now: clock.now) }
            _ = await perform(more, sender: sender, mine: nil, next: next)
        }
        return result
    }

    /// Carries out the state's actions in order; returns the result of `mine` if this task
    /// delivered it.
    private func perform(_ actions: [OrderState<Item>.Action], sender: MemberID, mine: UInt64?, next: InterceptorNext) async -> DeliveryResult? {
        var queue = actions[...]
        var result: DeliveryResult?
        while let action = queue.popFirst() {
            switch action {
            case .gap(let from, let missing):
                gapCounter.increment()
                logger.warning("order: messages \(missing.lowerBound)…\(missing.upperBound) from \(from) did not arrive within \(settings.gapTimeout); later messages go on without them")
            case .deliver(let item), .late(let item):
                let inOrder = if case .deliver = action { true } else { false }
                if !inOrder { lateCounter.increment() }
                if item.id != mine, let turn = item.turn {
                    turn.grant(inOrder: inOrder)
                    continue
                }
                let delivered = await next.receive(item.message)
                if item.id == mine { result = delivered }
                if inOrder {
                    let more = state.withLock { $0.onDelivered(from: sender, now: clock.now) }
                    queue = (Array(queue) + more)[...]
                }
            }
        }
        return result
    }

    public func membership(_ signal: MembershipSignal, next: InterceptorNext) {
        if case .left(let member) = signal {
            _ = counters.withLock { $0.removeValue(forKey: member.id) }
            let actions = state.withLock { $0.onMemberGone(member.id, now: clock.now) }
            if !actions.isEmpty, let upward = upward.withLock({ $0 }) {
                Task { _ = await self.perform(actions, sender: member.id, mine: nil, next: upward) }
            }
        }
        next.membership(signal)
    }

    /// Reports and skips gaps older than the gap timeout, on the channel's clock.
    public func run(context: InterceptorContext) async throws {
        let period = max(.milliseconds(10), settings.gapTimeout / 4)
        while true {
            try await clock.sleep(for: period)
            await tick()
        }
    }

    /// One turn of the gap timer (also called by ``run(context:)``).
    public func tick() async {
        let now = clock.now
        let actions = state.withLock { $0.onTick(now: now) }
        guard !actions.isEmpty, let upward = upward.withLock({ $0 }) else { return }
        // Each skipped gap hands out one sender's next message; deliveries of different
        // senders do not wait for each other.
        await withTaskGroup(of: Void.self) { group in
            var bySender: [MemberID: [OrderState<Item>.Action]] = [:]
            var order: [MemberID] = []
            for action in actions {
                let sender: MemberID
                switch action {
                case .gap(let from, _): sender = from
                case .deliver(let item), .late(let item): sender = item.message.sender.id
                }
                if bySender[sender] == nil { order.append(sender) }
                bySender[sender, default: []].append(action)
            }
            for sender in order {
                let list = bySender[sender]!
                group.addTask { _ = await self.perform(list, sender: sender, mine: nil, next: upward) }
            }
        }
    }
}
