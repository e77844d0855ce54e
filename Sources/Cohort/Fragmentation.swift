import CohortCore
import Logging
import Metrics
import NIOCore
import Synchronization

/// Splits large messages into fragments and reassembles them (Tribes' FragmentationInterceptor),
/// so a message may be larger than the transport's frame cap.
///
/// Outbound, a payload above ``Settings/fragmentSize`` bytes is cut into fragments of at most
/// that size, each carrying a ``FragmentHeader`` and the flag ``MessageFlags/fragment``, sent one
/// after another to the same members. The send keeps **one deadline**: each fragment gets what
/// is left of the send's timeout. For an acknowledged send every fragment but the last waits for
/// receipt, and the last one carries the send's own guarantee — so a `.processed` send is
/// acknowledged once the whole message was reassembled and handled, and a `.receipt` send once
/// every fragment arrived. A member that fails a fragment gets no more of them; its outcome is
/// that failure.
///
/// Inbound, fragments are reassembled by ``FragmentAssemblyState`` with bounded memory per
/// sender and per node; incomplete sets expire after ``FragmentAssemblyState/Settings/expireAfter``
/// on the channel's clock. Expired and refused sets are counted
/// (`cohort.fragmentation.expired`, `cohort.fragmentation.refused`) and logged.
///
/// Fragments are ordinary frames: the codec, a transport's encryption, the `order` and
/// `compression` stages above all see whole messages. The stage must be configured on every
/// node that receives fragmented messages (a node without it refuses fragments, naming it).
public final class Fragmentation: Interceptor, Sendable {
    /// Tunables.
    public struct Settings: Sendable, Equatable {
        /// Payloads above this many bytes are fragmented; each fragment carries at most this many.
        public var fragmentSize: Int
        /// Reassembly bounds (the largest message, memory per sender and per node, expiry).
        public var assembly: FragmentAssemblyState.Settings

        public init(fragmentSize: Int = 1024 * 1024, assembly: FragmentAssemblyState.Settings = .init()) {
            self.fragmentSize = fragmentSize
            self.assembly = assembly
        }

        /// The largest message accepted, sending or receiving.
        public var maxMessageSize: Int { assembly.maxMessageSize }
    }

    public let settings: Settings
    private let clock: any CohortClock
    private let logger: Logger
    private let state: Mutex<FragmentAssemblyState>
    private let nextID = Atomic<UInt64>(0)
    private let allocator = ByteBufferAllocator()
    private let expiredCounter = Counter(label: "cohort.fragmentation.expired")
    private let refusedCounter = Counter(label: "cohort.fragmentation.refused")
    private let reassembledCounter = Counter(label: "cohort.fragmentation.reassembled")
    private let fragmentedCounter = Counter(label: "cohort.fragmentation.fragmented")

    /// Creates the stage.
    ///
    /// - Parameters:
    ///   - settings: fragment size and reassembly bounds.
    ///   - clock: the clock of the send deadline and of expiry (tests pass a manual clock).
    ///   - logger: where dropped sets are logged.
    public init(settings: Settings = Settings(), clock: any CohortClock = SystemClock(), logger: Logger = Logger(label: "cohort.fragmentation")) {
        self.settings = settings
        self.clock = clock
        self.logger = logger
        self.state = Mutex(FragmentAssemblyState(settings: settings.assembly))
    }

    public var name: String { "fragmentation" }

    /// Reassembly counters: messages completed, sets expired, fragments refused, bytes held now.
    public var statistics: (completed: Int, expired: Int, refused: Int, pendingBytes: Int) {
        state.withLock { ($0.completed, $0.expired, $0.refused, $0.pendingBytes) }
    }

