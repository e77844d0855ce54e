/// Everything one scenario run recorded: the clients' requests, the faults, the heals and the
/// final reads. Times are seconds on a monotonic clock since the run started.
struct ChaosHistory: Codable, Sendable {
    /// One increment request (`GET /counter`) as a client saw it.
    struct Request: Codable, Sendable, Equatable {
        /// The client (one session per client).
        var client: Int
        /// The request's position in its client's sequence (requests of a client never overlap).
        var sequence: Int
        var start: Double
        var end: Double
        /// The HTTP status, nil when the request got no answer (see ``error``).
        var status: Int?
        /// What went wrong: a transport error, a timeout or an unexpected body; nil on success.
        var error: String?
        /// The count the answer carried (200 only).
        var count: Int?
        /// The node that served it (200 only).
        var node: String?
        /// The session id the answer carried (200 only).
        var session: String?
        /// Where the client sent it: `balancer` or a node's name.
        var target: String

        /// An acknowledged increment: a 200 with a count.
        var acknowledged: Bool { status == 200 && count != nil && error == nil }
    }

    /// A fault the nemesis injected, or the heal that ended it.
    struct Event: Codable, Sendable, Equatable {
        enum Kind: String, Codable, Sendable {
            /// A fault began (kill, stop, term, cut): errors may follow for the error window.
            case fault
            /// A fault ended (restart alive, cont, restore): membership must converge after it,
            /// and errors may follow for the error window.
            case heal
        }

        var kind: Kind
        /// What happened, e.g. `kill -9 node2`, `SIGCONT node2`.
        var what: String
        var node: String
        var at: Double
    }

    /// How long membership took to converge after a heal.
    struct Convergence: Codable, Sendable, Equatable {
        /// The heal it follows (`Event.what`).
        var heal: String
        var healedAt: Double
        /// When every node first listed exactly the three members, none suspected; nil if never
        /// within the polling limit.
        var convergedAt: Double?

        /// Seconds from the heal to convergence.
        var seconds: Double? { convergedAt.map { $0 - healedAt } }
    }

    /// A client's session read without incrementing, after the load stopped.
    struct FinalRead: Codable, Sendable, Equatable {
        var client: Int
        /// The node asked (directly, not through the balancer).
        var node: String
        /// The count, nil when the read failed.
        var count: Int?
        /// The session id the node answered with (empty: the node does not know the session).
        var session: String?
        var error: String?
    }

    var scenario: ChaosScenario
    /// The nodes' session manager (`delta` or `backup`); nil in histories written before it was recorded.
    var manager: String?
    /// `netns` or `loopback`.
    var network: String
    var clients: Int
    var requests: [Request] = []
    var events: [Event] = []
    var convergences: [Convergence] = []
    var finalReads: [FinalRead] = []
    /// Why the nemesis did not run (a skipped scenario), if it did not.
    var skipped: String?
    /// A problem of the harness itself (a node that did not start, nginx that failed…).
    var harnessError: String?
}
