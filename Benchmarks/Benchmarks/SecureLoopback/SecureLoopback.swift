// The cost of transport security per message: real GroupChannels with the TCP transport on
// 127.0.0.1, one sender and one receiver, plaintext beside shared-key mode (AES-256-GCM) and
// mutual TLS, at 1 KiB and 64 KiB payloads, in the same run.
//
// Each iteration sends a batch asynchronously and ends only when the receiver's handler has
// counted every message, so the time per message is per delivered message. The TLS certificates
// are made in setup with the `openssl` command-line tool (a CA and one certificate whose SANs
// name both nodes); without openssl the TLS entries fail at setup.
import Benchmark
import Cohort
import CohortBenchSupport
import Foundation

/// A message with a body of a chosen size.
struct SizedMessage: ClusterMessage {
    static let messageType = MessageType(MessageType.firstApplicationID + 101)
    var body: [UInt8]
}

enum Mode: String, CaseIterable {
    case plaintext
    case sharedKey = "shared-key"
    case mutualTLS = "mutual TLS"
}

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]
    for size in [1024, 64 * 1024] {
        for mode in Mode.allCases {
            let bench = SecureLoopbackBench(mode: mode, size: size)
            Benchmark(
                "Loopback \(mode.rawValue) async \(size / 1024) KiB to 1 receiver",
                configuration: .init(metrics: metrics, warmupIterations: 2, scalingFactor: .kilo, maxDuration: .seconds(5), maxIterations: 200)
            ) { benchmark in
                try await bench.asyncBatch(benchmark)
            } setup: {
                try await bench.start()
            } teardown: {
                await bench.stop()
            }
        }
    }
}

final class SecureLoopbackBench: @unchecked Sendable {
    let mode: Mode
    let message: SizedMessage
    let counter = DeliveryCounter()
    private var cluster: RunningCluster?
    private var expected = 0
    private var directory: String?

    init(mode: Mode, size: Int) {
        self.mode = mode
        self.message = SizedMessage(body: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    }

    func start() async throws {
        let key = ClusterKey.generate()
        let tls = mode == .mutualTLS ? try makeCertificates() : nil
        func node(_ name: String, members: [Endpoint]) throws -> GroupChannel {
            var configuration = try benchConfiguration(name: name, members: members)
            switch mode {
            case .plaintext: break
            case .sharedKey: configuration.clusterKeys = [key]
            case .mutualTLS:
                configuration.tlsCertificateFile = tls?.certificate
                configuration.tlsKeyFile = tls?.key
                configuration.tlsCAFile = tls?.ca
            }
            return try GroupChannel(configuration: configuration, logger: quietLogger())
        }
        let receiver = try node("receiver-0", members: [])
        let counter = self.counter
        try receiver.onMessage(SizedMessage.self) { _, _ in counter.increment() }
        expected = counter.value
        cluster = try await RunningCluster(receivers: [receiver]) { endpoints in
            let sender = try node("sender", members: endpoints)
            try sender.register(SizedMessage.self)
            return sender
        }
    }

    func stop() async {
        await cluster?.stop()
        cluster = nil
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }

    func asyncBatch(_ benchmark: Benchmark) async throws {
        guard let sender = cluster?.sender else { throw BenchFailure("the cluster did not start") }
        for _ in benchmark.scaledIterations {
            let report = try await sender.send(message, options: .asynchronous)
            if !report.allSucceeded { throw BenchFailure("an asynchronous send was not queued: \(report)") }
        }
        expected += benchmark.scaledIterations.count
        let target = expected
        try await waitUntil("the receiver to handle \(target) messages", timeout: .seconds(60)) {
            counter.value >= target
        }
    }

    /// A CA and one certificate naming both nodes, in a temporary directory.
    private func makeCertificates() throws -> (certificate: String, key: String, ca: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-bench-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.directory = directory
        try """
            basicConstraints = critical, CA:FALSE
            keyUsage = critical, digitalSignature
            extendedKeyUsage = serverAuth, clientAuth
            subjectAltName = DNS:sender, DNS:receiver-0
            """.write(toFile: directory + "/node.ext", atomically: true, encoding: .utf8)
        let steps: [[String]] = [
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "2", "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
            ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=bench node"],
            ["x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "node.crt", "-days", "2", "-extfile", "node.ext"],
        ]
        for arguments in steps {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = arguments
            process.currentDirectoryURL = URL(fileURLWithPath: directory)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw BenchFailure("openssl \(arguments[0]) failed") }
        }
        return (directory + "/node.crt", directory + "/node.key", directory + "/ca.crt")
    }
}
