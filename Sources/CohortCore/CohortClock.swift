#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The clock the shells run on. Production uses ``SystemClock``; tests use a manual clock from
/// CohortTestKit so that timeouts can be driven without sleeping.
///
/// A clock gives two readings that move together: ``now``, a monotonic instant for timers and
/// durations, and ``wallTime``, the time since 1970 for timestamps that travel between hosts
/// (a session's last access, an absolute expiry). Both come from the same clock, so a test that
/// moves one moves the other.
public protocol CohortClock: Sendable {
    /// The current instant.
    var now: ContinuousClock.Instant { get }
    /// The current wall-clock time: how long since 1970-01-01 00:00:00 UTC.
    ///
    /// The default reads the system's wall clock (as ``SystemClock`` does); a clock that moves
    /// time by hand must implement it so that it moves with ``now``.
    var wallTime: Duration { get }
    /// Suspends for a duration of this clock's time.
    func sleep(for duration: Duration) async throws
}

extension CohortClock {
    public var wallTime: Duration { SystemClock.systemWallTime }
}

/// The real monotonic clock.
public struct SystemClock: CohortClock {
    public init() {}
    public var now: ContinuousClock.Instant { ContinuousClock.now }

    /// The wall time, read from the system once per process and moved by the monotonic clock
    /// since: readings never go backwards, also when the system clock is stepped. Nodes on
    /// different hosts agree to within their clocks' skew at start (keep NTP on).
    public var wallTime: Duration { Self.systemWallTime }

    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }

    private static let anchor: (wall: Duration, instant: ContinuousClock.Instant) = (readRealtime(), ContinuousClock.now)

    static var systemWallTime: Duration { anchor.wall + (ContinuousClock.now - anchor.instant) }

    private static func readRealtime() -> Duration {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return .seconds(Int64(spec.tv_sec)) + .nanoseconds(Int64(spec.tv_nsec))
    }
}