    public func send(_ message: OutboundMessage, to members: [Member], next: InterceptorNext) async -> SendReport {
        let size = message.payload.readableBytes
        let fragmentSize = max(1, settings.fragmentSize)
        guard size > fragmentSize else { return await next.send(message, to: members) }
        guard size <= settings.maxMessageSize else {
            let why = "message of \(size) bytes exceeds fragmentation's maxMessageSize of \(settings.maxMessageSize) bytes"
            return SendReport(outcomes: members.map { ($0.id, .rejected(why)) })
        }
        fragmentedCounter.increment()
        let count = (size + fragmentSize - 1) / fragmentSize
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        let deadline = clock.now.advanced(by: message.options.timeout)
        var remaining = members
        var outcomes: [MemberID: MemberOutcome] = [:]
        for index in 0..<count {
            if remaining.isEmpty { break }
            let left = deadline - clock.now
            guard left > .zero else {
                for member in remaining { outcomes[member.id] = .timedOut }
                remaining = []
                break
            }
            let start = index * fragmentSize
            let length = min(fragmentSize, size - start)
            var fragment = message
            var buffer = allocator.buffer(capacity: FragmentHeader.size + length)
            FragmentHeader(messageID: id, index: UInt32(index), count: UInt32(count), totalLength: UInt64(size)).write(into: &buffer)
            buffer.writeImmutableBuffer(message.payload.getSlice(at: message.payload.readerIndex + start, length: length)!)
            fragment.payload = buffer
            fragment.options.flags |= MessageFlags.fragment
            fragment.options.timeout = left
            let last = index == count - 1
            if !last, message.options.guarantee != .asynchronous { fragment.options.guarantee = .receipt }
            let report = await next.send(fragment, to: remaining)
            if last {
                for (member, outcome) in report.outcomes { outcomes[member] = outcome }
            } else if !report.allSucceeded {
                for failure in report.failures { outcomes[failure.member] = failure.outcome }
                remaining.removeAll { outcomes[$0.id] != nil }
            }
        }
        return SendReport(outcomes: members.map { ($0.id, outcomes[$0.id] ?? .timedOut) })
    }

    public func receive(_ message: InboundMessage, next: InterceptorNext) async -> DeliveryResult {
        guard message.flags & MessageFlags.fragment != 0 else { return await next.receive(message) }
        var payload = message.payload
        let header: FragmentHeader
        do {
            header = try FragmentHeader.read(from: &payload)
        } catch {
            state.withLock { $0.onMalformed() }
            refusedCounter.increment()
            logger.warning("fragmentation: refused a fragment from \(message.sender.name): \(error)")
            return .rejected("\(error)")
        }
        let now = clock.now
        let action = state.withLock { $0.onFragment(header, body: payload, from: message.sender.id, now: now) }
        switch action {
        case .hold:
            return .processed
        case .refuse(let error):
            refusedCounter.increment()
            logger.warning("fragmentation: refused a fragment from \(message.sender.name): \(error.message)")
            return .rejected(error.message)
        case .complete(let whole):
            reassembledCounter.increment()
            var assembled = message
            assembled.payload = whole
            assembled.flags &= ~MessageFlags.fragment
            return await next.receive(assembled)
        }
    }

    public func membership(_ signal: MembershipSignal, next: InterceptorNext) {
        if case .left(let member) = signal {
            let dropped = state.withLock { $0.onMemberGone(member.id) }
            if dropped > 0 {
                expiredCounter.increment(by: dropped)
                logger.info("fragmentation: dropped \(dropped) incomplete message(s) of \(member.name), which left")
            }
        }
        next.membership(signal)
    }

    /// Expires incomplete sets on the channel's clock.
    public func run(context: InterceptorContext) async throws {
        let period = max(.milliseconds(10), min(settings.assembly.expireAfter / 4, .seconds(1)))
        while true {
            try await clock.sleep(for: period)
            tick()
        }
    }

    /// Drops incomplete sets that stopped growing (also called by ``run(context:)``).
    @discardableResult
    public func tick() -> Int {
        let now = clock.now
        let dropped = state.withLock { $0.onTick(now: now) }
        if dropped > 0 {
            expiredCounter.increment(by: dropped)
            logger.warning("fragmentation: dropped \(dropped) incomplete message(s) that received nothing for \(settings.assembly.expireAfter)")
        }
        return dropped
    }
}
