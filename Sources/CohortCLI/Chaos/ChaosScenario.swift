/// One cell of the fault-injection matrix: replication mode × balancer × nemesis.
///
/// A scenario's name is `MODE-BALANCER-NEMESIS`, for example `sync-roundrobin-kill`.
struct ChaosScenario: Hashable, Codable, Sendable, CustomStringConvertible {
    /// The session manager's replication mode (`cohort serve --mode`).
    enum Mode: String, CaseIterable, Codable, Sendable {
        case sync, async
    }

    /// What sits between the clients and the nodes.
    enum Balancer: String, CaseIterable, Codable, Sendable {
        /// nginx, default round-robin.
        case roundRobin = "roundrobin"
        /// nginx, `hash $cookie_COHORT_SESSION consistent`.
        case stickyCookieHash = "cookiehash"
        /// nginx, the cookie's `.route` suffix mapped to its node (mod_jk style), the others as backups.
        case stickyRoute = "route"
        /// No balancer: each client talks to the nodes directly, rotating.
        case none = "direct"
    }

    /// The fault.
    enum Nemesis: String, CaseIterable, Codable, Sendable {
        /// `kill -9` of one node, restarted later with the same name and addresses.
        case kill
        /// SIGSTOP of one node for a few seconds longer than failure detection, then SIGCONT.
        case freeze
        /// SIGTERM each node in turn, wait for it to exit, start it again, wait until ready.
        case rollingRestart = "rolling"
        /// One node's host unplugged from the test network for 30 s (network namespaces, root only).
        case partition
    }

    var mode: Mode
    var balancer: Balancer
    var nemesis: Nemesis

    var name: String { "\(mode.rawValue)-\(balancer.rawValue)-\(nemesis.rawValue)" }
    var description: String { name }

    /// Parses `MODE-BALANCER-NEMESIS`; nil when a part is unknown.
    init?(name: String) {
        let parts = name.split(separator: "-").map(String.init)
        guard parts.count == 3,
              let mode = Mode(rawValue: parts[0]),
              let balancer = Balancer(rawValue: parts[1]),
              let nemesis = Nemesis(rawValue: parts[2])
        else { return nil }
        self.init(mode: mode, balancer: balancer, nemesis: nemesis)
    }

    init(mode: Mode, balancer: Balancer, nemesis: Nemesis) {
        self.mode = mode
        self.balancer = balancer
        self.nemesis = nemesis
    }

    /// The short scenarios CI runs (each about half a minute).
    static let ci: [ChaosScenario] = [
        ChaosScenario(mode: .sync, balancer: .roundRobin, nemesis: .kill),
        ChaosScenario(mode: .sync, balancer: .stickyCookieHash, nemesis: .rollingRestart),
        ChaosScenario(mode: .sync, balancer: .roundRobin, nemesis: .freeze),
    ]

    /// The whole matrix: {sync, async} × every balancer × every nemesis.
    static let all: [ChaosScenario] = Mode.allCases.flatMap { mode in
        Balancer.allCases.flatMap { balancer in
            Nemesis.allCases.map { ChaosScenario(mode: mode, balancer: balancer, nemesis: $0) }
        }
    }

    /// The reduced matrix for a small machine: every nemesis, both modes, round-robin and cookie hash.
    static let core: [ChaosScenario] = Mode.allCases.flatMap { mode in
        [Balancer.roundRobin, .stickyCookieHash].flatMap { balancer in
            Nemesis.allCases.map { ChaosScenario(mode: mode, balancer: balancer, nemesis: $0) }
        }
    }
}
