import CohortCore
import Foundation
import NIOConcurrencyHelpers

/// A clock that moves only when told to, so timeouts can be tested without waiting.
///
/// Both readings move together: ``now`` (timers) and ``wallTime`` (timestamps that travel
/// between nodes, such as a session's last access), so nodes that share one manual clock agree
/// on the time exactly.
///
/// ```swift
/// let clock = ManualClock()
/// // … start something that sleeps on `clock` (a session manager's expiry sweep, say) …
/// try await clock.waitForSleepers(1)   // its timer is armed
/// clock.advance(by: .seconds(2))       // wakes every sleeper whose deadline passed
/// try await clock.waitForSleepers(1)   // it ran its turn and sleeps again
/// ```
public final class ManualClock: CohortClock, Sendable {
    /// One call of ``sleep(for:)``, from the moment it starts until it returns.
    private enum Slot {
        /// Started, not registered yet.
        case starting
        /// Cancelled before it registered: it throws as soon as it tries.
        case cancelled
        /// Waiting for its deadline.
        case sleeping(deadline: Duration, continuation: CheckedContinuation<Void, any Error>)
    }

    /// One call of ``waitForSleepers(_:timeout:)``.
    private enum CountWaiter {
        case pending(count: Int)
        case satisfied
        case cancelled
        case waiting(count: Int, continuation: CheckedContinuation<Void, any Error>)
    }

    private struct State {
        var offset = Duration.zero
        var slots: [Int: Slot] = [:]
        var sleeping = 0
        var nextID = 0
        var countWaiters: [Int: CountWaiter] = [:]

        /// Marks the waiters of ``ManualClock/waitForSleepers(_:timeout:)`` that are satisfied
        /// now, and returns the ones to resume.
        mutating func satisfiedWaiters() -> [CheckedContinuation<Void, any Error>] {
            var ready: [CheckedContinuation<Void, any Error>] = []
            for (id, waiter) in countWaiters {
                switch waiter {
                case .pending(let count) where sleeping >= count:
                    countWaiters[id] = .satisfied
                case .waiting(let count, let continuation) where sleeping >= count:
                    countWaiters[id] = nil
                    ready.append(continuation)
                default:
                    break
                }
            }
            return ready
        }
    }

    private let base = ContinuousClock.now
    private let wallStart: Duration
    private let state = NIOLockedValueBox(State())

    /// Creates a clock.
    ///
    /// - Parameter wallTime: the wall time at creation, as time since 1970 (defaults to the
    ///   system's); after that, wall time moves only with ``advance(by:)``.
    public init(wallTime: Duration? = nil) {
        self.wallStart = wallTime ?? SystemClock().wallTime
    }

    /// Creates a clock whose wall time starts at a date.
    public convenience init(date: Date) {
        self.init(wallTime: .milliseconds(Int64((date.timeIntervalSince1970 * 1000).rounded())))
    }

    public var now: ContinuousClock.Instant { base.advanced(by: elapsed) }

    public var wallTime: Duration { wallStart + elapsed }

    /// The wall time as a `Date`, for APIs that take deadlines as dates.
    public var date: Date {
        let (seconds, attoseconds) = wallTime.components
        return Date(timeIntervalSince1970: Double(seconds) + Double(attoseconds) / 1e18)
    }

    /// How far the clock has been advanced since it was created.
    public var elapsed: Duration { state.withLockedValue { $0.offset } }

    /// How many tasks are sleeping on this clock.
    public var sleeperCount: Int { state.withLockedValue { $0.sleeping } }

    /// How long until the earliest sleeper is due (zero when one is due already), or nil when
    /// nobody sleeps.
    public var nextDeadline: Duration? {
        state.withLockedValue { state in
            let deadlines = state.slots.values.compactMap { slot -> Duration? in
                if case .sleeping(let deadline, _) = slot { return deadline }
                return nil
            }
            return deadlines.min().map { max(.zero, $0 - state.offset) }
        }
    }

