import Foundation

/// Injects one nemesis into a running cluster and records its faults, heals and the membership
/// convergence after each heal.
struct ChaosNemesisRun: Sendable {
    let settings: ChaosSettings
    let cluster: ChaosCluster
    let recorder: ChaosRecorder

    func run(_ nemesis: ChaosScenario.Nemesis) async throws {
        let nodes = cluster.nodes
        let target = nodes[min(max(settings.target, 0), nodes.count - 1)]
        switch nemesis {
        case .kill:
            try await kill(target)
        case .freeze:
            try await freeze(target)
        case .rollingRestart:
            for node in nodes {
                try await restartGracefully(node)
                try await Task.sleep(for: .seconds(2))
            }
        case .partition:
            try await partition(target)
        }
    }

    /// `kill -9`, down for a while, restarted with the same name and addresses.
    private func kill(_ node: ChaosTopology.Node) async throws {
        recorder.fault("kill -9 \(node.name)", node: node.name)
        cluster.signal(node, SIGKILL)
        guard await cluster.process(node.name)?.waitForExit(seconds: 10) ?? true else {
            throw ChaosError("\(node.name) survived SIGKILL for 10 s")
        }
        try await Task.sleep(for: .seconds(settings.killDowntime))
        try await restart(node, heal: "restart \(node.name)")
    }

    /// SIGSTOP for a few seconds, then SIGCONT.
    private func freeze(_ node: ChaosTopology.Node) async throws {
        recorder.fault("SIGSTOP \(node.name)", node: node.name)
        cluster.signal(node, SIGSTOP)
        try await Task.sleep(for: .seconds(settings.freeze))
        let healed = recorder.heal("SIGCONT \(node.name)", node: node.name)
        cluster.signal(node, SIGCONT)
        await convergence(after: "SIGCONT \(node.name)", healedAt: healed)
    }

    /// SIGTERM, wait for the exit, start again, wait until ready.
    private func restartGracefully(_ node: ChaosTopology.Node) async throws {
        recorder.fault("SIGTERM \(node.name)", node: node.name)
        cluster.signal(node, SIGTERM)
        let stopped = await cluster.process(node.name)?.waitForExit(seconds: settings.stopTimeout) ?? true
        if !stopped {
            recorder.fault("SIGKILL \(node.name): still running \(Int(settings.stopTimeout)) s after SIGTERM", node: node.name)
            cluster.signal(node, SIGKILL)
            _ = await cluster.process(node.name)?.waitForExit(seconds: 10)
        } else if let status = cluster.process(node.name)?.exitStatus, status != 0 {
            recorder.note("\(node.name) exited with status \(status) after SIGTERM")
        }
        try await restart(node, heal: "restart \(node.name)")
    }

    /// One node's host unplugged from the test network, then plugged back in.
    private func partition(_ node: ChaosTopology.Node) async throws {
        guard case .namespaces(let prefix, let script) = cluster.topology.network, let host = node.host else {
            throw ChaosError("a partition needs network namespaces")
        }
        recorder.fault("cut \(node.name) (host \(host)) from the network", node: node.name)
        let cut = ChaosProcess.run(script, ["cut", prefix, String(host)])
        guard cut.status == 0 else { throw ChaosError("scripts/netns cut failed: \(cut.output)") }
        try await Task.sleep(for: .seconds(settings.partition))
        let healed = recorder.heal("restore \(node.name)", node: node.name)
        let restore = ChaosProcess.run(script, ["restore", prefix, String(host)])
        guard restore.status == 0 else { throw ChaosError("scripts/netns restore failed: \(restore.output)") }
        await convergence(after: "restore \(node.name)", healedAt: healed)
    }

    /// Starts a stopped node again; the heal is the start, convergence counts from `/alive`.
    private func restart(_ node: ChaosTopology.Node, heal: String) async throws {
        recorder.heal(heal, node: node.name)
        try cluster.start(node)
        guard await cluster.waitFor(node, path: "/alive", seconds: settings.readyTimeout) else {
            throw ChaosError("\(node.name) did not answer /alive after its restart; its log ends:\n\(cluster.process(node.name)?.tail() ?? "")")
        }
        let alive = recorder.clock.now()
        await convergence(after: heal, healedAt: alive)
        guard await cluster.waitFor(node, path: "/ready", seconds: settings.readyTimeout) else {
            throw ChaosError("\(node.name) did not become ready after its restart; its log ends:\n\(cluster.process(node.name)?.tail() ?? "")")
        }
        recorder.note("\(node.name) ready again")
    }

    /// Polls every node's members until all list the whole cluster, none suspected.
    private func convergence(after heal: String, healedAt: Double) async {
        let deadline = healedAt + settings.convergencePolling
        while recorder.clock.now() < deadline {
            if await cluster.membershipConverged() {
                recorder.converged(.init(heal: heal, healedAt: healedAt, convergedAt: recorder.clock.now()))
                return
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        recorder.converged(.init(heal: heal, healedAt: healedAt, convergedAt: nil))
    }
}
