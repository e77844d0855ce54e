import Cohort

extension GroupChannel {
    /// Returns once the channel's view satisfies `condition`: checked now, then after every
    /// membership event (no polling).
    ///
    /// - Parameters:
    ///   - what: what is awaited, for the error message.
    ///   - timeout: the most real time to wait (a bound against hangs, not a measurement).
    ///   - condition: the test on the view.
    /// - Throws: ``CohortError/Code/timeout`` naming `what` and the last view.
    public func waitForView(
        _ what: @autoclosure () -> String = "a membership change",
        timeout: Duration = .seconds(60),
        _ condition: @escaping @Sendable (MembershipView) -> Bool
    ) async throws {
        // Subscribe first, then look: an event between the look and the subscription is not lost.
        let events = membershipEvents()
        if condition(view) { return }
        let description = what()
        do {
            try await withDeadline(timeout, description) {
                for await _ in events where condition(self.view) { return }
                if !condition(self.view) {
                    throw CohortError(.notRunning, "\(self.localMember.name) stopped while waiting for \(description)")
                }
            }
        } catch let error as CohortError where error.code == .timeout {
            throw CohortError(.timeout, "\(error.message); view of \(localMember.name): \(view)")
        }
    }

    /// Returns once the channel sees exactly `count` other members.
    public func waitForMembers(_ count: Int, timeout: Duration = .seconds(60)) async throws {
        try await waitForView("\(localMember.name) to see \(count) member(s)", timeout: timeout) { $0.members.count == count }
    }
}
