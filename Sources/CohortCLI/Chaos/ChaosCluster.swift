import Cohort
import Foundation
import CohortHummingbird

/// The three `cohort serve` processes of one scenario: start, signal, restart with the same name
/// and addresses, and ask them about readiness and membership.
final class ChaosCluster: @unchecked Sendable {
    let topology: ChaosTopology
    let executable: String
    let mode: ChaosScenario.Mode
    let manager: String
    /// More `cohort serve` options for every node.
    let extraArguments: [String]
    let directory: String
    let control: ChaosHTTP
    private let lock = NSLock()
    private var processes: [String: ChaosProcess] = [:]
    /// The nodes share a key made for the run, as `cohort demo`'s do (the network-namespace
    /// topology listens beyond loopback, where a node without credentials refuses to start).
    private let environment = DemoCommand.nodeEnvironment(key: ClusterKey.generate())

    init(topology: ChaosTopology, executable: String, mode: ChaosScenario.Mode, manager: String, extraArguments: [String] = [], directory: String) {
        self.extraArguments = extraArguments
        self.topology = topology
        self.executable = executable
        self.mode = mode
        self.manager = manager
        self.directory = directory
        self.control = ChaosHTTP(connectTimeout: 1, failFast: true)
    }

    var nodes: [ChaosTopology.Node] { topology.nodes }

    func process(_ name: String) -> ChaosProcess? { lock.withLock { processes[name] } }

    /// Starts (or restarts) a node with its fixed name and addresses.
    func start(_ node: ChaosTopology.Node) throws {
        let others = nodes.filter { $0.name != node.name }.map(\.clusterAddress).joined(separator: ",")
        let arguments = [
            "serve", "--name", node.name, "--http-host", node.httpHost, "--http-port", String(node.httpPort),
            "--listen", node.clusterAddress, "--members", others, "--mode", mode.rawValue, "--manager", manager,
        ] + extraArguments
        let (program, argv) = topology.launcher(for: node, executable: executable, arguments: arguments)
        let process = try ChaosProcess(label: node.name, executable: program, arguments: argv, logPath: "\(directory)/\(node.name).log", environment: environment)
        lock.withLock { processes[node.name] = process }
    }

    func signal(_ node: ChaosTopology.Node, _ signal: Int32) {
        process(node.name)?.signal(signal)
    }

    /// Polls `path` on the node until it answers 200; false after `seconds` or if the process died.
    func waitFor(_ node: ChaosTopology.Node, path: String, seconds: Double) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if let process = process(node.name), !process.isRunning { return false }
            if await control.get(node.baseURL + path, timeout: 1).status == 200 { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// Starts every node and waits until all are ready.
    func startAll(readyWithin seconds: Double) async throws {
        for node in nodes { try start(node) }
        for node in nodes where !(await waitFor(node, path: "/ready", seconds: seconds)) {
            throw ChaosError("\(node.name) did not become ready within \(Int(seconds)) s; its log ends:\n\(process(node.name)?.tail() ?? "")")
        }
    }

    /// Whether every node lists exactly the cluster's members, none suspected.
    func membershipConverged() async -> Bool {
        let names = Set(nodes.map(\.name))
        for node in nodes {
            let answer = await control.get(node.baseURL + "/cluster/members", timeout: 1)
            guard answer.status == 200,
                  let members = try? JSONDecoder().decode(MembersResponse.self, from: answer.body)
            else { return false }
            let listed = members.members.map(\.name)
            guard listed.count == names.count, Set(listed) == names,
                  members.members.allSatisfy({ $0.state == "self" || $0.state == "alive" })
            else { return false }
        }
        return true
    }

    /// Kills every node (SIGKILL) and waits for them to go.
    func destroyAll() async {
        for process in lock.withLock({ Array(processes.values) }) { await process.destroy() }
    }

    func shutdown() async {
        await destroyAll()
        await control.shutdown()
    }
}
