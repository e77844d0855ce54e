/// A failure of an asynchronous send, reported after the send returned.
public struct AsyncSendFailure: Sendable, CustomStringConvertible {
    /// The member the messages were for.
    public var member: Member
    /// How many messages are affected.
    public var count: Int
    /// Why.
    public var reason: String
    /// The outcome the send reported for the member, when the failure was known before the send
    /// returned (a full queue, a timeout); nil for failures found later (a broken connection, a
    /// receiver's rejection).
    public var outcome: MemberOutcome?

    public init(member: Member, count: Int, reason: String, outcome: MemberOutcome? = nil) {
        self.member = member
        self.count = count
        self.reason = reason
        self.outcome = outcome
    }

    public var description: String { "\(count) asynchronous message(s) to \(member.name) failed: \(reason)" }
}

/// Asynchronous sends through a bounded per-member queue (Tribes' MessageDispatchInterceptor).
///
/// The queue is the member connection's window of unacknowledged messages: every message,
/// asynchronous ones included, is acknowledged on receipt, so the transport knows how many are in
/// flight per member. When a member has ``Settings/queueLimit`` messages in flight, the
/// ``Settings/policy`` applies (block, fail fast, or send synchronously). Failures of asynchronous
/// sends — a full queue, a connection that broke with messages in flight, a receiver that could not
/// decode them — go to the channel's async-failure handler and the
/// `cohort.send.async_failures` metric; they are never only logged.
///
/// The stage is the data-plane half: it stamps the limit and policy on each message and, when a
/// report shows failures, hands them to its control plane — in a channel the
/// ``DispatchAccounting`` actor, which keeps the per-member accounts and calls the handler — as
/// messages, without waiting.
public struct MessageDispatch: Interceptor {
    /// Tunables.
    public struct Settings: Sendable, Codable, Equatable {
        /// Messages in flight per member before the policy applies.
        public var queueLimit: Int
        /// What happens when the queue is full.
        public var policy: QueuePolicy

        public init(queueLimit: Int = 10_000, policy: QueuePolicy = .block) {
            self.queueLimit = queueLimit
            self.policy = policy
        }
    }

    public let settings: Settings
    let report: @Sendable (AsyncSendFailure) -> Void

    /// Creates the stage.
    ///
    /// - Parameters:
    ///   - settings: queue bound and policy.
    ///   - report: where failures of asynchronous sends go.
    ///   - members: unused; failures name the member from the send's own destination list.
    public init(settings: Settings = Settings(), report: @escaping @Sendable (AsyncSendFailure) -> Void, members: (@Sendable (MemberID) -> Member?)? = nil) {
        self.settings = settings
        self.report = report
    }

    /// Creates the stage reporting to an accounting actor.
    public init(settings: Settings = Settings(), accounting: DispatchAccounting) {
        self.settings = settings
        self.report = { failure in accounting.send(.failed(failure)) }
    }

    public var name: String { "dispatch" }

    public func send(_ message: OutboundMessage, to members: [Member], next: InterceptorNext) async -> SendReport {
        var message = message
        message.queuePolicy = settings.policy
        message.queueLimit = settings.queueLimit
        let result = await next.send(message, to: members)
        if message.options.guarantee == .asynchronous, !result.allSucceeded {
            for failure in result.failures {
                if let member = members.first(where: { $0.id == failure.member }) {
                    report(AsyncSendFailure(member: member, count: 1, reason: failure.outcome.description, outcome: failure.outcome))
                }
            }
        }
        return result
    }
}
