import CohortCore

/// Runs `body` and returns its result, or throws ``CohortError/Code/timeout`` (and cancels
/// `body`) when it has not finished after `timeout` of real time.
///
/// A bound for waits that are woken by events — a membership change, a listener, a manual
/// clock's sleepers — so that a test whose event never comes fails with a message instead of
/// hanging. `body` must end when cancelled.
///
/// - Parameters:
///   - timeout: the longest the wait may take (generous: it bounds a hang, it measures nothing).
///   - what: what is awaited, for the error message.
public func withDeadline<T: Sendable>(
    _ timeout: Duration,
    _ what: @autoclosure () -> String,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let outcome = try await withThrowingTaskGroup(of: DeadlineRace<T>.self) { group in
        group.addTask { .finished(try await body()) }
        group.addTask {
            try await Task.sleep(for: timeout)
            return .timedOut
        }
        defer { group.cancelAll() }
        return try await group.next() ?? .timedOut
    }
    switch outcome {
    case .finished(let value): return value
    case .timedOut: throw CohortError(.timeout, "timed out after \(timeout) waiting for \(what())")
    }
}

/// Which side of ``withDeadline(_:_:_:)`` finished first.
private enum DeadlineRace<T: Sendable>: Sendable {
    case finished(T)
    case timedOut
}
