/// The clock the shells run on. Production uses ``SystemClock``; tests use a manual clock from
/// CohortTestKit so that timeouts can be driven without sleeping.
public protocol CohortClock: Sendable {
    /// The current instant.
    var now: ContinuousClock.Instant { get }
    /// Suspends for a duration of this clock's time.
    func sleep(for duration: Duration) async throws
}

/// The real monotonic clock.
public struct SystemClock: CohortClock {
    public init() {}
    public var now: ContinuousClock.Instant { ContinuousClock.now }
    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}
