import Cohort
import CohortTestKit
import Foundation
import NIOConcurrencyHelpers
import Testing

/// The test clock itself: sleepers wake when due and only then, cancellation never strands a
/// sleeper, waiting for sleepers is woken by them, and wall time moves with the clock.
@Suite("ManualClock", .timeLimit(.minutes(1)))
struct ManualClockTests {
    /// A task sleeping on the clock, with a flag saying whether it woke.
    final class Sleeper: Sendable {
        let task: Task<Void, any Error>
        private let woke = NIOLockedValueBox(false)

        init(_ clock: ManualClock, _ duration: Duration) {
            let woke = self.woke
            task = Task {
                try await clock.sleep(for: duration)
                woke.withLockedValue { $0 = true }
            }
        }

        var hasWoken: Bool { woke.withLockedValue { $0 } }
    }

    @Test func sleepersWakeWhenDueAndNotBefore() async throws {
        let clock = ManualClock()
        let short = Sleeper(clock, .seconds(1))
        let long = Sleeper(clock, .seconds(10))
        try await clock.waitForSleepers(2)
        #expect(clock.nextDeadline == .seconds(1))
        #expect(clock.advance(by: .milliseconds(999)) == 0)
        #expect(clock.sleeperCount == 2)
        #expect(clock.advance(by: .milliseconds(1)) == 1, "the 1 s sleeper is due")
        try await short.task.value
        #expect(short.hasWoken)
        #expect(!long.hasWoken)
        #expect(clock.sleeperCount == 1)
        #expect(clock.nextDeadline == .seconds(9))
        #expect(clock.advance(by: .seconds(60)) == 1, "one big step wakes everything due by then")
        try await long.task.value
        #expect(clock.sleeperCount == 0)
        #expect(clock.nextDeadline == nil)
    }

    @Test func aSleepIsMeasuredFromWhenItStarts() async throws {
        let clock = ManualClock()
        clock.advance(by: .seconds(100))
        let sleeper = Sleeper(clock, .seconds(5))
        try await clock.waitForSleepers(1)
        clock.advance(by: .seconds(4))
        #expect(clock.sleeperCount == 1)
        clock.advance(by: .seconds(1))
        try await sleeper.task.value
        #expect(clock.elapsed == .seconds(105))
    }

    @Test func zeroAndNegativeSleepsReturnAtOnce() async throws {
        let clock = ManualClock()
        try await clock.sleep(for: .zero)
        try await clock.sleep(for: .seconds(-1))
        #expect(clock.sleeperCount == 0)
    }

