import CohortCore
import Foundation

/// Where the scenario nodes run: every node on 127.0.0.1 of the test's own host, multicast kept
/// on loopback (interface 127.0.0.1, TTL 0, a random group and port of the test's own), or each
/// node on its own host in network namespaces, with multicast discovery on its defaults.
final class ScenarioNetwork: @unchecked Sendable {
    enum Kind: String, Sendable {
        case loopback
        case netns
    }

    let kind: Kind
    let hosts: NetnsHosts?
    /// The domain of the scenario's cluster (unique per loopback run: other runs share the host).
    let domain: String
    private let tcpPorts: [Int]
    private let multicastSettings: [String]
    private let lock = NSLock()
    private var processes: [NodeProcess] = []

    /// Sets up `hostCount` hosts of a kind.
    init(_ kind: Kind, hosts hostCount: Int) throws {
        self.kind = kind
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        switch kind {
        case .loopback:
            hosts = nil
            domain = "scenario-\(tag)"
            tcpPorts = freePorts(hostCount)
            let group = "239.255.\(Int.random(in: 1...254)).\(Int.random(in: 1...254))"
            let port = freePorts(1, type: Int32(SOCK_DGRAM.rawValue))[0]
            // Loopback only: nothing may leave this host.
            multicastSettings = ["interface=127.0.0.1", "ttl=0", "address=\(group)", "port=\(port)"]
                .flatMap { ["--discovery-setting", $0] }
        case .netns:
            hosts = try NetnsHosts(count: hostCount)
            domain = "default"
            tcpPorts = Array(repeating: 4000, count: hostCount)
            multicastSettings = []
        }
    }

    /// The listen address of host `i` (1-based).
    func listen(_ i: Int) -> String {
        switch kind {
        case .loopback: return "127.0.0.1:\(tcpPorts[i - 1])"
        case .netns: return "\(hosts!.address(i)):4000"
        }
    }

    /// Starts `cohort node` named `name` on host `i` with multicast discovery (or the given
    /// discovery arguments) and no member list.
    @discardableResult
    func start(_ name: String, on i: Int, domain: String? = nil, discovery: [String]? = nil, environment: [String: String] = [:]) throws -> NodeProcess {
        guard let exe = Paths.cohort else { throw NetnsError(message: "the cohort executable is not built") }
        var arguments = ["node", "--name", name, "--listen", listen(i), "--domain", domain ?? self.domain]
        arguments += discovery ?? (["--discovery", "multicast"] + multicastSettings)
        // Addresses of the test's own network namespaces, which no one else reaches: the nodes run
        // without cluster credentials, said explicitly (they would refuse to start otherwise).
        var environment = environment
        if hosts != nil && environment["COHORT_CLUSTER_KEYS"] == nil { environment["COHORT_INSECURE"] = environment["COHORT_INSECURE"] ?? "true" }
        let node: NodeProcess
        if let hosts {
            let command = hosts.command(on: i, exe, arguments)
            node = try NodeProcess(name: name, executable: command.executable, arguments: command.arguments, environment: environment)
        } else {
            node = try NodeProcess(name: name, executable: exe, arguments: arguments, environment: environment)
        }
        lock.withLock { processes.append(node) }
        return node
    }

    /// Every process started, for failure messages.
    var transcripts: String { lock.withLock { processes.map(\.transcript).joined(separator: "\n") } }

    /// Stops every process and removes the namespaces.
    func shutdown() {
        for node in lock.withLock({ processes }) {
            node.signal(SIGCONT)
            node.signal(SIGKILL)
        }
        hosts?.cleanup()
    }

    deinit { shutdown() }
}

extension Duration {
    /// Milliseconds, for reports.
    var ms: Int { Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000) }
}
