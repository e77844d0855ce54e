import CohortTestKit
import Foundation

/// Where the built `cohort` executable and the repository's scripts are.
enum Paths {
    /// The `cohort` executable next to the test bundle (swift test puts them together), or nil.
    static let cohort: String? = {
        let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        guard let dir = exe.map({ ($0 as NSString).deletingLastPathComponent }) else { return nil }
        let path = dir + "/cohort"
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }()

    /// The package root, from this file's place in it (Tests/CohortNetworkTests/Support/).
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// scripts/netns.
    static var netnsScript: String { packageRoot + "/scripts/netns" }
}

/// A running `cohort node` (directly, or through `ip netns exec`) whose standard output is
/// collected line by line with the instant each line arrived.
final class NodeProcess: @unchecked Sendable {
    struct Line {
        var text: String
        var at: ContinuousClock.Instant
    }

    let name: String
    let startedAt = ContinuousClock.now
    private let process = Process()
    private let input = Pipe()
    private let outputPipe = Pipe()
    private let errorPipe = Pipe()
    private let lock = NSLock()
    private var lines: [Line] = []
    private var errors = ""

    /// Starts `executable arguments` with a clean environment (no COHORT_* of the test process)
    /// plus `environment`.
    init(name: String, executable: String, arguments: [String], environment: [String: String] = [:]) throws {
        self.name = name
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("COHORT_") }
        env.merge(environment) { $1 }
        process.environment = env
        process.standardInput = input
        process.standardOutput = outputPipe
        process.standardError = errorPipe
        try process.run()
        Self.readLines(outputPipe.fileHandleForReading) { [weak self] line in
            guard let self else { return }
            let stamped = Line(text: line, at: .now)
            self.lock.withLock { self.lines.append(stamped) }
        }
        Self.readLines(errorPipe.fileHandleForReading) { [weak self] line in
            guard let self else { return }
            self.lock.withLock { if self.errors.count < 20_000 { self.errors += line + "\n" } }
        }
    }

    private static func readLines(_ handle: FileHandle, _ onLine: @escaping @Sendable (String) -> Void) {
        Thread {
            var pending = ""
            while true {
                let data = handle.availableData
                if data.isEmpty { return }
                pending += String(decoding: data, as: UTF8.self)
                while let newline = pending.firstIndex(of: "\n") {
                    onLine(String(pending[..<newline]))
                    pending = String(pending[pending.index(after: newline)...])
                }
            }
        }.start()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var output: [String] { lock.withLock { lines.map(\.text) } }
    var standardError: String { lock.withLock { errors } }

    /// The first line starting with `prefix`, with its arrival instant.
    func first(_ prefix: String) -> Line? { lock.withLock { lines.first { $0.text.hasPrefix(prefix) } } }

    /// Every line starting with `prefix`.
    func all(_ prefix: String) -> [Line] { lock.withLock { lines.filter { $0.text.hasPrefix(prefix) } } }

    /// Whether a line starting with `prefix` was printed.
    func has(_ prefix: String) -> Bool { first(prefix) != nil }

    /// The member id this node printed in its `listening NAME ADDR id ID` line.
    var memberID: String? { first("listening")?.text.components(separatedBy: " id ").last }

    /// Writes a line to the node's standard input (it sends it to all members).
    func send(_ line: String) { input.fileHandleForWriting.write(Data((line + "\n").utf8)) }

    func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits (polling) for the process to exit; returns its status, or nil if it still runs.
    func waitForExit(timeout: Duration) async -> Int32? {
        await eventually(timeout: timeout, poll: .milliseconds(20)) { !self.process.isRunning }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Everything it printed, for failure messages.
    var transcript: String {
        "--- \(name) stdout:\n" + output.joined(separator: "\n") + "\n--- \(name) stderr:\n" + standardError
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGCONT)
            kill(process.processIdentifier, SIGKILL)
        }
    }
}

/// Free TCP or UDP ports on 127.0.0.1, picked by the kernel.
func freePorts(_ count: Int, type: Int32 = Int32(SOCK_STREAM.rawValue)) -> [Int] {
    var ports: [Int] = []
    var fds: [Int32] = []
    defer { fds.forEach { close($0) } }
    for _ in 0..<count {
        let fd = socket(AF_INET, type, 0)
        fds.append(fd)
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

/// Runs a short command and returns its exit status and combined output.
@discardableResult
func shell(_ executable: String, _ arguments: [String], timeout: TimeInterval = 30) -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    do { try process.run() } catch { return (-1, "cannot run \(executable): \(error)") }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
