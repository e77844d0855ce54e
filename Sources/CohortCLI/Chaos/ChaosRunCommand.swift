import ArgumentParser
import Cohort
import Foundation

/// `cohort chaos [run] [SCENARIO…] [--ci | --all | --core]`: runs scenarios and prints the table.
struct ChaosRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run scenarios (MODE-BALANCER-NEMESIS, e.g. sync-roundrobin-kill) and check their histories.",
        discussion: """
            Modes: sync, async. Balancers: roundrobin, cookiehash, route (nginx), direct (no balancer). \
            Nemeses: kill, freeze, rolling, partition (network namespaces, root only). \
            Exit status: 0 when every scenario ran (violations included, unless --strict or \
            COHORT_CHAOS_STRICT=1), 1 on violations in strict mode, 2 when the harness itself failed.
            """
    )

    @Argument(help: "Scenarios to run.") var scenarios: [String] = []
    @Flag(help: "The short CI subset.") var ci = false
    @Flag(help: "The whole matrix (32 scenarios).") var all = false
    @Flag(help: "Every nemesis with sync and async on round-robin and cookie hash (16 scenarios).") var core = false
    @Option(help: "Clients (one session and one keep-alive connection each).") var clients = 20
    @Option(help: "Milliseconds between a client's requests.") var pauseMs = 20
    @Option(help: "Seconds a request may take.") var requestTimeout = 10.0
    @Option(help: "Seconds of load before the fault.") var warmup = 5.0
    @Option(help: "Seconds of load after the last heal.") var cooldown = 8.0
    @Option(help: "Seconds a killed node stays down.") var killDowntime = 8.0
    @Option(help: "Seconds a node stays frozen (SIGSTOP).") var freeze = 4.0
    @Option(help: "Seconds a node stays cut off.") var partition = 30.0
    @Option(help: "Seconds after a fault or heal in which client errors are allowed.") var errorWindow = 10.0
    @Option(help: "Seconds after a heal within which membership must converge.") var convergenceLimit = 5.0
    @Option(help: "Session manager of the nodes: delta or backup.") var manager = "delta"
    @Option(help: "nginx's proxy_next_upstream: default (a failed request goes to the next node) or off.") var nginxNextUpstream = "default"
    @Option(help: "The clients' increment request: post (POST /counter, the default) or get (GET /counter, which nginx re-sends to the next node after a failure).") var incrementMethod = "post"
    @Option(help: ArgumentHelp("More `cohort serve` options for every node, in one string.", valueName: "OPTIONS")) var serveArguments = ""
    @Option(help: "Folder for the histories, logs and tables (default .build/chaos/TIMESTAMP).") var results: String?
    @Option(help: "Run in the namespaces of this scripts/netns prefix (nodes on hosts 1–3, the rest on host 4).") var netnsPrefix: String?
    @Option(help: "Path of scripts/netns (with --netns-prefix).") var netnsScript: String?
    @Flag(help: "Exit 1 when the checker finds violations (also COHORT_CHAOS_STRICT=1).") var strict = false

    func validate() throws {
        for name in scenarios where ChaosScenario(name: name) == nil {
            throw ValidationError("unknown scenario '\(name)' (MODE-BALANCER-NEMESIS; see cohort chaos list)")
        }
        guard clients >= 1 && clients <= 500 else { throw ValidationError("--clients must be 1…500") }
        guard ["delta", "backup"].contains(manager) else { throw ValidationError("--manager must be delta or backup") }
        guard ["default", "off"].contains(nginxNextUpstream) else { throw ValidationError("--nginx-next-upstream must be default or off") }
        guard ["post", "get"].contains(incrementMethod.lowercased()) else { throw ValidationError("--increment-method must be post or get") }
        if (netnsPrefix == nil) != (netnsScript == nil) { throw ValidationError("--netns-prefix and --netns-script go together") }
    }

    var selected: [ChaosScenario] {
        var list = scenarios.compactMap(ChaosScenario.init(name:))
        if ci { list += ChaosScenario.ci }
        if core { list += ChaosScenario.core }
        if all { list += ChaosScenario.all }
        var seen = Set<ChaosScenario>()
        return list.filter { seen.insert($0).inserted }
    }

    var settings: ChaosSettings {
        var settings = ChaosSettings()
        settings.clients = clients
        settings.pause = Double(pauseMs) / 1000
        settings.requestTimeout = requestTimeout
        settings.warmup = warmup
        settings.cooldown = cooldown
        settings.killDowntime = killDowntime
        settings.freeze = freeze
        settings.partition = partition
        settings.manager = manager
        settings.nginxRetry = nginxNextUpstream == "default"
        settings.incrementMethod = incrementMethod.uppercased()
        settings.serveArguments = serveArguments.split(separator: " ").map(String.init)
        settings.checker.errorWindow = errorWindow
        settings.checker.convergenceLimit = convergenceLimit
        return settings
    }

    func run() async throws {
        let list = selected
        guard !list.isEmpty else { throw ValidationError("name scenarios, or --ci, --core or --all") }
        let environment = ProcessInfo.processInfo.environment
        if let prefix = netnsPrefix, environment["COHORT_CHAOS_IN_HOST"] != "1" {
            // The balancer and the clients belong on host 4: run this very command there.
            throw ExitCode(Self.reexec(inHost: "\(prefix)-h4"))
        }
        let strictMode = strict || environment["COHORT_CHAOS_STRICT"] == "1"
        let folder = Self.absolute(results ?? ".build/chaos/\(Self.timestamp())")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let runner = ChaosRunner(settings: settings, executable: PluginLoader.executableDirectory + "/cohort", results: folder)

        Console.line("chaos: \(list.count) scenario(s), \(clients) clients, \(manager) manager, results in \(folder)")
        var reports: [ChaosReport] = []
        for (index, scenario) in list.enumerated() {
            let topology: ChaosTopology
            if let prefix = netnsPrefix, let script = netnsScript {
                topology = .namespaces(prefix: prefix, script: script, offset: index * 2)
            } else {
                topology = try .loopback()
            }
            Console.line("chaos: [\(index + 1)/\(list.count)] \(scenario.name) (\(topology.networkName))")
            let history = await runner.run(scenario, topology: topology)
            let report = settings.checker.check(history)
            reports.append(report)
            try Self.write(history, to: "\(folder)/\(scenario.name)/history.json")
            Console.line("chaos: [\(index + 1)/\(list.count)] \(scenario.name): \(report.verdict.rawValue), \(report.acknowledged) acknowledged, \(report.violations) violations")
            for finding in report.findings.prefix(8) { Console.line("chaos:     \(finding)") }
            if let note = report.note { Console.line("chaos:     \(note)") }
        }

        let table = ChaosTable.text(reports)
        Console.line("\n" + table + "\n")
        try Self.write(reports, to: "\(folder)/results.json")
        try (table + "\n").write(toFile: "\(folder)/results.txt", atomically: true, encoding: .utf8)
        try (ChaosTable.markdown(reports) + "\n").write(toFile: "\(folder)/results.md", atomically: true, encoding: .utf8)

        let errors = reports.filter { $0.verdict == .harnessError }
        let violations = reports.map(\.violations).reduce(0, +)
        if !errors.isEmpty {
            Console.error("chaos: the harness failed in \(errors.count) scenario(s): \(errors.map(\.scenario.name).joined(separator: ", "))")
            throw ExitCode(2)
        }
        if violations > 0 {
            if strictMode {
                Console.line("chaos: \(violations) violations (strict mode)")
                throw ExitCode(1)
            }
            Console.line("chaos: \(violations) violations (not fatal without --strict or COHORT_CHAOS_STRICT=1)")
        } else {
            Console.line("chaos: no violations")
        }
    }

    static func write<T: Encodable>(_ value: T, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try encoder.encode(value).write(to: URL(fileURLWithPath: path))
    }

    /// The path made absolute (nginx resolves relative paths against its own prefix).
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    static func timestamp() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date())
    }

    /// Runs this process's command line again inside a namespace (`ip netns exec`), output
    /// inherited; returns its exit status.
    static func reexec(inHost namespace: String) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["COHORT_CHAOS_IN_HOST=1", "ip", "netns", "exec", namespace, PluginLoader.executableDirectory + "/cohort"]
            + CommandLine.arguments.dropFirst()
        do {
            try process.run()
        } catch {
            Console.error("chaos: cannot enter \(namespace): \(error)")
            return 2
        }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
