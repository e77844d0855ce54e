import ArgumentParser
import Cohort
import Foundation

/// `cohort chaos soak`: a 3-node cluster at half its measured maximum session-write rate for a set
/// time; resident memory every 10 s with its slope after warm-up, lost messages and writes, and
/// latency per minute.
struct SoakCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Run a 3-node cluster at half its maximum session-write rate and watch memory, losses and latency.",
        discussion: "Exit status 1 when a write or a message was lost, 2 when the harness failed."
    )

    @Option(help: "Minutes of steady load.") var minutes = 20.0
    @Option(help: "Replication mode: sync or async.") var mode = "sync"
    @Option(help: "Session manager: delta or backup.") var manager = "delta"
    @Option(help: "Clients (sessions) of the steady load.") var clients = 16
    @Option(help: "Seconds per step of the ramp that measures the maximum rate.") var rampStep = 5.0
    @Option(help: "Use this rate (writes/s) instead of half the measured maximum.") var rate: Double?
    @Option(help: "Seconds between memory samples.") var sampleEvery = 10.0
    @Option(help: "Folder for soak.json (default .build/chaos/soak-TIMESTAMP).") var results: String?

    func validate() throws {
        guard minutes > 0 && minutes <= 24 * 60 else { throw ValidationError("--minutes must be in (0, 1440]") }
        guard ["sync", "async"].contains(mode) else { throw ValidationError("--mode must be sync or async") }
        guard ["delta", "backup"].contains(manager) else { throw ValidationError("--manager must be delta or backup") }
        guard (1...256).contains(clients) else { throw ValidationError("--clients must be 1…256") }
    }

    func run() async throws {
        let folder = ChaosRunCommand.absolute(results ?? ".build/chaos/soak-\(ChaosRunCommand.timestamp())")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let topology = try ChaosTopology.loopback()
        let cluster = ChaosCluster(topology: topology, executable: PluginLoader.executableDirectory + "/cohort",
                                   mode: ChaosScenario.Mode(rawValue: mode) ?? .sync, manager: manager, directory: folder)
        do {
            try await cluster.startAll(readyWithin: 60)
            let report = try await soak(cluster, folder: folder)
            await cluster.shutdown()
            try ChaosRunCommand.write(report, to: "\(folder)/soak.json")
            Console.line("soak: results in \(folder)/soak.json")
            if report.writesLost > 0 || report.messagesLost > 0 { throw ExitCode(1) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            await cluster.shutdown()
            Console.error("soak: the harness failed: \(error)")
            throw ExitCode(2)
        }
    }

    private func soak(_ cluster: ChaosCluster, folder: String) async throws -> SoakReport {
        let targets = cluster.nodes.map { ChaosClient.Target(name: $0.name, baseURL: $0.baseURL) }
        let maximum = await SoakLoad.ramp(targets: targets, stepSeconds: rampStep)
        let target = rate ?? maximum / 2
        guard target > 0 else { throw ChaosError("the ramp measured no successful write") }
        Console.line("soak: maximum \(Int(maximum)) writes/s; steady load \(Int(target)) writes/s for \(minutes) min with \(clients) clients")

        let before = await metrics(cluster)
        let load = SoakLoad(targets: targets, clients: clients, rate: target)
        let duration = minutes * 60
        let clock = ChaosClock()
        var samples: [SoakReport.Sample] = []
        async let running = load.run(seconds: duration, clock: clock)
        // Memory every `sampleEvery` seconds while the load runs.
        var next = sampleEvery
        while next <= duration {
            let wait = next - clock.now()
            if wait > 0 { try await Task.sleep(for: .milliseconds(Int(wait * 1000))) }
            let at = clock.now()
            var rss: [String: Int] = [:]
            for node in cluster.nodes {
                if let pid = cluster.process(node.name)?.pid, let kib = SoakStatistics.residentKiB(pid: pid) { rss[node.name] = kib }
            }
            samples.append(.init(at: at, residentKiB: rss))
            let progress = load.progress()
            let text = cluster.nodes.map { "\($0.name) \(String(format: "%.1f", Double(rss[$0.name] ?? 0) / 1024)) MiB" }.joined(separator: ", ")
            Console.line("soak: \(Int(at.rounded())) s  rss \(text)  writes \(progress.acknowledged) ok, \(progress.failed) failed")
            next += sampleEvery
        }
        var outcome = await running
        try await Task.sleep(for: .seconds(2))
        await load.finalReads(into: &outcome, nodes: targets)
        let after = await metrics(cluster)
        return SoakReport(maximumRate: maximum, rate: target, minutes: minutes, nodes: cluster.nodes.map(\.name),
                          samples: samples, outcome: outcome, metricsBefore: before, metricsAfter: after).printed()
    }

    /// The loss and traffic counters of every node, summed.
    private func metrics(_ cluster: ChaosCluster) async -> [String: Double] {
        var sums: [String: Double] = [:]
        for node in cluster.nodes {
            let answer = await cluster.control.get(node.baseURL + "/metrics", timeout: 5)
            let text = String(decoding: answer.body, as: UTF8.self)
            for name in SoakReport.counters {
                sums[name, default: 0] += SoakStatistics.metricSum(text, name: name)
            }
        }
        return sums
    }
}