    @Test func cancellingASleeperWakesItWithCancellationError() async throws {
        let clock = ManualClock()
        let sleeper = Sleeper(clock, .seconds(10))
        try await clock.waitForSleepers(1)
        sleeper.task.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.task.value }
        #expect(clock.sleeperCount == 0)
        #expect(!sleeper.hasWoken)
    }

    /// Starts `count` tasks that each sleep an hour on `clock` (cancelling themselves first when
    /// `cancelFirst`), and a stream that yields, as each sleep ends, whether it ended with
    /// `CancellationError`. Waiting on the stream (not on the tasks) keeps a stranded sleeper from
    /// hanging the test: the wait is bounded by ``withDeadline(_:_:_:)``.
    static func sleeps(_ count: Int, on clock: ManualClock, cancelFirst: Bool = false) -> (outcomes: AsyncStream<Bool>, tasks: [Task<Void, Never>]) {
        let (outcomes, outcome) = AsyncStream.makeStream(of: Bool.self)
        let tasks = (0..<count).map { _ in
            Task {
                if cancelFirst { withUnsafeCurrentTask { $0?.cancel() } }
                do {
                    try await clock.sleep(for: .seconds(3600))
                    outcome.yield(false)
                } catch {
                    outcome.yield(error is CancellationError)
                }
            }
        }
        return (outcomes, tasks)
    }

    /// Counts the sleeps that ended with `CancellationError`, until `count` did (or the deadline).
    static func cancelled(_ outcomes: AsyncStream<Bool>, count: Int) async throws -> Int {
        try await withDeadline(.seconds(30), "\(count) cancelled sleep(s) to return") {
            var ended = 0
            for await cancelled in outcomes where cancelled {
                ended += 1
                if ended == count { break }
            }
            return ended
        }
    }

    /// The race the old clock lost: a task cancelled before its sleep registered ran the
    /// cancellation handler first (nothing to wake), then registered and slept for ever.
    @Test func aTaskCancelledBeforeItSleepsIsNotStranded() async throws {
        let clock = ManualClock()
        let (outcomes, _) = Self.sleeps(1, on: clock, cancelFirst: true)
        #expect(try await Self.cancelled(outcomes, count: 1) == 1)
        #expect(clock.sleeperCount == 0)
    }

    /// Cancellation racing registration, many times over: every sleep ends, none is left behind.
    @Test func cancellationRacingRegistrationNeverStrandsASleeper() async throws {
        let clock = ManualClock()
        let count = 1_000
        let (outcomes, tasks) = Self.sleeps(count, on: clock)
        // Cancelled while they start: before, while or after each registers its sleep.
        for task in tasks { task.cancel() }
        #expect(try await Self.cancelled(outcomes, count: count) == count)
        #expect(clock.sleeperCount == 0)
    }

    @Test func waitForSleepersIsWokenByTheSleepers() async throws {
        let clock = ManualClock()
        let waiter = Task { try await clock.waitForSleepers(3) }
        let sleepers = (1...3).map { Sleeper(clock, .seconds($0)) }
        try await withDeadline(.seconds(30), "the waiter to see 3 sleepers") { try await waiter.value }
        #expect(clock.sleeperCount == 3)
        clock.advance(by: .seconds(3))
        for sleeper in sleepers { try await sleeper.task.value }
    }

    @Test func waitForSleepersGivesUpWithATimeoutError() async throws {
        let clock = ManualClock()
        await #expect(throws: CohortError.self) { try await clock.waitForSleepers(1, timeout: .milliseconds(50)) }
    }

    /// A timer loop on the clock: advancing and waiting for it to sleep again returns after its
    /// turn ran, every time.
    @Test func advanceThenWaitForSleepersRunsOneTurnOfATimerLoop() async throws {
        let clock = ManualClock()
        let turns = NIOLockedValueBox(0)
        let loop = Task {
            while true {
                try await clock.sleep(for: .seconds(1))
                turns.withLockedValue { $0 += 1 }
            }
        }
        try await clock.waitForSleepers(1)
        for expected in 1...50 {
            try await clock.advance(by: .seconds(1), thenWaitForSleepers: 1)
            #expect(turns.withLockedValue { $0 } == expected)
        }
        loop.cancel()
        _ = try? await loop.value
        #expect(clock.sleeperCount == 0)
    }

    @Test func wallTimeMovesWithTheClock() async throws {
        let clock = ManualClock(wallTime: .seconds(1_800_000_000))
        #expect(clock.date == Date(timeIntervalSince1970: 1_800_000_000))
        let before = clock.now
        clock.advance(by: .milliseconds(1500))
        #expect(clock.wallTime == .milliseconds(1_800_000_001_500))
        #expect(clock.now - before == .milliseconds(1500))
        #expect(clock.date == Date(timeIntervalSince1970: 1_800_000_001.5))
        let fromDate = ManualClock(date: Date(timeIntervalSince1970: 1_000))
        #expect(fromDate.wallTime == .seconds(1_000))
    }

    @Test func systemClockWallTimeIsTheSystemsAndMovesForward() {
        let clock = SystemClock()
        let first = clock.wallTime
        let system = Date().timeIntervalSince1970
        let (seconds, _) = first.components
        #expect(abs(Double(seconds) - system) < 120, "wall time \(first) vs system \(system)")
        #expect(clock.wallTime >= first)
    }
}
