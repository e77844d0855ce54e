import Cohort
import CohortTestKit
import Foundation
import NIOConcurrencyHelpers

/// A running `cohort` process with its own environment; standard output is collected line by
/// line, standard error as text.
final class NodeProcess: @unchecked Sendable {
    /// The built executable next to the test binary.
    static var executable: String { PluginLoader.executableDirectory + "/cohort" }
    static var available: Bool { FileManager.default.isExecutableFile(atPath: executable) }

    private let process = Process()
    private let input = Pipe()
    private let lines = NIOLockedValueBox<[String]>([])
    private let errorText = NIOLockedValueBox<String>("")

    /// Starts the process. `environment` is added to this process's environment, minus every
    /// Kubernetes variable the test process may have.
    init(_ arguments: [String], environment: [String: String]) throws {
        var merged = ProcessInfo.processInfo.environment.filter { key, _ in
            !key.hasPrefix("KUBERNETES_") && !key.hasPrefix("OPENSHIFT_KUBE_PING_") && !key.hasPrefix("POD_")
                && !key.hasPrefix("COHORT_") && !["SA_TOKEN_FILE", "HOSTNAME", "MY_POD_IP", "DNS_MEMBERSHIP_SERVICE_NAME"].contains(key)
        }
        merged.merge(environment) { $1 }
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = arguments
        process.environment = merged
        process.standardInput = input
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        Self.collect(output.fileHandleForReading) { line in self.lines.withLockedValue { $0.append(line) } }
        Self.collect(errors.fileHandleForReading) { line in self.errorText.withLockedValue { $0 += line + "\n" } }
    }

    /// Reads a pipe on a dedicated thread until end of file, one line at a time.
    private static func collect(_ handle: FileHandle, _ onLine: @escaping @Sendable (String) -> Void) {
        Thread {
            var pending = ""
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                pending += String(decoding: data, as: UTF8.self)
                while let newline = pending.firstIndex(of: "\n") {
                    onLine(String(pending[..<newline]))
                    pending = String(pending[pending.index(after: newline)...])
                }
            }
            if !pending.isEmpty { onLine(pending) }
        }.start()
    }

    /// The lines printed on standard output so far.
    var output: [String] { lines.withLockedValue { $0 } }
    /// What was printed on standard error so far.
    var errors: String { errorText.withLockedValue { $0 } }
    var isRunning: Bool { process.isRunning }

    /// Writes a line to standard input.
    func send(_ line: String) { input.fileHandleForWriting.write(Data((line + "\n").utf8)) }

    /// Waits until the output satisfies a condition (polled, with a deadline).
    func wait(for timeout: Duration, _ condition: @escaping ([String]) -> Bool) async -> Bool {
        await eventually(timeout: timeout, poll: .milliseconds(20)) { condition(self.output) }
    }

    /// Sends a signal if the process still runs.
    func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits for the process to exit; returns its status, or nil on timeout.
    func waitForExit(_ timeout: Duration) async -> Int32? {
        let exited = await eventually(timeout: timeout, poll: .milliseconds(20)) { !self.process.isRunning }
        return exited ? process.terminationStatus : nil
    }
}