    /// Sleeps until the clock has been advanced by `duration`.
    ///
    /// - Throws: `CancellationError` when the task is cancelled, whether before the sleep
    ///   began, while it registers, or while it sleeps.
    public func sleep(for duration: Duration) async throws {
        try Task.checkCancellation()
        if duration <= .zero { return }
        let id: Int = state.withLockedValue { state in
            state.nextID += 1
            state.slots[state.nextID] = .starting
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (registered, waiters): (Bool, [CheckedContinuation<Void, any Error>]) = state.withLockedValue { state in
                    guard case .starting = state.slots[id] else {
                        // Cancelled while starting: the cancellation handler found nothing to resume.
                        state.slots[id] = nil
                        return (false, [])
                    }
                    state.slots[id] = .sleeping(deadline: state.offset + duration, continuation: continuation)
                    state.sleeping += 1
                    return (true, state.satisfiedWaiters())
                }
                if !registered { continuation.resume(throwing: CancellationError()) }
                for waiter in waiters { waiter.resume() }
            }
        } onCancel: {
            let sleeper: CheckedContinuation<Void, any Error>? = state.withLockedValue { state in
                switch state.slots[id] {
                case .starting:
                    state.slots[id] = .cancelled
                    return nil
                case .sleeping(_, let continuation):
                    state.slots[id] = nil
                    state.sleeping -= 1
                    return continuation
                case .cancelled, nil:
                    return nil
                }
            }
            sleeper?.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward and wakes the sleepers that are due, earliest deadline first.
    ///
    /// Every sleeper due by the new time has been resumed when this returns. What the woken
    /// tasks do next runs concurrently; to wait until they are back asleep, use
    /// ``waitForSleepers(_:timeout:)`` or ``advance(by:thenWaitForSleepers:timeout:)``.
    ///
    /// - Returns: how many sleepers were woken.
    @discardableResult
    public func advance(by duration: Duration) -> Int {
        precondition(duration >= .zero, "a manual clock cannot go back (advance by \(duration))")
        let due: [CheckedContinuation<Void, any Error>] = state.withLockedValue { state in
            state.offset += duration
            var due: [(deadline: Duration, id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
            for (id, slot) in state.slots {
                if case .sleeping(let deadline, let continuation) = slot, deadline <= state.offset {
                    due.append((deadline, id, continuation))
                }
            }
            for sleeper in due { state.slots[sleeper.id] = nil }
            state.sleeping -= due.count
            return due.sorted { ($0.deadline, $0.id) < ($1.deadline, $1.id) }.map(\.continuation)
        }
        for continuation in due { continuation.resume() }
        return due.count
    }

    /// Moves time forward, then waits until `sleepers` tasks sleep on the clock again.
    ///
    /// With `sleepers` set to the number of timer loops on the clock, this returns once every
    /// loop that woke has run its turn and armed its next timer.
    ///
    /// - Throws: ``CohortError/Code/timeout`` when that does not happen within `timeout` of
    ///   real time (a test that waits for a loop that never sleeps again fails instead of
    ///   hanging).
    public func advance(by duration: Duration, thenWaitForSleepers sleepers: Int, timeout: Duration = .seconds(60)) async throws {
        advance(by: duration)
        try await waitForSleepers(sleepers, timeout: timeout)
    }

    /// Returns once at least `count` tasks sleep on this clock. Woken by the sleepers
    /// themselves (no polling).
    ///
    /// - Throws: ``CohortError/Code/timeout`` when fewer sleep after `timeout` of real time,
    ///   `CancellationError` when the task is cancelled.
    public func waitForSleepers(_ count: Int, timeout: Duration = .seconds(60)) async throws {
        try await withDeadline(timeout, "\(count) sleeper(s) on the manual clock (\(sleeperCount) sleep now)") {
            try await self.sleepersReached(count)
        }
    }

    private func sleepersReached(_ count: Int) async throws {
        try Task.checkCancellation()
        let id: Int? = state.withLockedValue { state in
            if state.sleeping >= count { return nil }
            state.nextID += 1
            state.countWaiters[state.nextID] = .pending(count: count)
            return state.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = state.withLockedValue { state in
                    switch state.countWaiters[id] {
                    case .pending(let count):
                        if state.sleeping >= count {
                            state.countWaiters[id] = nil
                            return .success(())
                        }
                        state.countWaiters[id] = .waiting(count: count, continuation: continuation)
                        return nil
                    case .satisfied:
                        state.countWaiters[id] = nil
                        return .success(())
                    case .cancelled, .waiting, nil:
                        state.countWaiters[id] = nil
                        return .failure(CancellationError())
                    }
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Void, any Error>? = state.withLockedValue { state in
                switch state.countWaiters[id] {
                case .pending:
                    state.countWaiters[id] = .cancelled
                    return nil
                case .waiting(_, let continuation):
                    state.countWaiters[id] = nil
                    return continuation
                case .satisfied, .cancelled, nil:
                    return nil
                }
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
