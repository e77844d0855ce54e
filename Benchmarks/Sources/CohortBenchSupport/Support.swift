import Cohort
import Logging
import NIOConcurrencyHelpers
import Synchronization

/// The message every benchmark sends: a few header fields and a 1 KiB text body.
public struct BenchMessage: ClusterMessage, Equatable {
    public static let messageType = MessageType(MessageType.firstApplicationID + 100)

    public var sequence: UInt64
    public var origin: String
    public var timestamp: Int64
    public var tags: [String]
    public var body: String

    public init(sequence: UInt64, origin: String, timestamp: Int64, tags: [String], body: String) {
        self.sequence = sequence
        self.origin = origin
        self.timestamp = timestamp
        self.tags = tags
        self.body = body
    }

    /// Size of ``body`` in bytes.
    public static let bodySize = 1024

    /// A representative message with a 1 KiB ASCII body.
    public static func sample(sequence: UInt64 = 42) -> BenchMessage {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789 ".utf8)
        var bytes = [UInt8]()
        bytes.reserveCapacity(bodySize)
        for i in 0..<bodySize { bytes.append(alphabet[(i * 7 + i / 13) % alphabet.count]) }
        return BenchMessage(
            sequence: sequence,
            origin: "node-a.cluster.local",
            timestamp: 1_764_000_000_000,
            tags: ["session", "replicate"],
            body: String(decoding: bytes, as: UTF8.self)
        )
    }
}

/// Why a benchmark gave up.
public struct BenchFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Polls `condition` until it holds; throws once `timeout` has passed.
///
/// Between checks it sleeps for `interval` (a poll, not a fixed wait: it returns as soon as the
/// condition holds), so that a waiting benchmark does not take a core from the nodes it waits for.
public func waitUntil(
    _ what: @autoclosure () -> String,
    timeout: Duration = .seconds(10),
    interval: Duration = .microseconds(50),
    _ condition: () -> Bool
) async throws {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while !condition() {
        if ContinuousClock.now >= deadline {
            throw BenchFailure("timed out after \(timeout) waiting for \(what())")
        }
        try await Task.sleep(for: interval)
    }
}

/// A logger that stays quiet unless something goes wrong.
public func quietLogger(_ label: String = "cohort.bench") -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .error
    return logger
}

/// A thread-safe counter of deliveries, bumped by `onMessage` handlers.
public final class DeliveryCounter: Sendable {
    private let count = Atomic<Int>(0)
    public init() {}
    public func increment() { count.add(1, ordering: .relaxed) }
    public var value: Int { count.load(ordering: .relaxed) }
}

/// A gate that handlers can wait at, so that receivers can be parked while the sender is measured.
public final class Gate: Sendable {
    private struct State {
        var open = true
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = NIOLockedValueBox(State())

    public init() {}

    /// From now on, ``pass()`` waits.
    public func close() { state.withLockedValue { $0.open = false } }

    /// Lets everybody through, including those already waiting.
    public func open() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// How many callers wait at the gate.
    public var waiting: Int { state.withLockedValue { $0.waiters.count } }

    /// Returns at once while the gate is open; otherwise when it opens.
    public func pass() async {
        if state.withLockedValue({ $0.open }) { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let passNow = state.withLockedValue { state -> Bool in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if passNow { continuation.resume() }
        }
    }
}

/// A set of running channels: one sender and its receivers, each running in its own task.
///
/// Start it in a benchmark's setup and call ``stop()`` in its teardown.
public final class RunningCluster: Sendable {
    public let sender: GroupChannel
    public let receivers: [GroupChannel]
    private let tasks: [Task<Void, any Error>]

    /// Runs the receivers, then a sender made by `makeSender` from their bound addresses, and
    /// waits until the sender sees every receiver and every receiver sees the sender.
    public init(
        receivers: [GroupChannel],
        makeSender: ([Endpoint]) throws -> GroupChannel,
        timeout: Duration = .seconds(20)
    ) async throws {
        var tasks: [Task<Void, any Error>] = []
        for receiver in receivers {
            tasks.append(Task { try await receiver.run() })
        }
        var endpoints: [Endpoint] = []
        for receiver in receivers {
            endpoints.append(try await receiver.waitUntilRunning())
        }
        let sender = try makeSender(endpoints)
        tasks.append(Task { try await sender.run() })
        _ = try await sender.waitUntilRunning()
        self.sender = sender
        self.receivers = receivers
        self.tasks = tasks
        let expected = receivers.count
        do {
            try await waitUntil("\(sender.configuration.name) to see \(expected) receivers", timeout: timeout, interval: .milliseconds(1)) {
                sender.view.members.count == expected
            }
            let senderID = sender.localMember.id
            for receiver in receivers {
                try await waitUntil("\(receiver.configuration.name) to see the sender", timeout: timeout, interval: .milliseconds(1)) {
                    receiver.view.contains(senderID)
                }
            }
        } catch {
            await stop()
            throw error
        }
    }

    /// Shuts every channel down (sender first) and waits until each has left.
    public func stop() async {
        sender.shutdown()
        for receiver in receivers { receiver.shutdown() }
        for task in tasks { _ = await task.result }
    }
}

/// A loopback node's configuration: defaults, then any `COHORT_*` environment variables, so a
/// setting can be compared without editing the benchmark (for example
/// `COHORT_HANDLERS_ON_EVENT_LOOP=false scripts/bench --target Loopback`).
public func benchConfiguration(name: String, members: [Endpoint]) throws -> ClusterConfiguration {
    var base = ClusterConfiguration(name: name, listen: Endpoint(host: "127.0.0.1", port: 0), members: members)
    base = try ClusterConfiguration.load(file: nil, base: base)
    return base
}
