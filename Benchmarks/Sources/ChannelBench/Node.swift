import Cohort
import CohortBenchSupport
import CohortCodecBinary
import CohortDiscoveryStatic
import CohortTransportTCP
import Foundation
import Logging
import Synchronization

/// The message of the raw-channel bench: opaque bytes, like Tribes' `ByteMessage`.
struct BenchBytes: ClusterMessage {
    static let messageType = MessageType(MessageType.firstApplicationID + 300)
    var bytes: [UInt8]
}

/// One member process, driven through its standard input (one command a line) and answering on
/// its standard output (one line per command).
///
/// - receiver: counts what its handler is given. `stats` → `stats <monotonic ns> <messages> <bytes>`.
/// - sender: `start <async|processed> <size>` sends in a loop to every other member (closed
///   loop, one message outstanding, for `processed`; as fast as the queue allows for `async`);
///   `mark` starts a measurement window (clears the latency record); `stop` ends the loop and
///   answers `stopped <sent> <failed> <p50 µs> <p99 µs> <p999 µs>` for the window.
final class BenchNode: @unchecked Sendable {
    let channel: GroupChannel
    let received = Received()
    private let sending = Atomic<Bool>(false)
    private let latencies = Mutex<[UInt64]>([])
    private let sent = Atomic<Int>(0)
    private let failed = Atomic<Int>(0)
    private var loop: Task<Void, Never>?

    init(name: String, listen: Endpoint, members: [Endpoint]) throws {
        var configuration = ClusterConfiguration(name: name, listen: listen, members: members)
        configuration = try ClusterConfiguration.load(file: nil, base: configuration)
        var logger = Logger(label: "bench.\(name)")
        logger.logLevel = .error
        channel = GroupChannel(
            configuration: configuration,
            transport: TCPTransport(settings: configuration.wire, logger: logger),
            codec: BinaryCodec(),
            discovery: StaticDiscovery(endpoints: members, interval: .milliseconds(200)),
            logger: logger
        )
        let received = self.received
        try channel.onMessage(BenchBytes.self) { message, _ in
            received.messages.add(1, ordering: .relaxed)
            received.bytes.add(message.bytes.count, ordering: .relaxed)
        }
    }

    func start(mode: DeliveryGuarantee, size: Int) {
        stop()
        let payload = BenchBytes(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        let options = SendOptions(guarantee: mode, timeout: .seconds(30))
        sending.store(true, ordering: .relaxed)
        let channel = self.channel
        loop = Task { [self] in
            while sending.load(ordering: .relaxed) {
                let t0 = ContinuousClock.now
                do {
                    let report = try await channel.send(payload, options: options)
                    if report.allSucceeded { sent.add(1, ordering: .relaxed) } else { failed.add(1, ordering: .relaxed) }
                } catch {
                    failed.add(1, ordering: .relaxed)
                }
                if mode != .asynchronous {
                    let elapsed = ContinuousClock.now - t0
                    let nanos = UInt64(elapsed.components.seconds) * 1_000_000_000 + UInt64(elapsed.components.attoseconds / 1_000_000_000)
                    latencies.withLock { $0.append(nanos) }
                }
            }
        }
    }

    func mark() {
        latencies.withLock { $0.removeAll(keepingCapacity: true) }
        sent.store(0, ordering: .relaxed)
        failed.store(0, ordering: .relaxed)
    }

    func stop() {
        sending.store(false, ordering: .relaxed)
    }

    func waitStopped() async {
        await loop?.value
        loop = nil
    }

    /// Percentiles of the window's latencies in µs (0 when none).
    func percentiles() -> (p50: Double, p99: Double, p999: Double) {
        let sorted = latencies.withLock { $0.sorted() }
        guard !sorted.isEmpty else { return (0, 0, 0) }
        func at(_ q: Double) -> Double { Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]) / 1000 }
        return (at(0.5), at(0.99), at(0.999))
    }

    var counts: (sent: Int, failed: Int) { (sent.load(ordering: .relaxed), failed.load(ordering: .relaxed)) }
}

/// What a receiver's handler counted.
final class Received: Sendable {
    let messages = Atomic<Int>(0)
    let bytes = Atomic<Int>(0)
}

/// Runs one member until its standard input closes.
func runNode(name: String, listen: Endpoint, members: [Endpoint]) async throws {
    let node = try BenchNode(name: name, listen: listen, members: members)
    let run = Task { try await node.channel.run() }
    let bound = try await node.channel.waitUntilRunning()
    // Wait until every listed member is in the view (receivers list nobody: they learn the
    // sender from its connections).
    let deadline = ContinuousClock.now + .seconds(30)
    while node.channel.view.members.count < members.count, ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(5))
    }
    emit("ready \(bound.port) \(node.channel.view.members.count)")
    // Standard input, a line at a time, read by a thread of its own (blocking reads).
    let (lines, input) = AsyncStream.makeStream(of: String.self)
    Thread {
        while let line = readLine() { input.yield(line) }
        input.finish()
    }.start()
    for await line in lines {
        let words = line.split(separator: " ").map(String.init)
        switch words.first {
        case "stats":
            emit("stats \(DispatchTime.now().uptimeNanoseconds) \(node.received.messages.load(ordering: .relaxed)) \(node.received.bytes.load(ordering: .relaxed))")
        case "members":
            emit("members \(node.channel.view.members.count)")
        case "start" where words.count == 3:
            node.start(mode: words[1] == "async" ? .asynchronous : .processed, size: Int(words[2]) ?? 1024)
            emit("started")
        case "mark":
            node.mark()
            emit("marked")
        case "stop":
            node.stop()
            await node.waitStopped()
            let (sent, failed) = node.counts
            let p = node.percentiles()
            emit("stopped \(sent) \(failed) \(p.p50) \(p.p99) \(p.p999)")
        case "quit":
            node.channel.shutdown()
            _ = await run.result
            return
        default:
            emit("error unknown command '\(line)'")
        }
    }
    node.channel.shutdown()
    _ = await run.result
}

/// Writes one line to standard output at once.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
