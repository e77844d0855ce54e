import ArgumentParser
import AsyncHTTPClient
import Cohort
import Foundation
import Metrics
import NIOCore
import NIOHTTP1

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start a session-replicating cluster on loopback: one process per node, each serving the sample app.",
        discussion: """
            Each node serves GET /counter (a counter in your session, as JSON) and GET / (a live \
            page). A count built on one node continues on the others; kill a node and the count \
            survives. Runs until Ctrl-C. With --tour, runs a scripted walk-through and exits 0 \
            only if the count survived a SIGKILL.
            """
    )

    @Option(help: "Number of nodes.") var nodes: Int = 3
    @Option(help: "HTTP port of the first node; the others follow.") var httpPort: Int = 8081
    @Option(help: "Cluster port of the first node; the others follow.") var clusterPort: Int = 4001
    @Option(help: "Codec: binary or json.") var codec: String = "binary"
    @Option(help: "Session manager: delta or backup.") var manager: String = "delta"
    @Option(help: "Replication: sync or async.") var mode: String = "sync"
    @Flag(help: "Run the scripted walk-through and exit.") var tour = false

    func validate() throws {
        guard (2...9).contains(nodes) else { throw ValidationError("--nodes must be between 2 and 9") }
        guard ["delta", "backup"].contains(manager) else { throw ValidationError("--manager must be delta or backup") }
        guard ["sync", "async"].contains(mode) else { throw ValidationError("--mode must be sync or async") }
    }

    func run() async throws {
        let exe = PluginLoader.executableDirectory + "/cohort"
        let cluster = (0..<nodes).map { "127.0.0.1:\(clusterPort + $0)" }
        var children: [DemoNode] = []
        let registry = ChildRegistry()
        registry.installSignalHandlers()
        defer { registry.stopAll(signal: SIGKILL) }

        // The nodes share a key made for this run: even on loopback, another user of the machine
        // who finds the ports cannot join the demo's cluster or read its sessions.
        let environment = Self.nodeEnvironment(key: ClusterKey.generate())
        for i in 0..<nodes {
            let launch = Self.nodeLaunch(index: i, cluster: cluster, httpPort: httpPort, codec: codec, manager: manager, mode: mode)
            let child = try DemoNode(executable: exe, name: launch.name, httpPort: httpPort + i, arguments: launch.arguments, environment: environment)
            children.append(child)
            registry.add(child)
        }
        // Wait until every node is ready (state transfer done).
        for child in children {
            guard await child.waitReady(timeout: 60) else {
                Console.error("demo: \(child.name) did not become ready; its output:")
                for line in child.lines { Console.error("  \(line)") }
                throw ExitCode(1)
            }
        }
        Console.line("Cohort demo — \(nodes) nodes on loopback, \(manager) manager, \(mode) replication, \(codec) codec\n")
        Console.line("NODE    PID      HTTP                      CLUSTER")
        for (i, child) in children.enumerated() {
            Console.line("\(child.name.padding(toLength: 8, withPad: " ", startingAt: 0))\(String(child.pid).padding(toLength: 9, withPad: " ", startingAt: 0))http://127.0.0.1:\(child.httpPort)/     \(cluster[i])")
        }
        if tour {
            let survived = try await runTour(children)
            registry.stopAll(signal: SIGTERM)
            for child in children { child.waitForExit(seconds: 15) }
            if !survived { throw ExitCode(1) }
            return
        }
        Console.line("""

            Open http://127.0.0.1:\(httpPort)/ in a browser, or:
              curl -c jar -b jar http://127.0.0.1:\(httpPort)/counter
              curl -c jar -b jar http://127.0.0.1:\(httpPort + 1)/counter     # the count continues
              kill -9 \(children[0].pid)                                      # and survives this
            Admin: /cluster/members /cluster/sessions /ready /metrics. Ctrl-C stops every node.
            """)
        // Run until a signal; report nodes that die, keep serving with the rest.
        var reported = Set<String>()
        while !registry.stopRequested {
            for child in children where !child.isRunning && !reported.contains(child.name) {
                reported.insert(child.name)
                Console.line("\(child.name) (pid \(child.pid)) exited; the other nodes keep serving")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        Console.line("\nstopping every node…")
        registry.stopAll(signal: SIGTERM)
        for child in children { child.waitForExit(seconds: 15) }
    }

    /// The name and `cohort` arguments of the demo's node `index` (0-based) in `cluster`.
    static func nodeLaunch(index i: Int, cluster: [String], httpPort: Int, codec: String = "binary", manager: String = "delta", mode: String = "sync") -> (name: String, arguments: [String]) {
        let name = "node\(i + 1)"
        let others = cluster.enumerated().filter { $0.offset != i }.map(\.element).joined(separator: ",")
        return (name, [
            "serve", "--name", name, "--http-port", "\(httpPort + i)", "--listen", cluster[i],
            "--members", others, "--codec", codec, "--manager", manager, "--mode", mode,
        ])
    }

    /// The environment of the demo's nodes: this process's, plus the run's cluster key
    /// (`COHORT_CLUSTER_KEYS`; in the environment, not the arguments, which `ps` shows).
    static func nodeEnvironment(key: ClusterKey, base: [String: String] = ProcessInfo.processInfo.environment) -> [String: String] {
        var environment = base
        environment["COHORT_CLUSTER_KEYS"] = key.text
        environment["COHORT_INSECURE"] = nil
        return environment
    }

    /// Increment on node 1, read on node 2, SIGKILL node 1, continue on node 3.
    func runTour(_ children: [DemoNode]) async throws -> Bool {
        let client = DemoHTTP()
        func step(_ text: String) { Console.line("\n▶ \(text)") }
        step("Three increments on \(children[0].name)")
        var last = 0
        for _ in 0..<3 {
            let answer = try await client.counter(port: children[0].httpPort)
            Console.line("  GET :\(children[0].httpPort)/counter → \(answer.raw)")
            last = answer.count
        }
        step("The same session on \(children[1].name): the count continues")
        let second = try await client.counter(port: children[1].httpPort)
        Console.line("  GET :\(children[1].httpPort)/counter → \(second.raw)")
        guard second.count == last + 1 else {
            Console.error("tour failed: expected \(last + 1) on \(children[1].name), got \(second.count)")
            return false
        }
        last = second.count
        step("SIGKILL \(children[0].name) (pid \(children[0].pid)) — no goodbye")
        children[0].kill(SIGKILL)
        children[0].waitForExit(seconds: 5)
        let target = children[children.count > 2 ? 2 : 1]
        step("Continue on \(target.name)")
        let third = try await client.counter(port: target.httpPort)
        Console.line("  GET :\(target.httpPort)/counter → \(third.raw)")
        guard third.count == last + 1 else {
            Console.error("tour failed: the count did not survive (expected \(last + 1), got \(third.count))")
            return false
        }
        Console.line("\n✔ The count survived the loss of the node that created the session (\(third.count)).")
        return true
    }
}

/// A child `cohort serve` process.
final class DemoNode: @unchecked Sendable {
    let name: String
    let httpPort: Int
    private let process = Process()
    private let lock = NSLock()
    private var collected: [String] = []

    init(executable: String, name: String, httpPort: Int, arguments: [String], environment: [String: String]? = nil) throws {
        self.name = name
        self.httpPort = httpPort
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { throw CohortError(.internal, "cannot start \(executable): \(error)") }
        let handle = output.fileHandleForReading
        Thread { [weak self] in
            var pending = ""
            while true {
                let data = handle.availableData
                if data.isEmpty { return }
                pending += String(decoding: data, as: UTF8.self)
                while let newline = pending.firstIndex(of: "\n") {
                    let line = String(pending[..<newline])
                    pending = String(pending[pending.index(after: newline)...])
                    self?.lock.withLock { self?.collected.append(line) }
                }
            }
        }.start()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var lines: [String] { lock.withLock { collected } }

    func waitReady(timeout seconds: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        let client = DemoHTTP()
        while Date() < deadline && process.isRunning {
            if (try? await client.status(port: httpPort, path: "/ready")) == 200 { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    func kill(_ signal: Int32) {
        if process.isRunning { Foundation.kill(process.processIdentifier, signal) }
    }

    func waitForExit(seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }
}

/// Children to stop on Ctrl-C.
final class ChildRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var children: [DemoNode] = []
    private var stop = false
    private var sources: [any DispatchSourceSignal] = []

    func add(_ child: DemoNode) { lock.withLock { children.append(child) } }
    var stopRequested: Bool { lock.withLock { stop } }

    func installSignalHandlers() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.lock.withLock { self?.stop = true } }
            source.resume()
            sources.append(source)
        }
    }

    func stopAll(signal: Int32) {
        for child in lock.withLock({ children }) { child.kill(signal) }
    }
}

/// A tiny HTTP client with one cookie jar (the demo's browser), on AsyncHTTPClient (no
/// FoundationNetworking, so a static-stdlib build of `cohort` needs no libcurl).
final class DemoHTTP: @unchecked Sendable {
    private let lock = NSLock()
    private var cookie: String?

    struct Counter {
        var count: Int
        var raw: String
    }

    func status(port: Int, path: String) async throws -> Int {
        let response = try await HTTPClient.shared.execute(request(port: port, path: path), timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    func counter(port: Int) async throws -> Counter {
        let response = try await HTTPClient.shared.execute(request(port: port, path: "/counter"), timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        if let setCookie = response.headers.first(name: "set-cookie"), let pair = setCookie.split(separator: ";").first {
            lock.withLock { cookie = String(pair) }
        }
        let raw = String(buffer: body)
        guard response.status == .ok,
              let object = try? JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: Any],
              let count = object["count"] as? Int
        else {
            throw CohortError(.internal, "unexpected answer from :\(port)/counter (\(response.status.code)): \(raw)")
        }
        return Counter(count: count, raw: raw)
    }

    private func request(port: Int, path: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        if let cookie = lock.withLock({ cookie }) { request.headers.add(name: "cookie", value: cookie) }
        return request
    }
}
