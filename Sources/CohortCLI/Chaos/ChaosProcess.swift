import Foundation

/// A child process of the harness (a node, nginx, a helper script), its output appended to a log
/// file. Signals go to its pid: under `ip netns exec` that is the program itself (`ip` execs it).
final class ChaosProcess: @unchecked Sendable {
    let label: String
    let logPath: String
    private let process = Process()

    /// Starts `executable arguments…`, output (both streams) appended to `logPath`.
    init(label: String, executable: String, arguments: [String], logPath: String, environment: [String: String]? = nil) throws {
        self.label = label
        self.logPath = logPath
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        guard let log = FileHandle(forWritingAtPath: logPath) else {
            throw ChaosError("cannot open \(logPath) for \(label)'s output")
        }
        log.seekToEndOfFile()
        log.write(Data("--- \(Date()) \(executable) \(arguments.joined(separator: " "))\n".utf8))
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw ChaosError("cannot start \(label) (\(executable)): \(error)")
        }
        try? log.close()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var exitStatus: Int32? { process.isRunning ? nil : process.terminationStatus }

    func signal(_ signal: Int32) {
        if process.isRunning { _ = Foundation.kill(process.processIdentifier, signal) }
    }

    /// Waits until the process exits; false if it still runs after `seconds`.
    func waitForExit(seconds: Double) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while process.isRunning {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// Ends the process for good: SIGKILL (which also ends a stopped process), then waits.
    func destroy() async {
        signal(SIGKILL)
        _ = await waitForExit(seconds: 10)
    }

    /// The log's last lines (for error messages).
    func tail(_ lines: Int = 15) -> String {
        guard let data = FileManager.default.contents(atPath: logPath) else { return "" }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// Runs a program to its end and returns its status and output (for short helper commands).
    static func run(_ executable: String, _ arguments: [String]) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return (127, "cannot run \(executable): \(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// A failure of the harness itself (not of the system under test).
struct ChaosError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
