/// How far a send waits before it returns (Tribes' async, USE_ACK, SYNCHRONIZED_ACK).
public enum DeliveryGuarantee: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Return once the message is queued for every destination. Failures are reported later,
    /// through the channel's `onAsyncFailure` handler and the `cohort.send.async_failures`
    /// metric — never silently.
    case asynchronous = 0
    /// Return once every destination has received the message (Tribes' USE_ACK).
    case receipt = 1
    /// Return once every destination's handler has finished; a handler that throws is reported as
    /// a failure for that member (Tribes' SYNCHRONIZED_ACK / FAIL_ACK).
    case processed = 2

    public var description: String {
        switch self {
        case .asynchronous: return "async"
        case .receipt: return "receipt"
        case .processed: return "processed"
        }
    }

    /// Parses `async`, `receipt` (or `ack`), `processed` (or `sync`).
    public init?(name: String) {
        switch name.lowercased() {
        case "async", "asynchronous": self = .asynchronous
        case "receipt", "ack", "use_ack": self = .receipt
        case "processed", "sync", "synchronized_ack": self = .processed
        default: return nil
        }
    }
}

/// Options of one send.
public struct SendOptions: Sendable, Hashable {
    /// How far the send waits.
    public var guarantee: DeliveryGuarantee
    /// How long to wait for acknowledgements before a member counts as timed out.
    public var timeout: Duration
    /// Free option bits that interceptors can filter on (bits 0–15 are reserved for Cohort).
    public var flags: UInt32

    /// Creates send options.
    public init(guarantee: DeliveryGuarantee = .processed, timeout: Duration = .seconds(5), flags: UInt32 = 0) {
        self.guarantee = guarantee
        self.timeout = timeout
        self.flags = flags
    }

    /// Fire and forget (failures still reported asynchronously).
    public static let asynchronous = SendOptions(guarantee: .asynchronous)
    /// Wait for receipt.
    public static let receipt = SendOptions(guarantee: .receipt)
    /// Wait until processed (the default).
    public static let processed = SendOptions(guarantee: .processed)
}

/// The destinations of a send.
public enum Destination: Sendable, Hashable {
    /// Every member of the current view.
    case all
    /// These members only (those not in the view are reported as ``MemberOutcome/notAMember``).
    case members([MemberID])

    /// One member.
    public static func member(_ id: MemberID) -> Destination { .members([id]) }
}

/// What happened to a send at one member.
public enum MemberOutcome: Sendable, Equatable, CustomStringConvertible {
    /// Queued (asynchronous sends).
    case queued
    /// Received (receipt) or processed (processed), as asked.
    case delivered
    /// The connection failed or could not be made.
    case connectionFailed(String)
    /// No acknowledgement arrived within the timeout.
    case timedOut
    /// The remote handler threw; the text is its error description.
    case remoteFailure(String)
    /// The member's queue was full and the policy is to fail fast.
    case queueFull
    /// The member is not in the view.
    case notAMember
    /// The receiver could not decode the message (unknown type or codec, bad bytes).
    case rejected(String)

    /// Whether the send reached its goal at this member.
    public var isSuccess: Bool {
        switch self {
        case .queued, .delivered: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .queued: return "queued"
        case .delivered: return "delivered"
        case .connectionFailed(let why): return "connection failed: \(why)"
        case .timedOut: return "timed out"
        case .remoteFailure(let why): return "remote handler failed: \(why)"
        case .queueFull: return "queue full"
        case .notAMember: return "not a member"
        case .rejected(let why): return "rejected: \(why)"
        }
    }
}

/// The per-member result of one send (Tribes' ChannelException with its FaultyMember list).
public struct SendReport: Sendable, Equatable, CustomStringConvertible {
    /// One entry per destination, in destination order.
    public var outcomes: [(member: MemberID, outcome: MemberOutcome)]

    /// Creates a report.
    public init(outcomes: [(member: MemberID, outcome: MemberOutcome)] = []) {
        self.outcomes = outcomes
    }

    /// The number of destinations.
    public var count: Int { outcomes.count }
    /// Destinations where the send succeeded.
    public var succeeded: [MemberID] { outcomes.filter { $0.outcome.isSuccess }.map(\.member) }
    /// Destinations where it failed, with the reason.
    public var failures: [(member: MemberID, outcome: MemberOutcome)] { outcomes.filter { !$0.outcome.isSuccess } }
    /// Whether every destination succeeded.
    public var allSucceeded: Bool { outcomes.allSatisfy { $0.outcome.isSuccess } }
    /// The outcome at one member.
    public func outcome(for member: MemberID) -> MemberOutcome? { outcomes.first { $0.member == member }?.outcome }

    public static func == (lhs: SendReport, rhs: SendReport) -> Bool {
        lhs.outcomes.count == rhs.outcomes.count
            && zip(lhs.outcomes, rhs.outcomes).allSatisfy { $0.member == $1.member && $0.outcome == $1.outcome }
    }

    public var description: String {
        "sent to \(succeeded.count)/\(count) members"
            + (failures.isEmpty ? "" : " (" + failures.map { "\($0.member): \($0.outcome)" }.joined(separator: "; ") + ")")
    }
}
