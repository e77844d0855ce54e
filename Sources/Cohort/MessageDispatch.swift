/// A failure of an asynchronous send, reported after the send returned.
public struct AsyncSendFailure: Sendable, CustomStringConvertible {
    /// The member the messages were for.
    public var member: Member
    /// How many messages are affected.
    public var count: Int
    /// Why.
    public var reason: String

    public init(member: Member, count: Int, reason: String) {
        self.member = member
        self.count = count
        self.reason = reason
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
    let members: @Sendable (MemberID) -> Member?

    /// Creates the stage.
    ///
    /// - Parameters:
    ///   - settings: queue bound and policy.
    ///   - report: where failures of asynchronous sends go.
    ///   - members: resolves ids to members for reports.
    public init(settings: Settings = Settings(), report: @escaping @Sendable (AsyncSendFailure) -> Void, members: @escaping @Sendable (MemberID) -> Member?) {
        self.settings = settings
        self.report = report
        self.members = members
    }

    public var name: String { "dispatch" }

    public func send(_ message: OutboundMessage, to members: [Member], next: InterceptorNext) async -> SendReport {
        var message = message
        message.queuePolicy = settings.policy
        message.queueLimit = settings.queueLimit
        let result = await next.send(message, to: members)
        if message.options.guarantee == .asynchronous, !result.allSucceeded {
            for failure in result.failures {
                if let member = self.members(failure.member) ?? members.first(where: { $0.id == failure.member }) {
                    report(AsyncSendFailure(member: member, count: 1, reason: failure.outcome.description))
                }
            }
        }
        return result
    }
}
