import CohortCore
import Synchronization

/// The one waiter of one acknowledged send: collects the per-member outcomes and resumes the
/// sender once all are in (or the timeout fires). One allocation per message (the ticket; its
/// lock is inline), none per member.
final class SendTicket: Sendable {
    private struct State {
        var outcomes: [MemberOutcome?]
        var remaining: Int
        var continuation: CheckedContinuation<SendReport, Never>?
        var finished = false
        var report: SendReport?
    }

    private let members: [MemberID]
    private let state: Mutex<State>

    init(members: [MemberID]) {
        self.members = members
        self.state = Mutex(State(outcomes: Array(repeating: nil, count: members.count), remaining: members.count))
    }

    /// Sets one member's outcome unless it is already set.
    func resolve(slot: Int, _ outcome: MemberOutcome) {
        let members = self.members
        let toResume: (CheckedContinuation<SendReport, Never>, SendReport)? = state.withLock { state in
            guard !state.finished, state.outcomes[slot] == nil else { return nil }
            state.outcomes[slot] = outcome
            state.remaining -= 1
            return Self.finishIfDone(&state, members: members)
        }
        if let (continuation, report) = toResume { continuation.resume(returning: report) }
    }

    /// Marks every member still open as timed out.
    func expire() {
        let members = self.members
        let toResume: (CheckedContinuation<SendReport, Never>, SendReport)? = state.withLock { state in
            guard !state.finished else { return nil }
            for i in state.outcomes.indices where state.outcomes[i] == nil { state.outcomes[i] = .timedOut }
            state.remaining = 0
            return Self.finishIfDone(&state, members: members)
        }
        if let (continuation, report) = toResume { continuation.resume(returning: report) }
    }

    /// Installs the waiting continuation; resumes at once if everything is already resolved.
    func install(_ continuation: CheckedContinuation<SendReport, Never>) {
        let ready: SendReport? = state.withLock { state in
            if let report = state.report { return report }
            state.continuation = continuation
            return nil
        }
        if let ready { continuation.resume(returning: ready) }
    }

    var isFinished: Bool { state.withLock { $0.finished } }

    /// The report, once every outcome is in.
    var finishedReport: SendReport? { state.withLock { $0.report } }

    private static func finishIfDone(_ state: inout State, members: [MemberID]) -> (CheckedContinuation<SendReport, Never>, SendReport)? {
        guard state.remaining == 0, !state.finished else { return nil }
        state.finished = true
        var result = SendReport()
        result.outcomes.reserveCapacity(members.count)
        for i in members.indices { result.outcomes.append((members[i], state.outcomes[i] ?? .timedOut)) }
        state.report = result
        if let continuation = state.continuation {
            state.continuation = nil
            return (continuation, result)
        }
        return nil
    }
}
