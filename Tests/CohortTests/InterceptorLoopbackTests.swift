import Cohort
import CohortTestKit
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// Order, Fragmentation, Compression and Throughput, each alone and in the full stack, over
/// loopback TCP.
@Suite("Interceptors over loopback TCP", .timeLimit(.minutes(3)))
struct InterceptorLoopbackTests {
    static let base = ["dispatch", "failureDetector", "domainFilter"]
    /// Generous: the tests assert what happened, not how fast (the machine may be loaded).
    static let patience = Duration.seconds(300)

    static func options(_ guarantee: DeliveryGuarantee, ordered: Bool = false) -> SendOptions {
        var options = SendOptions(guarantee: guarantee, timeout: patience)
        options.ordered = ordered
        return options
    }

    /// `names` inserted into the default stack at their place.
    static func stack(_ names: [String]) -> [String] {
        InterceptorStack.recommended.filter { base.contains($0) || names.contains($0) }
    }

    /// Bytes that do not compress (a fixed pseudo-random sequence).
    static func noise(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
        var x = seed
        var bytes = [UInt8](repeating: 0, count: count)
        for i in bytes.indices {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            bytes[i] = UInt8(truncatingIfNeeded: x)
        }
        return bytes
    }

    @Test func orderedMessagesArriveInSendOrder() async throws {
        let seen = NIOLockedValueBox<[Int]>([])
        try await TestCluster.with(nodes: 2, transport: .tcp, configure: { _, c in c.interceptors = Self.stack(["order"]) }, prepare: { i, node in
            if i == 1 { try node.onMessage(Ping.self) { ping, _ in seen.withLockedValue { $0.append(ping.n) } } }
        }) { cluster in
            var options = Self.options(.asynchronous, ordered: true)
            for n in 1...300 {
                options.guarantee = n % 10 == 0 ? .processed : .asynchronous
                let report = try await cluster[0].send(Ping(n: n), options: options)
                #expect(report.allSucceeded)
            }
            #expect(await eventually { seen.withLockedValue { $0.count } == 300 })
            #expect(seen.withLockedValue { $0 } == Array(1...300))
            let order = try #require(cluster[1].interceptors.first { $0 is Order } as? Order)
            #expect(order.gapsReported == 0)
            #expect(order.held == 0)
        }
    }

    @Test func aMessageAboveTheFrameCapIsFragmentedAndReassembled() async throws {
        let received = NIOLockedValueBox<[UInt8]?>(nil)
        try await TestCluster.with(nodes: 2, transport: .tcp, configure: { _, c in
            c.interceptors = Self.stack(["fragmentation"])
            c.wire.maxFrameSize = 1024 * 1024
            c.fragmentation.fragmentSize = 256 * 1024
        }, prepare: { i, node in
            if i == 1 { try node.onMessage(BigBlob.self) { blob, _ in received.withLockedValue { $0 = blob.bytes } } }
        }) { cluster in
            let bytes = Self.noise(5 * 1024 * 1024 + 17)
            for options in [Self.options(.processed), Self.options(.receipt), Self.options(.asynchronous)] {
                received.withLockedValue { $0 = nil }
                let report = try await cluster[0].send(BigBlob(bytes: bytes), options: options)
                #expect(report.allSucceeded, "\(options.guarantee): \(report)")
                #expect(await eventually { received.withLockedValue { $0 } != nil })
                #expect(received.withLockedValue { $0 } == bytes)
            }
            let stage = try #require(cluster[1].interceptors.first { $0 is Fragmentation } as? Fragmentation)
            #expect(stage.statistics.completed == 3)
            #expect(stage.statistics.pendingBytes == 0)
        }
    }

    @Test func aFragmentedMessageIsAcknowledgedWhenWholeAndHandled() async throws {
        try await TestCluster.with(nodes: 2, transport: .tcp, configure: { _, c in
            c.interceptors = Self.stack(["fragmentation"])
            c.fragmentation.fragmentSize = 64 * 1024
        }, prepare: { i, node in
            if i == 1 { try node.onMessage(BigBlob.self) { _, _ in throw CohortError(.internal, "handler refuses") } }
        }) { cluster in
            let report = try await cluster[0].send(BigBlob(bytes: Self.noise(300 * 1024)), options: Self.options(.processed))
            guard case .remoteFailure(let why)? = report.outcomes.first?.outcome else {
                Issue.record("expected the handler's failure for the whole message, got \(report)")
                return
            }
            #expect(why.contains("handler refuses"))
        }
    }

    @Test func aNodeWithoutFragmentationRefusesFragmentsNamingTheStage() async throws {
        try await TestCluster.with(nodes: 2, transport: .tcp, configure: { i, c in
            c.interceptors = i == 0 ? Self.stack(["fragmentation"]) : Self.base
            c.fragmentation.fragmentSize = 64 * 1024
        }, prepare: { _, node in try node.register(BigBlob.self) }) { cluster in
            let report = try await cluster[0].send(BigBlob(bytes: Self.noise(200 * 1024)), options: Self.options(.processed))
            guard case .rejected(let why)? = report.outcomes.first?.outcome else {
                Issue.record("expected a rejection, got \(report)")
                return
            }
            #expect(why.contains("fragmentation"))
        }
    }

