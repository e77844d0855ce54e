import Cohort
import Foundation

/// A child process whose output is collected line by line, for tests that run the `cohort`
/// executable (or any other) as a user would.
///
/// Waits are event-driven: every new line and the process's exit wake the waiters, and every
/// wait has a deadline — no polling. From async code (every swift-testing test that starts a
/// process should be `async`) use the `async` waits: they suspend instead of blocking one of the
/// few threads every concurrent test shares.
public final class ChildProcess: @unchecked Sendable {
    /// One line of output and when it arrived.
    public struct Line: Sendable {
        public var text: String
        public var at: ContinuousClock.Instant
    }

    private let process = Process()
    private let input = Pipe()
    private let condition = NSCondition()
    private var collected: [Line] = []
    private var errors = ""
    private var exitStatus: Int32?
    private var openReaders = 0
    /// Bumped by every new line, the exit and every closed pipe; async waiters wait for a change.
    private var generation = 0
    private var changeWaiters: [Int: ChangeWaiter] = [:]
    private var nextWaiter = 0

    private enum ChangeWaiter {
        case starting(seen: Int)
        case cancelled
        case waiting(CheckedContinuation<Void, Never>)
    }

    /// Starts `executable` with `arguments`.
    ///
    /// - Parameters:
    ///   - environment: the child's environment (default: this process's).
    ///   - mergeStandardError: collect standard error as lines too (else it is kept apart, see ``standardError``).
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, mergeStandardError: Bool = false) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let output = Pipe()
        let errorPipe = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = mergeStandardError ? output : errorPipe
        process.terminationHandler = { [weak self] process in
            self?.changed { $0.exitStatus = process.terminationStatus }
        }
        openReaders = mergeStandardError ? 1 : 2
        try process.run()
        let closed: @Sendable () -> Void = { [weak self] in
            self?.changed { $0.openReaders -= 1 }
        }
        Self.readLines(output.fileHandleForReading, closed: closed) { [weak self] line in
            self?.changed { $0.collected.append(Line(text: line, at: ContinuousClock.now)) }
        }
        if !mergeStandardError {
            Self.readLines(errorPipe.fileHandleForReading, closed: closed) { [weak self] line in
                self?.condition.withLock { self?.errors += line + "\n" }
            }
        }
    }

    /// Applies a change under the lock and wakes every waiter, blocking and async.
    private func changed(_ change: (ChildProcess) -> Void) {
        let waiters: [CheckedContinuation<Void, Never>] = condition.withLock {
            change(self)
            generation += 1
            var ready: [CheckedContinuation<Void, Never>] = []
            for (id, waiter) in changeWaiters {
                if case .waiting(let continuation) = waiter {
                    ready.append(continuation)
                    changeWaiters[id] = nil
                }
            }
            return ready
        }
        condition.broadcast()
        for waiter in waiters { waiter.resume() }
    }

    /// Suspends until something changed after generation `seen` (or the task is cancelled).
    private func change(after seen: Int) async {
        let id: Int = condition.withLock {
            nextWaiter += 1
            changeWaiters[nextWaiter] = .starting(seen: seen)
            return nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now: Bool = condition.withLock {
                    guard case .starting = changeWaiters[id], generation == seen else {
                        changeWaiters[id] = nil
                        return true
                    }
                    changeWaiters[id] = .waiting(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Void, Never>? = condition.withLock {
                switch changeWaiters[id] {
                case .starting:
                    changeWaiters[id] = .cancelled
                    return nil
                case .waiting(let continuation):
                    changeWaiters[id] = nil
                    return continuation
                case .cancelled, nil:
                    return nil
                }
            }
            waiter?.resume()
        }
    }

    /// Suspends until `done` holds for this process's state, or `seconds` passed.
    ///
    /// - Returns: whether `done` held.
    private func suspend(for seconds: Double, until done: (ChildProcess) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int64(seconds * 1000)))
        while true {
            let (held, seen) = condition.withLock { (done(self), generation) }
            if held { return true }
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { return false }
            do {
                try await withDeadline(remaining, "a change of the child process") { await self.change(after: seen) }
            } catch {
                return condition.withLock { done(self) }
            }
        }
    }

    private static func readLines(_ handle: FileHandle, closed: @escaping @Sendable () -> Void, _ onLine: @escaping @Sendable (String) -> Void) {
        Thread {
            var pending = ""
            while true {
                let data = handle.availableData
                if data.isEmpty {
                    if !pending.isEmpty { onLine(pending) }
                    closed()
                    return
                }
                pending += String(decoding: data, as: UTF8.self)
                while let newline = pending.firstIndex(of: "\n") {
                    onLine(String(pending[..<newline]))
                    pending = String(pending[pending.index(after: newline)...])
                }
            }
        }.start()
    }

    /// The process id.
    public var pid: Int32 { process.processIdentifier }
    /// Whether it still runs.
    public var isRunning: Bool { condition.withLock { exitStatus == nil } }
    /// The output lines so far.
    public var output: [String] { condition.withLock { collected.map(\.text) } }
    /// The output lines with their arrival times.
    public var lines: [Line] { condition.withLock { collected } }
    /// Standard error so far (when not merged).
    public var standardError: String { condition.withLock { errors } }

    /// Writes a line to the child's standard input.
    public func send(_ line: String) {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    /// Sends a signal if the child still runs.
    public func signal(_ signal: Int32) {
        if isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits until `condition` holds for the output lines, the child exits, or the deadline
    /// passes, blocking the calling thread (from async code, use the `async` overload).
    ///
    /// - Returns: whether the condition held.
    @discardableResult
    public func wait(for seconds: Double, _ predicate: ([String]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var seen = -1
        while true {
            // The predicate runs outside the lock: it may read this object (`isRunning`, `output`).
            let (lines, exited) = condition.withLock { (collected.map(\.text), exitStatus != nil) }
            if predicate(lines) { return true }
            if exited {
                // Output written just before the exit may still be in the pipe.
                waitForOutputEnd(seconds: 2)
                return predicate(output)
            }
            if Date() >= deadline { return false }
            seen = lines.count
            condition.lock()
            // Sleep until a new line or the exit arrives, or the deadline passes.
            while collected.count == seen && exitStatus == nil {
                if !condition.wait(until: deadline) { break }
            }
            condition.unlock()
        }
    }

    /// Waits until `condition` holds for the output lines, the child exits, or the deadline
    /// passes, suspending (not blocking) between new lines.
    ///
    /// - Returns: whether the condition held.
    @discardableResult
    public func wait(for seconds: Double, _ predicate: ([String]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int64(seconds * 1000)))
        while true {
            let (lines, exited, seen) = condition.withLock { (collected.map(\.text), exitStatus != nil, generation) }
            if predicate(lines) { return true }
            if exited {
                // Output written just before the exit may still be in the pipe.
                await waitForOutputEnd(seconds: 2)
                return predicate(output)
            }
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { return false }
            do {
                try await withDeadline(remaining, "a line of the child process") { await self.change(after: seen) }
            } catch {
                return predicate(output)
            }
        }
    }

    /// Waits for the child to exit, suspending (not blocking).
    ///
    /// - Returns: its status, or nil if it still runs at the deadline.
    @discardableResult
    public func waitForExit(seconds: Double) async -> Int32? {
        _ = await suspend(for: seconds) { $0.exitStatus != nil }
        return condition.withLock { exitStatus }
    }

    /// Waits until the child's output pipes are closed, suspending (not blocking).
    public func waitForOutputEnd(seconds: Double) async {
        _ = await suspend(for: seconds) { $0.openReaders <= 0 }
    }

    /// Runs a command to completion (killed after `timeout` seconds) and returns its status and
    /// output, suspending (not blocking) meanwhile.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, timeout: Double = 60) async throws -> (status: Int32, stdout: String, stderr: String) {
        let child = try ChildProcess(executable, arguments, environment: environment)
        child.input.fileHandleForWriting.closeFile()
        if await child.waitForExit(seconds: timeout) == nil {
            child.signal(SIGKILL)
            await child.waitForExit(seconds: 5)
        }
        // The readers reach end of file once the child (and anything it started) closed the pipes.
        await child.waitForOutputEnd(seconds: 5)
        let status = child.condition.withLock { child.exitStatus } ?? -1
        let stdout = child.output.joined(separator: "\n")
        return (status, stdout, child.standardError)
    }

    /// Waits for the child to exit, blocking the calling thread.
    ///
    /// - Returns: its status, or nil if it still runs at the deadline.
    @discardableResult
    public func waitForExit(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while exitStatus == nil {
            if !condition.wait(until: deadline) { break }
        }
        return exitStatus
    }

    /// Waits until the child's output pipes are closed (all output read).
    public func waitForOutputEnd(seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while openReaders > 0 {
            if !condition.wait(until: deadline) { break }
        }
    }

    /// Runs a command to completion (killed after `timeout` seconds) and returns its status and
    /// output, blocking the calling thread (from async code, use the `async` overload).
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, timeout: Double = 20) throws -> (status: Int32, stdout: String, stderr: String) {
        let child = try ChildProcess(executable, arguments, environment: environment)
        child.input.fileHandleForWriting.closeFile()
        if child.waitForExit(seconds: timeout) == nil {
            child.signal(SIGKILL)
            child.waitForExit(seconds: 5)
        }
        // The readers reach end of file once the child (and anything it started) closed the pipes.
        child.waitForOutputEnd(seconds: 5)
        let status = child.waitForExit(seconds: 0) ?? -1
        let stdout = child.output.joined(separator: "\n")
        return (status, stdout, child.standardError)
    }

    /// Distinct free TCP (or UDP) ports on 127.0.0.1: bound to port 0 together, then released.
    public static func freeLoopbackPorts(_ count: Int, type: Int32 = Int32(SOCK_STREAM.rawValue)) throws -> [Int] {
        var ports: [Int] = []
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        for _ in 0..<count {
            let fd = socket(AF_INET, type, 0)
            guard fd >= 0 else { throw CohortError(.internal, "socket() failed: errno \(errno)") }
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            guard bound == 0 else { throw CohortError(.internal, "bind() failed: errno \(errno)") }
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}
