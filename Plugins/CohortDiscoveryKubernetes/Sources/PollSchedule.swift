import CohortCore

/// When a polling discovery provider asks its source again: every ``interval`` while polls
/// succeed, and with an exponential backoff with jitter after failures.
///
/// After the n-th consecutive failure the base wait is `initialBackoff × multiplier^(n-1)`, capped
/// at ``maximumBackoff``; the jitter then takes up to ``jitter`` of it away, so the wait lies in
/// `(base × (1 - jitter), base]`. Many pods that lose the API at the same moment therefore do not
/// retry in lock step, and no wait is ever longer than ``maximumBackoff``.
public struct PollSchedule: Sendable, Equatable {
    /// The wait after a successful poll.
    public var interval: Duration
    /// The base wait after the first failure.
    public var initialBackoff: Duration
    /// The longest wait after failures.
    public var maximumBackoff: Duration
    /// How much the base wait grows per further failure.
    public var multiplier: Double
    /// The fraction (0…1) of the base wait that jitter may take away.
    public var jitter: Double

    /// Creates a schedule.
    ///
    /// - Parameters:
    ///   - interval: the wait after a successful poll.
    ///   - initialBackoff: the base wait after the first failure.
    ///   - maximumBackoff: the cap of the base wait.
    ///   - multiplier: the growth per failure (≥ 1).
    ///   - jitter: the fraction of the base wait that jitter may remove (0…1).
    public init(
        interval: Duration = .seconds(5),
        initialBackoff: Duration = .milliseconds(500),
        maximumBackoff: Duration = .seconds(30),
        multiplier: Double = 2,
        jitter: Double = 0.2
    ) {
        self.interval = interval
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
        self.multiplier = max(1, multiplier)
        self.jitter = min(1, max(0, jitter))
    }

    /// The base wait (before jitter) after some consecutive failures.
    ///
    /// - Parameter failures: consecutive failed polls; 0 means the last poll succeeded.
    /// - Returns: ``interval`` for 0, else the capped exponential backoff.
    public func baseDelay(afterFailures failures: Int) -> Duration {
        guard failures > 0 else { return interval }
        let cap = Self.seconds(maximumBackoff)
        var base = Self.seconds(initialBackoff)
        var step = 1
        // Bounded: stops at the cap, and after 64 steps whatever the numbers are.
        while step < failures && step < 64 && base < cap {
            base *= multiplier
            step += 1
        }
        return .milliseconds(Int64((min(base, cap) * 1000).rounded()))
    }

    /// The wait before the next poll.
    ///
    /// - Parameters:
    ///   - failures: consecutive failed polls; 0 means the last poll succeeded (no jitter then).
    ///   - random: a number in `0..<1` that picks the jitter (inject a fixed value in tests).
    /// - Returns: the wait, in `(base × (1 - jitter), base]`.
    public func delay(afterFailures failures: Int, random: Double) -> Duration {
        let base = baseDelay(afterFailures: failures)
        guard failures > 0 else { return base }
        let fraction = 1 - jitter * min(max(random, 0), 0.999_999)
        return .milliseconds(Int64((Self.seconds(base) * fraction * 1000).rounded()))
    }

    /// The wait before the next poll, with system randomness.
    public func delay(afterFailures failures: Int) -> Duration {
        delay(afterFailures: failures, random: Double.random(in: 0..<1))
    }

    static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
