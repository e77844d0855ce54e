import CohortCore
import Logging
import Metrics
import NIOCore
import Synchronization

/// Counts what goes through the channel (Tribes' ThroughputInterceptor), as swift-metrics:
///
/// | Metric | Kind | Dimensions |
/// |---|---|---|
/// | `cohort.throughput.messages` | counter | `direction` (sent/received), `type` (message type id), `member` (name) |
/// | `cohort.throughput.bytes` | counter | the same; payload bytes as they pass this stage |
/// | `cohort.send.latency` | timer | `guarantee` (receipt/processed): acknowledged sends, start to report |
/// | `cohort.send.failures` | counter | `cause` (timedOut, connectionFailed, queueFull, rejected, remoteFailure, notAMember), `member` |
/// | `cohort.send.queue_depth` | gauge | `member`: messages in flight to the member after a send (when the transport tells) |
/// | `cohort.send.in_flight` | gauge | sends through this stage still waiting for their report |
///
/// A sent message counts once per destination member. Counters are looked up once per
/// (direction, type, member) and kept, so the per-message cost is a dictionary read under a
/// lock and atomic increments. Every ``logInterval`` messages a summary line is logged, as
/// Tribes does. Where the stage sits decides what it measures: at the top, messages as the
/// application sees them; below `compression` or `fragmentation`, what goes on the wire.
public final class Throughput: Interceptor, Sendable {
    struct Key: Hashable {
        var sent: Bool
        var type: UInt32
        var member: MemberID
    }

    struct Handles {
        var messages: Counter
        var bytes: Counter
    }

    /// A summary line is logged every this many messages (sent plus received).
    public let logInterval: Int
    private let clock: any CohortClock
    private let logger: Logger
    private let queueDepth: (@Sendable (MemberID) -> Int?)?
    private let handles = Mutex<[Key: Handles]>([:])
    private let failures = Mutex<[String: Counter]>([:])
    private let depthGauges = Mutex<[MemberID: Gauge]>([:])
    private let totals = Mutex<Statistics>(Statistics())
    private let inFlight = Atomic<Int>(0)
    private let factory: any MetricsFactory
    private let inFlightGauge: Gauge
    private let receiptTimer: Timer
    private let processedTimer: Timer

    /// Totals since the stage was made.
    public struct Statistics: Sendable, Equatable {
        public var sentMessages = 0
        public var sentBytes = 0
        public var receivedMessages = 0
        public var receivedBytes = 0
        public var failures = 0

        public init(sentMessages: Int = 0, sentBytes: Int = 0, receivedMessages: Int = 0, receivedBytes: Int = 0, failures: Int = 0) {
            self.sentMessages = sentMessages
            self.sentBytes = sentBytes
            self.receivedMessages = receivedMessages
            self.receivedBytes = receivedBytes
            self.failures = failures
        }
    }

    /// Creates the stage.
    ///
    /// - Parameters:
    ///   - logInterval: log a summary every this many messages (Tribes: 10,000); 0 never.
    ///   - clock: the clock latencies are measured on.
    ///   - queueDepth: the number of messages in flight to a member, if the transport tells.
    ///   - logger: where summaries go.
    ///   - factory: the metrics factory (nil: the bootstrapped `MetricsSystem`'s; tests pass
    ///     their own).
    public init(
        logInterval: Int = 10_000,
        clock: any CohortClock = SystemClock(),
        queueDepth: (@Sendable (MemberID) -> Int?)? = nil,
        logger: Logger = Logger(label: "cohort.throughput"),
        factory: (any MetricsFactory)? = nil
    ) {
        let factory = factory ?? MetricsSystem.factory
        self.factory = factory
        self.inFlightGauge = Gauge(label: "cohort.send.in_flight", factory: factory)
        self.receiptTimer = Timer(label: "cohort.send.latency", dimensions: [("guarantee", "receipt")], factory: factory)
        self.processedTimer = Timer(label: "cohort.send.latency", dimensions: [("guarantee", "processed")], factory: factory)
        self.logInterval = logInterval
        self.clock = clock
        self.queueDepth = queueDepth
        self.logger = logger
    }

    public var name: String { "throughput" }

    /// The totals so far.
    public var statistics: Statistics { totals.withLock { $0 } }

