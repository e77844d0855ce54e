import CohortCore
import NIOConcurrencyHelpers

/// The one waiter of one acknowledged send: collects the per-member outcomes and resumes the
/// sender once all are in (or the timeout fires). One allocation per message, none per member.
final class SendTicket: @unchecked Sendable {
    private let lock = NIOLock()
    private var outcomes: [MemberOutcome?]
    private let members: [MemberID]
    private var remaining: Int
    private var continuation: CheckedContinuation<SendReport, Never>?
    private var finished = false
    private var report: SendReport?

    init(members: [MemberID]) {
        self.members = members
        self.outcomes = Array(repeating: nil, count: members.count)
        self.remaining = members.count
    }

    /// Sets one member's outcome unless it is already set.
    func resolve(slot: Int, _ outcome: MemberOutcome) {
        let toResume: (CheckedContinuation<SendReport, Never>, SendReport)? = lock.withLock {
            guard !finished, outcomes[slot] == nil else { return nil }
            outcomes[slot] = outcome
            remaining -= 1
            return finishIfDone()
        }
        if let (continuation, report) = toResume { continuation.resume(returning: report) }
    }

    /// Marks every member still open as timed out.
    func expire() {
        let toResume: (CheckedContinuation<SendReport, Never>, SendReport)? = lock.withLock {
            guard !finished else { return nil }
            for i in outcomes.indices where outcomes[i] == nil { outcomes[i] = .timedOut }
            remaining = 0
            return finishIfDone()
        }
        if let (continuation, report) = toResume { continuation.resume(returning: report) }
    }

    /// Installs the waiting continuation; resumes at once if everything is already resolved.
    func install(_ continuation: CheckedContinuation<SendReport, Never>) {
        let ready: SendReport? = lock.withLock {
            if let report { return report }
            self.continuation = continuation
            return nil
        }
        if let ready { continuation.resume(returning: ready) }
    }

    var isFinished: Bool { lock.withLock { finished } }

    private func finishIfDone() -> (CheckedContinuation<SendReport, Never>, SendReport)? {
        guard remaining == 0, !finished else { return nil }
        finished = true
        var result = SendReport()
        result.outcomes.reserveCapacity(members.count)
        for i in members.indices { result.outcomes.append((members[i], outcomes[i] ?? .timedOut)) }
        report = result
        if let continuation {
            self.continuation = nil
            return (continuation, result)
        }
        return nil
    }
}
