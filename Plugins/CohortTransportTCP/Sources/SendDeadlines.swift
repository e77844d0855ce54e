import CohortCore
import DequeModule

/// The deadlines of the acknowledged sends still waiting, earliest first, served by one timer.
///
/// A timer per send would keep every send's timer alive for the whole timeout even after its
/// acknowledgements arrived, and each would later wake the loop once for nothing: at a few
/// thousand synchronous sends per second, thousands of wake-ups per second. Here answered sends
/// are dropped from the front of the queue whenever a send is added or the timer fires (the rest
/// when they reach the front), and one timer, armed for the earliest deadline, fires about once
/// per timeout. Instants are those of the transport's ``CohortClock``, so a test moves them with a
/// manual clock.
///
/// Loop-confined (in the transport's `NIOLoopBoundBox`), like the connections.
struct SendDeadlines {
    private var pending = Deque<(deadline: ContinuousClock.Instant, ticket: SendTicket)>()

    /// How many sends are tracked (finished ones not dropped yet included).
    var count: Int { pending.count }

    /// The earliest deadline tracked.
    var earliest: ContinuousClock.Instant? { pending.first?.deadline }

    /// Tracks a send until `deadline` (and first drops the answered sends at the front).
    mutating func add(_ ticket: SendTicket, deadline: ContinuousClock.Instant) {
        dropFinished()
        // Sends with the same timeout arrive in deadline order: appending is the common case.
        if let last = pending.last, last.deadline > deadline {
            var low = 0
            var high = pending.count
            while low < high {
                let middle = (low + high) / 2
                if pending[middle].deadline <= deadline { low = middle + 1 } else { high = middle }
            }
            pending.insert((deadline, ticket), at: low)
        } else {
            pending.append((deadline, ticket))
        }
    }

    /// Times out every send due at `now` and drops the finished ones at the front.
    ///
    /// - Returns: the deadline the timer must fire at next, if any send still waits.
    mutating func expire(now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        while let first = pending.first {
            if first.ticket.isFinished {
                pending.removeFirst()
            } else if first.deadline <= now {
                pending.removeFirst()
                first.ticket.expire()
            } else {
                break
            }
        }
        return pending.first?.deadline
    }

    private mutating func dropFinished() {
        while let first = pending.first, first.ticket.isFinished { pending.removeFirst() }
    }
}
