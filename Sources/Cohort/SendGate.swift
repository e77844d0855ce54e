import CohortCore
import Synchronization

/// A first-come, first-served lock for async code whose waits end at a deadline on the injected
/// clock (no polling: a waiter is resumed when the lock is handed to it, or by one timer task at
/// its deadline).
final class SendGate: Sendable {
    private struct State {
        var locked = false
        var waiters: [(id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
        var expired: Set<Int> = []
        var nextID = 0
    }

    private let state = Mutex(State())
    private let clock: any CohortClock

    init(clock: any CohortClock) {
        self.clock = clock
    }

    /// Takes the lock, waiting at most until `deadline`.
    ///
    /// - Returns: false when the deadline passed first (the lock is then not held).
    func acquire(until deadline: ContinuousClock.Instant) async -> Bool {
        let id: Int? = state.withLock { state in
            if !state.locked {
                state.locked = true
                return nil
            }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return true }
        let timer = Task { [clock] in
            do { try await clock.sleep(for: deadline - clock.now) } catch { return }
            self.expire(id)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            let answer: Bool? = state.withLock { state in
                if state.expired.remove(id) != nil { return false }
                if !state.locked {
                    state.locked = true
                    return true
                }
                state.waiters.append((id, continuation))
                return nil
            }
            if let answer { continuation.resume(returning: answer) }
        }
    }

    /// Hands the lock to the first waiter, or frees it.
    func release() {
        let next: CheckedContinuation<Bool, Never>? = state.withLock { state in
            guard !state.waiters.isEmpty else {
                state.locked = false
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        next?.resume(returning: true)
    }

    private func expire(_ id: Int) {
        let waiter: CheckedContinuation<Bool, Never>? = state.withLock { state in
            if let index = state.waiters.firstIndex(where: { $0.id == id }) {
                return state.waiters.remove(at: index).continuation
            }
            state.expired.insert(id)
            return nil
        }
        waiter?.resume(returning: false)
    }
}