    /// Compression is the sender's choice: a node without the stage still reads compressed
    /// messages.
    @Test func compressedMessagesReachNodesWithAndWithoutTheStage() async throws {
        let received = NIOLockedValueBox<[Int: [UInt8]]>([:])
        try await TestCluster.with(nodes: 3, transport: .tcp, configure: { i, c in
            c.interceptors = i == 2 ? Self.base : Self.stack(["compression"])
        }, prepare: { i, node in
            try node.onMessage(BigBlob.self) { blob, _ in received.withLockedValue { $0[i] = blob.bytes } }
        }) { cluster in
            let bytes = [UInt8](repeating: 7, count: 512 * 1024)
            let report = try await cluster[0].send(BigBlob(bytes: bytes), options: Self.options(.processed))
            #expect(report.allSucceeded, "\(report)")
            #expect(received.withLockedValue { $0[1] } == bytes)
            #expect(received.withLockedValue { $0[2] } == bytes)
        }
    }

    /// A decompression bomb sent over TCP is refused by the receiver with a clear error, and its
    /// handler never runs.
    @Test func aDecompressionBombIsRefusedAndCounted() async throws {
        let handled = NIOLockedValueBox(0)
        try await TestCluster.with(nodes: 2, transport: .tcp, configure: { i, c in
            c.interceptors = Self.stack(["compression"])
            c.compression.maxDecompressedSize = i == 0 ? 256 * 1024 * 1024 : 1024 * 1024
        }, prepare: { i, node in
            try node.onMessage(BigBlob.self) { _, _ in handled.withLockedValue { $0 += 1 } }
        }) { cluster in
            // 12 MiB of zeros: a 12 KiB frame that would become 12 MiB.
            let report = try await cluster[0].send(BigBlob(bytes: [UInt8](repeating: 0, count: 12 * 1024 * 1024)), options: Self.options(.processed))
            guard case .rejected(let why)? = report.outcomes.first?.outcome else {
                Issue.record("expected a rejection, got \(report)")
                return
            }
            #expect(why.contains("decompression bomb"))
            #expect(why.contains("maxDecompressedSize"))
            #expect(handled.withLockedValue { $0 } == 0)
            // The connection stays usable.
            #expect(try await cluster[0].send(BigBlob(bytes: [1, 2, 3]), options: Self.options(.processed)).allSucceeded)
        }
    }

    @Test func theFullStackCarriesSmallLargeCompressibleAndOrderedMessages() async throws {
        let seen = NIOLockedValueBox<[Int: [Int]]>([:])
        let blobs = NIOLockedValueBox<[Int: [Int]]>([:])
        try await TestCluster.with(nodes: 3, transport: .tcp, configure: { _, c in
            c.interceptors = InterceptorStack.recommended
            c.wire.maxFrameSize = 1024 * 1024
            c.fragmentation.fragmentSize = 128 * 1024
        }, prepare: { i, node in
            try node.onMessage(Ping.self) { ping, _ in seen.withLockedValue { $0[i, default: []].append(ping.n) } }
            try node.onMessage(BigBlob.self) { blob, _ in blobs.withLockedValue { $0[i, default: []].append(blob.bytes.count) } }
        }) { cluster in
            let ordered = Self.options(.asynchronous, ordered: true)
            for n in 1...100 {
                _ = try await cluster[0].send(Ping(n: n, note: String(repeating: "x", count: n * 20)), options: ordered)
            }
            let bigOrdered = Self.options(.processed, ordered: true)
            let noise = Self.noise(3 * 1024 * 1024)
            #expect(try await cluster[0].send(BigBlob(bytes: noise), options: bigOrdered).allSucceeded)
            #expect(try await cluster[0].send(BigBlob(bytes: [UInt8](repeating: 1, count: 4 * 1024 * 1024)), options: Self.options(.processed)).allSucceeded)
            #expect(try await cluster[0].send(Ping(n: 101), options: ordered).allSucceeded)
            #expect(await eventually { seen.withLockedValue { $0[1]?.count == 101 && $0[2]?.count == 101 } })
            #expect(seen.withLockedValue { $0[1] } == Array(1...101))
            #expect(seen.withLockedValue { $0[2] } == Array(1...101))
            #expect(blobs.withLockedValue { $0[1] } == [noise.count, 4 * 1024 * 1024])
            let throughput = try #require(cluster[0].interceptors.first { $0 is Throughput } as? Throughput)
            #expect(throughput.statistics.sentMessages == 103 * 2)
            #expect(throughput.statistics.failures == 0)
        }
    }
}
