import Foundation
import Testing

/// Runs the real `cohort` executable as separate processes, as a user would.
@Suite("cohort node processes", .timeLimit(.minutes(2)))
struct NodeProcessTests {
    static var binary: String? {
        // swift test puts the test bundle next to the built executables.
        let dir = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")).map { ($0 as NSString).deletingLastPathComponent }
        guard let dir else { return nil }
        let path = dir + "/cohort"
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    @Test(.enabled(if: binary != nil, "the cohort executable is not built next to the tests (run swift build first)"))
    func threeNodesSeeEachOtherExchangeLinesAndReportAKilledPeer() throws {
        let exe = try #require(Self.binary)
        let ports = try freePorts(3)
        let addresses = ports.map { "127.0.0.1:\($0)" }
        var nodes: [NodeProcess] = []
        defer { nodes.forEach { $0.kill(SIGKILL) } }
        for i in 0..<3 {
            let others = addresses.enumerated().filter { $0.offset != i }.map(\.element).joined(separator: ",")
            nodes.append(try NodeProcess(exe, ["node", "--name", "p\(i + 1)", "--listen", addresses[i], "--members", others]))
        }
        for node in nodes {
            #expect(node.wait(for: 20) { $0.filter { $0.hasPrefix("member-added") }.count == 2 }, "\(node.output)")
        }
        nodes[0].send("hello there")
        #expect(nodes[0].wait(for: 10) { $0.contains("sent to 2/2 members") }, "\(nodes[0].output)")
        #expect(nodes[1].wait(for: 10) { $0.contains("received from p1: hello there") })
        #expect(nodes[2].wait(for: 10) { $0.contains("received from p1: hello there") })

        nodes[2].kill(SIGKILL)
        #expect(nodes[0].wait(for: 10) { $0.contains { $0.hasPrefix("member-removed p3") } }, "\(nodes[0].output)")
        #expect(nodes[1].wait(for: 10) { $0.contains { $0.hasPrefix("member-removed p3") } }, "\(nodes[1].output)")
        nodes[1].send("after")
        #expect(nodes[1].wait(for: 10) { $0.contains("sent to 1/1 members") }, "\(nodes[1].output)")

        nodes[0].kill(SIGTERM)
        #expect(nodes[1].wait(for: 10) { $0.contains { $0.hasPrefix("member-left p1") } }, "\(nodes[1].output)")
        #expect(nodes[0].waitForExit(seconds: 10) == 0)
    }

    @Test(.enabled(if: binary != nil, "the cohort executable is not built"))
    func badArgumentsExitNonZeroWithAClearMessage() throws {
        let exe = try #require(Self.binary)
        let cases: [([String], String)] = [
            (["node", "--listen", "nowhere"], "HOST:PORT"),
            (["node", "--listen", "127.0.0.1:1", "--codec", "morse"], "no codec plugin 'morse'"),
            (["node", "--members", "a:b"], "is not an address"),
            (["node", "--listen", "127.0.0.1:1", "--plugin", "/nonexistent/libX.so"], "does not exist"),
        ]
        for (arguments, expected) in cases {
            let result = try run(exe, arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
        }
        // Port in use.
        let ports = try freePorts(1)
        let first = try NodeProcess(exe, ["node", "--name", "a", "--listen", "127.0.0.1:\(ports[0])"])
        defer { first.kill(SIGKILL) }
        #expect(first.wait(for: 10) { $0.contains { $0.hasPrefix("listening") } })
        let second = try run(exe, ["node", "--name", "b", "--listen", "127.0.0.1:\(ports[0])"])
        #expect(second.status != 0)
        #expect(second.stderr.contains("already in use"), "\(second.stderr)")
    }
}

func freePorts(_ count: Int) throws -> [Int] {
    // Bind port 0 and release: the kernel hands out distinct free ports.
    var ports: [Int] = []
    for _ in 0..<count {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        ports.append(Int(UInt16(bigEndian: addr.sin_port)))
    }
    return ports
}

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

func run(_ exe: String, _ arguments: [String]) throws -> RunResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: exe)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(20)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    return RunResult(
        status: process.terminationStatus,
        stdout: String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
        stderr: String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    )
}

/// A running `cohort node` whose standard output is collected line by line.
final class NodeProcess: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let outputPipe = Pipe()
    private let lock = NSLock()
    private var lines: [String] = []

    init(_ exe: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = outputPipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let handle = outputPipe.fileHandleForReading
        Thread { [weak self] in
            var pending = ""
            while true {
                let data = handle.availableData
                if data.isEmpty { return }
                pending += String(decoding: data, as: UTF8.self)
                while let newline = pending.firstIndex(of: "\n") {
                    let line = String(pending[..<newline])
                    pending = String(pending[pending.index(after: newline)...])
                    self?.lock.withLock { self?.lines.append(line) }
                }
            }
        }.start()
    }

    var output: [String] { lock.withLock { lines } }

    func send(_ line: String) { input.fileHandleForWriting.write(Data((line + "\n").utf8)) }

    /// Polls the output until the condition holds or the deadline passes.
    func wait(for seconds: Double, _ condition: ([String]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(output) { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition(output)
    }

    func kill(_ signal: Int32) {
        if process.isRunning { Foundation.kill(process.processIdentifier, signal) }
    }

    func waitForExit(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        return process.isRunning ? nil : process.terminationStatus
    }
}
