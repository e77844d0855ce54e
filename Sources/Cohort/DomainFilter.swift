import Logging
import Metrics
import Synchronization

/// Makes members and messages of other cluster domains invisible (Tribes' DomainFilterInterceptor).
///
/// Several clusters may share a network — one multicast group, one address range — and are told
/// apart by ``ClusterConfiguration/domain``. This stage, enabled by the name `domainFilter` in
/// ``ClusterConfiguration/interceptors`` (and on by default), is the documented place where that
/// separation happens:
/// - membership signals about a member of another domain are dropped, so such a member is never
///   added, suspected or probed;
/// - inbound messages from a member of another domain are refused (the sender sees
///   ``DeliveryResult/rejected(_:)``) before any decoding.
///
/// Rejections are counted (``rejectedMessages``, ``rejectedSignals``, and the
/// `cohort.domain_filter.rejected` metric) and logged once per ``logInterval`` rejections. The
/// layers around it filter too — discovery ignores other domains' announcements, the membership
/// state never admits them, and the channel's dispatcher refuses their messages even without this
/// stage — so removing it from the list does not merge domains.
public final class DomainFilter: Interceptor, Sendable {
    /// The domain let through.
    public let domain: String
    /// A rejection is logged every this many rejections (the first one always).
    public let logInterval: Int
    private let logger: Logger
    private let messages = Atomic<Int>(0)
    private let signals = Atomic<Int>(0)
    private let messageCounter = Counter(label: "cohort.domain_filter.rejected", dimensions: [("what", "message")])
    private let signalCounter = Counter(label: "cohort.domain_filter.rejected", dimensions: [("what", "membership")])

    /// Creates the stage.
    ///
    /// - Parameters:
    ///   - domain: the local member's domain.
    ///   - logInterval: log one rejection in this many (Tribes: 100).
    ///   - logger: where rejections are logged.
    public init(domain: String, logInterval: Int = 100, logger: Logger = Logger(label: "cohort.domain_filter")) {
        self.domain = domain
        self.logInterval = max(1, logInterval)
        self.logger = logger
    }

    public var name: String { "domainFilter" }

    /// Messages refused so far.
    public var rejectedMessages: Int { messages.load(ordering: .relaxed) }

    /// Membership signals dropped so far.
    public var rejectedSignals: Int { signals.load(ordering: .relaxed) }

    public func membership(_ signal: MembershipSignal, next: InterceptorNext) {
        let member: Member
        switch signal {
        case .joined(let m), .missing(let m, _), .sendFailed(let m, _), .left(let m): member = m
        }
        guard member.domain == domain else {
            let count = signals.wrappingAdd(1, ordering: .relaxed).newValue
            signalCounter.increment()
            if count % logInterval == 1 || logInterval == 1 {
                logger.info("domain filter: ignored \(member.name) of domain '\(member.domain)' (this node: '\(domain)'); \(count) membership signals ignored so far")
            }
            return
        }
        next.membership(signal)
    }

    public func receive(_ message: InboundMessage, next: InterceptorNext) async -> DeliveryResult {
        guard message.sender.domain == domain else {
            let count = messages.wrappingAdd(1, ordering: .relaxed).newValue
            messageCounter.increment()
            if count % logInterval == 1 || logInterval == 1 {
                logger.info("domain filter: refused a message from \(message.sender.name) of domain '\(message.sender.domain)' (this node: '\(domain)'); \(count) refused so far")
            }
            return .rejected("the receiver is in domain '\(domain)', the sender in '\(message.sender.domain)'")
        }
        return await next.receive(message)
    }
}
