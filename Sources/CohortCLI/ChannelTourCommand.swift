import ArgumentParser
import Cohort
import Foundation

struct ChannelTourCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "channel-tour",
        abstract: "A guided tour of the group channel: 3 node processes, messages, a killed node, a graceful leave."
    )

    @Option(help: "Number of nodes.") var nodes: Int = 3
    @Option(help: "Cluster port of the first node; the others follow.") var basePort: Int = 4001
    @Option(help: "Codec: binary or json.") var codec: String = "binary"

    func validate() throws {
        guard (2...9).contains(nodes) else { throw ValidationError("--nodes must be between 2 and 9") }
        guard (1...65000).contains(basePort) else { throw ValidationError("--base-port must be between 1 and 65000") }
    }

    func run() async throws {
        let exe = PluginLoader.executableDirectory + "/cohort"
        let addresses = (0..<nodes).map { "127.0.0.1:\(basePort + $0)" }
        var children: [Child] = []
        defer { for child in children { child.terminate(signal: SIGKILL) } }

        say("Starting \(nodes) nodes on loopback, each a separate process:")
        for i in 0..<nodes {
            let name = "node\(i + 1)"
            let others = addresses.enumerated().filter { $0.offset != i }.map(\.element).joined(separator: ",")
            let child = try Child(executable: exe, name: name, arguments: [
                "node", "--name", name, "--listen", addresses[i], "--members", others, "--codec", codec,
            ])
            children.append(child)
            say("  \(name)  pid \(child.pid)  cluster \(addresses[i])")
        }

        // 1. Everyone sees everyone.
        for child in children {
            guard child.waitFor(timeout: 20, { (lines: [String]) in lines.filter { $0.hasPrefix("member-added") }.count >= nodes - 1 }) else {
                return try fail("\(child.name) did not see all members", children)
            }
        }
        say("\nEvery node sees the other \(nodes - 1) (member-added events):")
        for line in children[0].lines where line.hasPrefix("member-added") { say("  node1: \(line)") }

        // 2. A message to all, waiting until every receiver processed it.
        say("\nnode1 sends \"hello from node1\" to all members and waits until each has processed it:")
        children[0].send("hello from node1")
        guard children[0].waitForLine(timeout: 10, { $0.contains("sent to \(nodes - 1)/\(nodes - 1) members") }) else {
            return try fail("node1's send was not acknowledged by all", children)
        }
        for child in children.dropFirst() {
            guard child.waitForLine(timeout: 10, { $0.contains("received from node1: hello from node1") }) else {
                return try fail("\(child.name) did not receive the message", children)
            }
            say("  \(child.name): received from node1: hello from node1")
        }
        say("  node1: sent to \(nodes - 1)/\(nodes - 1) members")

        // 3. Kill the last node without warning.
        let victim = children[nodes - 1]
        say("\nKilling \(victim.name) (pid \(victim.pid)) with SIGKILL — no goodbye.")
        let killedAt = Date()
        victim.terminate(signal: SIGKILL)
        for child in children.dropLast() {
            guard child.waitForLine(timeout: 15, { $0.contains("member-removed \(victim.name)") }) else {
                return try fail("\(child.name) did not detect that \(victim.name) died", children)
            }
            let ms = Int(Date().timeIntervalSince(killedAt) * 1000)
            say("  \(child.name) reported member-removed \(victim.name) after about \(ms) ms (probe-verified, not a guess)")
        }

        // 4. The survivors keep working.
        say("\nnode2 sends \"still here\"; the survivors keep working:")
        children[1].send("still here")
        guard children[1].waitForLine(timeout: 10, { $0.contains("sent to \(nodes - 2)/\(nodes - 2) members") }) else {
            return try fail("node2's send to the survivors failed", children)
        }
        say("  node2: sent to \(nodes - 2)/\(nodes - 2) members")

        // 5. A graceful leave is seen at once.
        let leaver = children[0]
        say("\nStopping node1 with SIGTERM: it tells the others it is leaving.")
        leaver.terminate(signal: SIGTERM)
        guard children[1].waitForLine(timeout: 10, { $0.contains("member-left node1") }) else {
            return try fail("node2 did not see node1 leave", children)
        }
        say("  node2: member-left node1")
        for child in children.dropLast() { child.terminate(signal: SIGTERM) }
        for child in children.dropLast() { child.waitForExit(timeout: 10) }
        say("\nTour complete. Run `cohort node --help` to start nodes by hand.")
    }

    private func say(_ text: String) { Console.line(text) }

    private func fail(_ what: String, _ children: [Child]) throws {
        Console.error("demo failed: \(what)")
        for child in children {
            Console.error("--- \(child.name) output:")
            for line in child.lines { Console.error("  \(line)") }
        }
        throw ExitCode(1)
    }
}

/// A child `cohort node` process whose output lines are collected.
final class Child: @unchecked Sendable {
    let name: String
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let lock = NSLock()
    private var collected: [String] = []

    init(executable: String, name: String, arguments: [String]) throws {
        self.name = name
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw CohortError(.internal, "cannot start \(executable): \(error)")
        }
        let handle = output.fileHandleForReading
        let thread = Thread { [weak self] in
            var pending = ""
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                pending += String(decoding: data, as: UTF8.self)
                while let newline = pending.firstIndex(of: "\n") {
                    let line = String(pending[..<newline])
                    pending = String(pending[pending.index(after: newline)...])
                    self?.append(line)
                }
            }
        }
        thread.start()
    }

    var pid: Int32 { process.processIdentifier }

    var lines: [String] { lock.withLock { collected } }

    private func append(_ line: String) { lock.withLock { collected.append(line) } }

    func send(_ line: String) {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    /// Polls the collected lines until `condition` holds or the deadline passes.
    func waitFor(timeout seconds: Double, _ condition: ([String]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(lines) { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition(lines)
    }

    /// Polls until some line satisfies the predicate.
    func waitForLine(timeout seconds: Double, _ predicate: @escaping (String) -> Bool) -> Bool {
        waitFor(timeout: seconds) { (all: [String]) in all.contains(where: predicate) }
    }

    func terminate(signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    func waitForExit(timeout seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
