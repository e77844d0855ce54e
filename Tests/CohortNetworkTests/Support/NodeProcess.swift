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

/// A running `cohort node` (directly, or through `ip netns exec`): a ``ChildProcess`` with a
/// clean environment, plus the lookups the scenarios need.
final class NodeProcess: @unchecked Sendable {
    typealias Line = ChildProcess.Line

    let name: String
    let startedAt = ContinuousClock.now
    private let child: ChildProcess

    /// Starts `executable arguments` with a clean environment (no COHORT_* of the test process)
    /// plus `environment`.
    init(name: String, executable: String, arguments: [String], environment: [String: String] = [:]) throws {
        self.name = name
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("COHORT_") }
        env.merge(environment) { $1 }
        child = try ChildProcess(executable, arguments, environment: env)
    }

    var pid: Int32 { child.pid }
    var isRunning: Bool { child.isRunning }
    var output: [String] { child.output }
    var standardError: String { child.standardError }

    /// The first line starting with `prefix`, with its arrival instant.
    func first(_ prefix: String) -> Line? { child.lines.first { $0.text.hasPrefix(prefix) } }

    /// Every line starting with `prefix`.
    func all(_ prefix: String) -> [Line] { child.lines.filter { $0.text.hasPrefix(prefix) } }

    /// Whether a line starting with `prefix` was printed.
    func has(_ prefix: String) -> Bool { first(prefix) != nil }

    /// The member id this node printed in its `listening NAME ADDR id ID` line.
    var memberID: String? { first("listening")?.text.components(separatedBy: " id ").last }

    /// Writes a line to the node's standard input (it sends it to all members).
    func send(_ line: String) { child.send(line) }

    func signal(_ signal: Int32) { child.signal(signal) }

    /// Waits for the process to exit; returns its status, or nil if it still runs.
    func waitForExit(timeout: Duration) async -> Int32? {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        return await child.waitForExit(seconds: seconds)
    }

    /// Everything it printed, for failure messages.
    var transcript: String {
        "--- \(name) stdout:\n" + output.joined(separator: "\n") + "\n--- \(name) stderr:\n" + standardError
    }

    deinit {
        child.signal(SIGCONT)
        child.signal(SIGKILL)
    }
}

/// Free TCP or UDP ports on 127.0.0.1, picked by the kernel.
func freePorts(_ count: Int, type: Int32 = Int32(SOCK_STREAM.rawValue)) -> [Int] {
    (try? ChildProcess.freeLoopbackPorts(count, type: type)) ?? []
}

/// Runs a short command and returns its exit status and combined output.
@discardableResult
func shell(_ executable: String, _ arguments: [String], timeout: TimeInterval = 30) -> (status: Int32, output: String) {
    do {
        let result = try ChildProcess.run(executable, arguments, timeout: timeout)
        let joined = [result.stdout, result.stderr].filter { !$0.isEmpty }.joined(separator: "\n")
        return (result.status, joined)
    } catch {
        return (-1, "cannot run \(executable): \(error)")
    }
}
