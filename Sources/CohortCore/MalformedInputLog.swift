import Logging
import NIOConcurrencyHelpers

/// A limit on log lines about input from the network: at most ``burst`` lines per ``interval``,
/// then silence until the interval is over; the next line says how many were left out.
///
/// A peer that sends malformed frames in a loop must not be able to flood the log (one warning a
/// frame is one write a frame for the attacker's one). Counting is the caller's job: every
/// malformed input is counted whether or not it is logged.
public struct LogRateLimit: Sendable, Equatable {
    /// Lines allowed per interval.
    public let burst: Int
    /// The length of one interval.
    public let interval: Duration
    private var windowStart: ContinuousClock.Instant?
    private var used = 0
    private var suppressed = 0

    /// What to do with one line.
    public enum Decision: Sendable, Equatable {
        /// Log it; `suppressedBefore` lines were left out since the last line logged.
        case log(suppressedBefore: Int)
        /// Leave it out.
        case suppress
    }

    /// Creates a limit of `burst` lines per `interval`.
    public init(burst: Int = 5, interval: Duration = .seconds(10)) {
        self.burst = max(1, burst)
        self.interval = interval
    }

    /// Decides about one line at `now`.
    public mutating func admit(now: ContinuousClock.Instant) -> Decision {
        if let start = windowStart, now < start.advanced(by: interval), now >= start {
            guard used < burst else {
                suppressed &+= 1
                return .suppress
            }
        } else {
            windowStart = now
            used = 0
        }
        used += 1
        defer { suppressed = 0 }
        return .log(suppressedBefore: suppressed)
    }
}

/// Counts malformed or refused input by kind and logs it at a limited rate.
///
/// ```swift
/// let hostile = MalformedInputLog(logger: logger)
/// hostile.record("ReplicaUpdate", "cannot decode a change from \(sender): \(error)")
/// ```
///
/// Thread-safe; the counts are cumulative for the life of the instance.
public final class MalformedInputLog: Sendable {
    private let logger: Logger
    private let clock: any CohortClock
    private let level: Logger.Level
    private let state: NIOLockedValueBox<(limit: LogRateLimit, counts: [String: Int])>

    /// Creates a log.
    ///
    /// - Parameters:
    ///   - logger: where the lines go.
    ///   - level: their level (warning by default).
    ///   - limit: how many lines per interval.
    ///   - clock: the clock of the limit (tests pass a manual one).
    public init(logger: Logger, level: Logger.Level = .warning, limit: LogRateLimit = LogRateLimit(), clock: any CohortClock = SystemClock()) {
        self.logger = logger
        self.level = level
        self.clock = clock
        self.state = NIOLockedValueBox((limit, [:]))
    }

    /// Counts one input of kind `kind` and logs `message` unless the rate limit says otherwise.
    public func record(_ kind: String, _ message: @autoclosure () -> String) {
        let now = clock.now
        let decision = state.withLockedValue { state -> LogRateLimit.Decision in
            state.counts[kind, default: 0] &+= 1
            return state.limit.admit(now: now)
        }
        guard case .log(let suppressed) = decision else { return }
        let tail = suppressed > 0 ? " (\(suppressed) similar line(s) left out)" : ""
        logger.log(level: level, "\(message())\(tail)")
    }

    /// How many inputs of a kind were recorded.
    public func count(_ kind: String) -> Int { state.withLockedValue { $0.counts[kind] ?? 0 } }

    /// Every count, by kind.
    public var counts: [String: Int] { state.withLockedValue { $0.counts } }

    /// How many inputs were recorded in all.
    public var total: Int { state.withLockedValue { $0.counts.values.reduce(0, &+) } }
}
