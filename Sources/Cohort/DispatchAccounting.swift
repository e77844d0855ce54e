import Logging
import Metrics

/// The control plane of message dispatch (Tribes' MessageDispatchInterceptor): an actor that
/// keeps the per-member account of asynchronous sends that failed and reports each failure,
/// in order, to the channel's handler, the log and the `cohort.send.async_failures` metric.
///
/// ```
///  MessageDispatch stage ──.failed(AsyncSendFailure)──▶ ┌────────────────────┐──▶ onAsyncFailure handler
///  transport (via the channel) ──.failed(…)───────────▶ │ DispatchAccounting │──▶ log + metric
///  channel ──.handler(…) / .memberGone(id)────────────▶ └────────────────────┘
/// ```
///
/// The queue itself — the window of unacknowledged messages per member connection — is counted by
/// the transport on the send path (ADR 0002); only failures, which are rare by definition, reach
/// this actor. Reports are handed over with ``send(_:)``, which never waits, so an event loop that
/// sees a broken connection never runs an application's handler itself.
public actor DispatchAccounting {
    /// What the accounting reacts to.
    public enum Message: Sendable {
        /// Asynchronous messages to a member failed (queue full, timed out, connection lost,
        /// rejected by the receiver).
        case failed(AsyncSendFailure)
        /// Where failures are reported from now on (besides the log and the metric).
        case handler(@Sendable (AsyncSendFailure) -> Void)
        /// The member left the view: its account is closed.
        case memberGone(MemberID)
    }

    /// The failures of asynchronous sends to one member since it joined.
    public struct Account: Sendable, Equatable {
        /// Messages reported failed.
        public var failedMessages: Int = 0
        /// Reports received (one report may cover several messages).
        public var reports: Int = 0
        /// Of the failed messages, those refused because the member's queue was full.
        public var queueFull: Int = 0
        /// Of the failed messages, those that waited for room longer than their timeout.
        public var timedOut: Int = 0
        /// The reason of the latest report.
        public var lastReason: String = ""

        public init() {}
    }

    enum Envelope: Sendable {
        case message(Message)
        case barrier(CheckedContinuation<Void, Never>)
    }

    private var accounts: [MemberID: Account] = [:]
    private var handler: (@Sendable (AsyncSendFailure) -> Void)?
    private let logger: Logger
    private let counter = Counter(label: "cohort.send.async_failures")
    nonisolated private let mailbox: AsyncStream<Envelope>
    nonisolated private let input: AsyncStream<Envelope>.Continuation

    /// Creates the actor.
    public init(logger: Logger = Logger(label: "cohort")) {
        self.logger = logger
        (self.mailbox, self.input) = AsyncStream.makeStream(of: Envelope.self)
    }

    /// Hands a message to the actor (never waits).
    nonisolated public func send(_ message: Message) {
        input.yield(.message(message))
    }

    /// Waits until every message sent before this call has been handled. Returns at once if
    /// ``run()`` is not running.
    public func settle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if case .terminated = input.yield(.barrier(continuation)) { continuation.resume() }
        }
    }

    /// The accounts of the members that had failures, by member.
    public var snapshot: [MemberID: Account] { accounts }

    /// Handles messages until cancelled.
    public func run() async {
        defer { input.finish() }
        for await envelope in mailbox {
            switch envelope {
            case .barrier(let continuation): continuation.resume()
            case .message(let message): handle(message)
            }
        }
    }

    private func handle(_ message: Message) {
        switch message {
        case .failed(let failure):
            var account = accounts[failure.member.id] ?? Account()
            account.failedMessages += failure.count
            account.reports += 1
            account.lastReason = failure.reason
            if failure.outcome == .queueFull { account.queueFull += failure.count }
            if failure.outcome == .timedOut { account.timedOut += failure.count }
            accounts[failure.member.id] = account
            counter.increment(by: failure.count)
            logger.warning("\(failure)")
            handler?(failure)
        case .handler(let handler):
            self.handler = handler
        case .memberGone(let id):
            accounts.removeValue(forKey: id)
        }
    }
}
