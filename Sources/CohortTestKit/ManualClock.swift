import Cohort
import NIOConcurrencyHelpers

/// A clock that moves only when told to, so timeouts can be tested without waiting.
///
/// ```swift
/// let clock = ManualClock()
/// // … start something that sleeps on `clock` …
/// clock.advance(by: .seconds(2))   // wakes every sleeper whose deadline passed
/// ```
public final class ManualClock: CohortClock, @unchecked Sendable {
    private struct Sleeper {
        var id: Int
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private let lock = NIOLock()
    private let base = ContinuousClock.now
    private var offset = Duration.zero
    private var sleepers: [Sleeper] = []
    private var nextID = 0

    public init() {}

    public var now: ContinuousClock.Instant { lock.withLock { base.advanced(by: offset) } }

    /// How many tasks are sleeping on this clock.
    public var sleeperCount: Int { lock.withLock { sleepers.count } }

    public func sleep(for duration: Duration) async throws {
        let id: Int = lock.withLock {
            nextID += 1
            return nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let immediate: Bool = lock.withLock {
                    let deadline = base.advanced(by: offset).advanced(by: duration)
                    if duration <= .zero { return true }
                    sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return false
                }
                if immediate { continuation.resume() }
            }
        } onCancel: {
            let sleeper: Sleeper? = lock.withLock {
                guard let index = sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward and wakes the sleepers that are due.
    public func advance(by duration: Duration) {
        let due: [Sleeper] = lock.withLock {
            offset += duration
            let now = base.advanced(by: offset)
            let due = sleepers.filter { $0.deadline <= now }
            sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }
}