    public func send(_ message: OutboundMessage, to members: [Member], next: InterceptorNext) async -> SendReport {
        let bytes = message.payload.readableBytes
        for member in members { handle(sent: true, type: message.type.rawValue, member: member).count(bytes) }
        count(sent: true, messages: members.count, bytes: bytes * members.count)
        let start = clock.now
        inFlightGauge.record(inFlight.wrappingAdd(1, ordering: .relaxed).newValue)
        let report = await next.send(message, to: members)
        inFlightGauge.record(inFlight.wrappingSubtract(1, ordering: .relaxed).newValue)
        switch message.options.guarantee {
        case .receipt: receiptTimer.recordInterval(since: start, clock: clock)
        case .processed: processedTimer.recordInterval(since: start, clock: clock)
        case .asynchronous: break
        }
        if !report.allSucceeded {
            for failure in report.failures {
                let name = members.first { $0.id == failure.member }?.name ?? "\(failure.member)"
                failureCounter(cause: Self.cause(failure.outcome), member: name).increment()
            }
            totals.withLock { $0.failures += report.failures.count }
        }
        if let queueDepth {
            for member in members {
                if let depth = queueDepth(member.id) { gauge(for: member).record(depth) }
            }
        }
        return report
    }

    public func receive(_ message: InboundMessage, next: InterceptorNext) async -> DeliveryResult {
        let bytes = message.payload.readableBytes
        handle(sent: false, type: message.type.rawValue, member: message.sender).count(bytes)
        count(sent: false, messages: 1, bytes: bytes)
        return await next.receive(message)
    }

    public func membership(_ signal: MembershipSignal, next: InterceptorNext) {
        if case .left(let member) = signal {
            handles.withLock { $0 = $0.filter { $0.key.member != member.id } }
            _ = depthGauges.withLock { $0.removeValue(forKey: member.id) }
        }
        next.membership(signal)
    }

    /// The failure cause named in `cohort.send.failures`.
    static func cause(_ outcome: MemberOutcome) -> String {
        switch outcome {
        case .queued, .delivered: return "none"
        case .connectionFailed: return "connectionFailed"
        case .timedOut: return "timedOut"
        case .remoteFailure: return "remoteFailure"
        case .queueFull: return "queueFull"
        case .notAMember: return "notAMember"
        case .rejected: return "rejected"
        }
    }

    private func handle(sent: Bool, type: UInt32, member: Member) -> Handles {
        let key = Key(sent: sent, type: type, member: member.id)
        if let found = handles.withLock({ $0[key] }) { return found }
        let dimensions = [("direction", sent ? "sent" : "received"), ("type", "\(type)"), ("member", member.name)]
        let made = Handles(
            messages: Counter(label: "cohort.throughput.messages", dimensions: dimensions, factory: factory),
            bytes: Counter(label: "cohort.throughput.bytes", dimensions: dimensions, factory: factory)
        )
        return handles.withLock { handles in
            if let raced = handles[key] { return raced }
            handles[key] = made
            return made
        }
    }

    private func failureCounter(cause: String, member: String) -> Counter {
        let key = cause + "\u{0}" + member
        if let found = failures.withLock({ $0[key] }) { return found }
        let made = Counter(label: "cohort.send.failures", dimensions: [("cause", cause), ("member", member)], factory: factory)
        return failures.withLock { $0[key, default: made] }
    }

    private func gauge(for member: Member) -> Gauge {
        if let found = depthGauges.withLock({ $0[member.id] }) { return found }
        let made = Gauge(label: "cohort.send.queue_depth", dimensions: [("member", member.name)], factory: factory)
        return depthGauges.withLock { $0[member.id, default: made] }
    }

    private func count(sent: Bool, messages: Int, bytes: Int) {
        let summary: Statistics? = totals.withLock { totals in
            if sent {
                totals.sentMessages += messages
                totals.sentBytes += bytes
            } else {
                totals.receivedMessages += messages
                totals.receivedBytes += bytes
            }
            guard logInterval > 0 else { return nil }
            let all = totals.sentMessages + totals.receivedMessages
            return all / logInterval != (all - messages) / logInterval ? totals : nil
        }
        if let summary {
            logger.info("throughput: sent \(summary.sentMessages) messages (\(summary.sentBytes) bytes), received \(summary.receivedMessages) (\(summary.receivedBytes) bytes), \(summary.failures) failed")
        }
    }
}

extension Throughput.Handles {
    func count(_ size: Int) {
        messages.increment()
        bytes.increment(by: Int64(size))
    }
}

extension Timer {
    func recordInterval(since start: ContinuousClock.Instant, clock: any CohortClock) {
        let elapsed = clock.now - start
        let (seconds, attoseconds) = elapsed.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
