import Foundation

/// Runs one scenario end to end: a fresh cluster, the balancer, the clients, the nemesis, the final
/// reads; returns the recorded history (the checker judges it).
struct ChaosRunner: Sendable {
    let settings: ChaosSettings
    let executable: String
    /// The folder of this run's results; each scenario gets a sub-folder.
    let results: String

    func run(_ scenario: ChaosScenario, topology: ChaosTopology) async -> ChaosHistory {
        var history = ChaosHistory(scenario: scenario, network: topology.networkName, clients: settings.clients)
        history.manager = settings.manager
        if scenario.nemesis == .partition && !topology.canPartition {
            history.skipped = "a partition needs network namespaces (run as root where scripts/netns check passes)"
            return history
        }
        let directory = "\(results)/\(scenario.name)"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            history.harnessError = "cannot create \(directory): \(error)"
            return history
        }
        let cluster = ChaosCluster(topology: topology, executable: executable, mode: scenario.mode,
                                   manager: settings.manager, extraArguments: settings.serveArguments, directory: directory)
        var balancer: ChaosBalancer?
        do {
            try await cluster.startAll(readyWithin: settings.readyTimeout)
            let targets: [ChaosClient.Target]
            if scenario.balancer == .none {
                targets = topology.nodes.map { .init(name: $0.name, baseURL: $0.baseURL) }
            } else {
                var configuration = NginxConfiguration(
                    balancer: scenario.balancer, listen: topology.balancerAddress,
                    upstreams: topology.nodes.map { .init(name: $0.name, address: $0.httpAddress) })
                configuration.retryNextUpstream = settings.nginxRetry
                let started = ChaosBalancer(configuration: configuration, directory: "\(directory)/nginx")
                balancer = started
                try await started.start(probe: cluster.control)
                targets = [.init(name: "balancer", baseURL: "http://\(topology.balancerAddress)")]
            }
            try await load(scenario, cluster: cluster, targets: targets, into: &history)
        } catch {
            history.harnessError = "\(error)"
        }
        await balancer?.stop()
        await cluster.shutdown()
        return history
    }

    /// Clients run while the nemesis acts; then the final reads.
    private func load(_ scenario: ChaosScenario, cluster: ChaosCluster, targets: [ChaosClient.Target], into history: inout ChaosHistory) async throws {
        let clock = ChaosClock()
        let recorder = ChaosRecorder(clock: clock)
        let stop = ChaosStopFlag()
        let direct = scenario.balancer == .none
        let connections = (0..<settings.clients).map { _ in ChaosHTTP(connectTimeout: 2, failFast: direct) }

        let settings = self.settings
        var nemesisError: (any Error)?
        let outcomes = await withTaskGroup(of: (Int, [ChaosHistory.Request], String?).self) { group in
            for client in 0..<settings.clients {
                let worker = ChaosClient(id: client, targets: targets, http: connections[client],
                                         timeout: settings.requestTimeout, pause: settings.pause,
                                         method: settings.incrementMethod)
                group.addTask {
                    let (requests, cookie) = await worker.run(clock: clock, stop: stop)
                    return (client, requests, cookie)
                }
            }
            do {
                try await Task.sleep(for: .seconds(settings.warmup))
                try await ChaosNemesisRun(settings: settings, cluster: cluster, recorder: recorder).run(scenario.nemesis)
                try await Task.sleep(for: .seconds(settings.cooldown))
            } catch {
                nemesisError = error
            }
            stop.stop()
            var outcomes: [(Int, [ChaosHistory.Request], String?)] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        for connection in connections { await connection.shutdown() }
        history.requests = outcomes.flatMap(\.1).sorted { ($0.client, $0.sequence) < ($1.client, $1.sequence) }
        let recorded = recorder.recorded
        history.events = recorded.events
        history.convergences = recorded.convergences
        if let nemesisError { throw nemesisError }

        try await Task.sleep(for: .seconds(settings.settle))
        history.finalReads = await finalReads(cookies: outcomes.map { ($0.0, $0.2) }, cluster: cluster)
    }

    /// Each client's session read on every node directly, without incrementing.
    private func finalReads(cookies: [(Int, String?)], cluster: ChaosCluster) async -> [ChaosHistory.FinalRead] {
        var reads: [ChaosHistory.FinalRead] = []
        for (client, cookie) in cookies.sorted(by: { $0.0 < $1.0 }) {
            guard let cookie else { continue }
            for node in cluster.nodes {
                let answer = await cluster.control.get(node.baseURL + "/counter/current", cookie: cookie, timeout: 5)
                var read = ChaosHistory.FinalRead(client: client, node: node.name)
                if answer.status == 200, let body = try? JSONDecoder().decode(SampleApp.CounterResponse.self, from: answer.body) {
                    read.count = body.count
                    read.session = body.session
                } else {
                    read.error = answer.error ?? "status \(answer.status ?? 0): \(String(decoding: answer.body.prefix(120), as: UTF8.self))"
                }
                reads.append(read)
            }
        }
        return reads
    }
}
