import CohortCore
import Synchronization

/// Senders waiting for room in one member connection's queue (the `block` queue policy).
///
/// No polling: a waiter parks on a continuation, resumed when acknowledgements (or a failure)
/// bring the connection's in-flight count below the waiter's limit, or by one timer task at the
/// send's deadline on the injected clock. The counting is sequentially consistent on both sides
/// (the waiter announces itself, then reads the count; a release lowers the count, then reads
/// the number of waiters), so a release can never miss a waiter that just parked.
final class QueueRoom: Sendable {
    private struct Waiter {
        var id: Int
        var limit: Int
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var waiters: [Waiter] = []
        var expired: Set<Int> = []
        var nextID = 0
    }

    private let waiting = Atomic<Int>(0)
    private let state = Mutex(State())

    /// Whether anyone waits (a cheap check for the release path).
    var hasWaiters: Bool { waiting.load(ordering: .sequentiallyConsistent) > 0 }

    /// Waits until `current()` (the in-flight count, read sequentially consistent) is below
    /// `limit`, at most until `deadline`.
    ///
    /// - Returns: false when the deadline came first.
    func wait(for current: @escaping @Sendable () -> Int, below limit: Int, until deadline: ContinuousClock.Instant, clock: any CohortClock) async -> Bool {
        if current() < limit { return true }
        if clock.now >= deadline { return false }
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        let timer = Task {
            do { try await clock.sleep(for: deadline - clock.now) } catch { return }
            self.expire(id)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            let answer: Bool? = state.withLock { state in
                if state.expired.remove(id) != nil { return false }
                waiting.add(1, ordering: .sequentiallyConsistent)
                if current() < limit {
                    waiting.subtract(1, ordering: .sequentiallyConsistent)
                    return true
                }
                state.waiters.append(Waiter(id: id, limit: limit, continuation: continuation))
                return nil
            }
            if let answer { continuation.resume(returning: answer) }
        }
    }

    /// The in-flight count went down to `inFlight`: wakes as many waiters, first come first
    /// served, as there is room for.
    func released(inFlight: Int) {
        let woken: [CheckedContinuation<Bool, Never>] = state.withLock { state in
            var woken: [CheckedContinuation<Bool, Never>] = []
            var count = inFlight
            state.waiters.removeAll { waiter in
                guard count < waiter.limit else { return false }
                count += 1
                woken.append(waiter.continuation)
                return true
            }
            if !woken.isEmpty { waiting.subtract(woken.count, ordering: .sequentiallyConsistent) }
            return woken
        }
        for continuation in woken { continuation.resume(returning: true) }
    }

    private func expire(_ id: Int) {
        let waiter: CheckedContinuation<Bool, Never>? = state.withLock { state in
            if let index = state.waiters.firstIndex(where: { $0.id == id }) {
                waiting.subtract(1, ordering: .sequentiallyConsistent)
                return state.waiters.remove(at: index).continuation
            }
            state.expired.insert(id)
            return nil
        }
        waiter?.resume(returning: false)
    }
}
