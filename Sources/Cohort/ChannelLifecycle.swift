/// The lifecycle of a ``GroupChannel`` as one pure state machine.
///
/// ```
///  idle ──onStart(parts)──▶ starting ──onListening(bound)──▶ running ──onLeave──▶ leaving ──onStopped──▶ stopped
///                              │                                                                    ▲
///                              └──────────────────────── onStartFailed ─────────────────────────────┘
/// ```
///
/// `Parts` is everything a transport callback can reach — the interceptor chain, the membership
/// service — and it is built and handed to ``onStart(_:)`` **before** the transport opens its
/// listener, so a frame that arrives while the channel is starting finds them in place. The parts
/// stay readable while starting, running and leaving. Waiters of `waitUntilRunning()` are
/// returned as actions, to be resumed outside the lock.
struct ChannelLifecycle<Parts: Sendable>: Sendable {
    enum Phase: Sendable {
        case idle
        case starting(Parts)
        case running(Parts, Endpoint)
        case leaving(Parts)
        case stopped
    }

    /// What to do with a caller of `waitUntilRunning()`.
    enum Wait {
        case resume(Endpoint)
        case fail
        case wait
    }

    typealias Waiter = CheckedContinuation<Endpoint, any Error>

    private(set) var phase: Phase = .idle
    private var waiters: [Waiter] = []

    /// The parts while starting, running or leaving.
    var parts: Parts? {
        switch phase {
        case .starting(let parts), .running(let parts, _), .leaving(let parts): return parts
        case .idle, .stopped: return nil
        }
    }

    /// The parts while the channel may send: running, or leaving until the transport closes
    /// (the send path).
    var sending: Parts? {
        switch phase {
        case .running(let parts, _), .leaving(let parts): return parts
        case .idle, .starting, .stopped: return nil
        }
    }

    /// Callers of `waitUntilRunning()` still waiting.
    var waiterCount: Int { waiters.count }

    var isStopped: Bool {
        if case .stopped = phase { return true }
        return false
    }

    /// `run()` begins with its parts built.
    ///
    /// - Returns: false when the channel is not idle (it runs, or it ran: a channel runs once).
    mutating func onStart(_ parts: Parts) -> Bool {
        guard case .idle = phase else { return false }
        phase = .starting(parts)
        return true
    }

    /// The transport listens.
    ///
    /// - Returns: the waiters to resume with the bound address.
    mutating func onListening(_ bound: Endpoint) -> [Waiter] {
        guard case .starting(let parts) = phase else { return [] }
        phase = .running(parts, bound)
        return takeWaiters()
    }

    /// The transport could not start.
    ///
    /// - Returns: the waiters to fail.
    mutating func onStartFailed() -> [Waiter] {
        phase = .stopped
        return takeWaiters()
    }

    /// The node begins to leave (stop signal, graceful shutdown, a failed component).
    mutating func onLeave() {
        if case .running(let parts, _) = phase { phase = .leaving(parts) }
    }

    /// Everything is closed.
    ///
    /// - Returns: waiters still waiting (only if the start never finished), to fail.
    mutating func onStopped() -> [Waiter] {
        phase = .stopped
        return takeWaiters()
    }

    /// A caller waits for the channel to run.
    mutating func onWait(_ waiter: Waiter) -> Wait {
        switch phase {
        case .running(_, let bound):
            return .resume(bound)
        case .leaving, .stopped:
            return .fail
        case .idle, .starting:
            waiters.append(waiter)
            return .wait
        }
    }

    private mutating func takeWaiters() -> [Waiter] {
        defer { waiters.removeAll() }
        return waiters
    }
}
