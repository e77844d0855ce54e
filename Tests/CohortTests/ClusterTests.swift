import Cohort
import CohortCodecBinary
import CohortCodecJSON
import CohortTestKit
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// The same scenarios over the in-memory network and over real loopback TCP.
@Suite("Cluster", .timeLimit(.minutes(2)))
struct ClusterTests {
    static let transports: [String] = ["memory", "tcp"]

    func kind(_ name: String) -> TestCluster.TransportKind {
        name == "tcp" ? .tcp : .inMemory(InMemoryNetwork())
    }

    @Test(arguments: transports)
    func everySendOptionReachesEveryMember(transport: String) async throws {
        let counts = Counts(3)
        try await TestCluster.with(nodes: 3, transport: kind(transport), prepare: { i, node in
            try node.onMessage(Ping.self) { _, _ in counts.bump(i) }
        }) { cluster in
            // processed: the handlers have run when send returns.
            let processed = try await cluster[0].send(Ping(n: 1), options: .processed)
            #expect(processed.allSucceeded)
            #expect(processed.count == 2)
            #expect(counts[1] == 1 && counts[2] == 1)
            // receipt: delivered; handlers run soon after.
            let receipt = try await cluster[0].send(Ping(n: 2), options: .receipt)
            #expect(receipt.outcomes.allSatisfy { $0.outcome == .delivered })
            // asynchronous: queued at once, delivered eventually.
            let async = try await cluster[0].send(Ping(n: 3), options: .asynchronous)
            #expect(async.outcomes.allSatisfy { $0.outcome == .queued })
            #expect(await eventually { counts[1] == 3 && counts[2] == 3 })
            #expect(counts[0] == 0)
        }
    }

    /// With `handlersOnEventLoop` (the default) a TCP node runs handlers on the event loop that
    /// read the message; with it off, on the global pool. Both deliver and acknowledge.
    @Test(arguments: [true, false])
    func handlersRunWhereTheSettingSays(onLoop: Bool) async throws {
        let onEventLoop = NIOLockedValueBox<[Bool]>([])
        try await TestCluster.with(nodes: 2, transport: .tcp, configure: { _, configuration in
            configuration.wire.handlersOnEventLoop = onLoop
        }, prepare: { _, node in
            try node.onMessage(Ping.self) { _, _ in
                onEventLoop.withLockedValue { $0.append(MultiThreadedEventLoopGroup.currentEventLoop != nil) }
            }
        }) { cluster in
            for n in 0..<3 {
                let report = try await cluster[0].send(Ping(n: n), options: .processed)
                #expect(report.allSucceeded && report.count == 1)
            }
            #expect(onEventLoop.withLockedValue { $0 } == [onLoop, onLoop, onLoop])
        }
    }

    @Test(arguments: transports)
    func throwingReceiverIsReportedForThatMemberOnly(transport: String) async throws {
        struct Refused: Error, CustomStringConvertible { var description: String { "refused by node3" } }
        try await TestCluster.with(nodes: 3, transport: kind(transport), prepare: { i, node in
            try node.onMessage(Boom.self) { _, _ in if i == 2 { throw Refused() } }
        }) { cluster in
            let report = try await cluster[0].send(Boom(), options: .processed)
            let node2 = cluster[1].localMember.id
            let node3 = cluster[2].localMember.id
            #expect(report.outcome(for: node2) == .delivered)
            #expect(report.outcome(for: node3) == .remoteFailure("refused by node3"))
            #expect(!report.allSucceeded)
        }
    }

    @Test(arguments: transports)
    func messagesWithoutHandlerAreRejectedNotSwallowed(transport: String) async throws {
        try await TestCluster.with(nodes: 2, transport: kind(transport), prepare: { i, node in
            if i == 0 { try node.register(Ping.self) }
        }) { cluster in
            let report = try await cluster[0].send(Ping(n: 1))
            guard case .rejected(let why) = report.outcomes.first?.outcome else {
                Issue.record("expected a rejection, got \(report)")
                return
            }
            #expect(why.contains("2001"))
        }
    }

    @Test(arguments: transports)
    func sendToChosenMembersAndUnknownIds(transport: String) async throws {
        let counts = Counts(3)
        try await TestCluster.with(nodes: 3, transport: kind(transport), prepare: { i, node in
            try node.onMessage(Ping.self) { _, _ in counts.bump(i) }
        }) { cluster in
            let stranger = MemberID.random()
            let report = try await cluster[0].send(Ping(n: 1), to: .members([cluster[2].localMember.id, stranger]))
            #expect(report.outcome(for: cluster[2].localMember.id) == .delivered)
            #expect(report.outcome(for: stranger) == .notAMember)
            #expect(counts[1] == 0 && counts[2] == 1)
        }
    }

    @Test(arguments: transports)
    func gracefulLeaveIsSeenAtOnceAsLeft(transport: String) async throws {
        let cluster = try await TestCluster.start(nodes: 3, transport: kind(transport))
        let log = EventLog(cluster[0])
        await cluster.stop(2)
        #expect(await eventually(timeout: .seconds(5)) { log.contains(isLeft("node3")) })
        #expect(!log.contains(isRemoved("node3")))
        #expect(!log.contains(isSuspected("node3")))
        #expect(cluster[0].view.members.map(\.name) == ["node2"])
        await cluster.stop()
    }

    @Test func orderIsKeptPerSender() async throws {
        let received = NIOLockedValueBox<[Int]>([])
        try await TestCluster.with(nodes: 2, transport: .tcp, prepare: { i, node in
            try node.onMessage(Ping.self) { ping, _ in received.withLockedValue { $0.append(ping.n) } }
        }) { cluster in
            for n in 0..<500 { _ = try await cluster[0].send(Ping(n: n), options: .asynchronous) }
            _ = try await cluster[0].send(Ping(n: 500), options: .processed)
            #expect(received.withLockedValue { $0 } == Array(0...500))
        }
    }

    @Test func bothCodecsInteroperate() async throws {
        let received = NIOLockedValueBox<[String]>([])
        try await TestCluster.with(nodes: 2, transport: .tcp, configure: { i, config in
            config.codec = i == 0 ? "json" : "binary"
        }, prepare: { i, node in
            try node.onMessage(Ping.self) { ping, sender in received.withLockedValue { $0.append("\(sender.name)->\(ping.note)") } }
        }) { cluster in
            // node1 sends JSON, node2 binary; each can read the other's codec.
            let jsonNode = try TestCluster.makeChannel(configuration: cluster[0].configuration, transport: .tcp, codec: JSONCodec())
            _ = jsonNode
            let a = try await cluster[0].send(Ping(n: 1, note: "binary-default"))
            #expect(a.allSucceeded)
            let b = try await cluster[1].send(Ping(n: 2, note: "from-2"))
            #expect(b.allSucceeded)
            #expect(Set(received.withLockedValue { $0 }) == ["node1->binary-default", "node2->from-2"])
        }
    }

    @Test func jsonClusterWorksEndToEnd() async throws {
        let counts = Counts(3)
        try await TestCluster.with(nodes: 3, transport: .tcp, codec: JSONCodec(), prepare: { i, node in
            try node.onMessage(Ping.self) { _, _ in counts.bump(i) }
        }) { cluster in
            let report = try await cluster[1].send(Ping(n: 7, note: "json"))
            #expect(report.allSucceeded)
            #expect(counts[0] == 1 && counts[2] == 1)
        }
    }

    @Test func unknownCodecIsAClearRejection() async throws {
        struct Odd: MessageCodec {
            var id: CodecID { CodecID(rawValue: 77) }
            var name: String { "odd" }
            func encode<Value: Encodable>(_ value: Value, into buffer: inout ByteBuffer) throws { try BinaryCodec().encode(value, into: &buffer) }
            func decode<Value: Decodable>(_ type: Value.Type, from buffer: inout ByteBuffer) throws -> Value { try BinaryCodec().decode(type, from: &buffer) }
        }
        let network = InMemoryNetwork()
        try await TestCluster.with(nodes: 2, transport: .inMemory(network), prepare: { _, node in
            try node.onMessage(Ping.self) { _, _ in }
        }) { cluster in
            let odd = try TestCluster.makeChannel(
                configuration: ClusterConfiguration(name: "odd", listen: Endpoint(host: "127.0.0.1", port: 0), members: [cluster[0].localMember.endpoint, cluster[1].localMember.endpoint]),
                transport: .inMemory(network), codec: Odd()
            )
            try odd.register(Ping.self)
            let task = Task { try await odd.run() }
            _ = try await odd.waitUntilRunning()
            #expect(await eventually { odd.view.members.count == 2 })
            let report = try await odd.send(Ping(n: 1))
            #expect(report.outcomes.count == 2)
            for outcome in report.outcomes {
                guard case .rejected(let why) = outcome.outcome else {
                    Issue.record("expected rejection, got \(outcome.outcome)")
                    continue
                }
                #expect(why.contains("codec#77"))
            }
            odd.shutdown()
            _ = try? await task.value
        }
    }

    @Test func sendBeforeRunOrOversizedThrowsClearly() async throws {
        let node = try TestCluster.makeChannel(configuration: ClusterConfiguration(name: "lonely", listen: Endpoint(host: "127.0.0.1", port: 0)), transport: .tcp)
        await #expect(throws: CohortError(.notRunning, "")) { try await node.send(Ping(n: 1)) }
        var config = ClusterConfiguration(name: "small", listen: Endpoint(host: "127.0.0.1", port: 0))
        config.wire.maxFrameSize = 4096
        try await TestCluster.with(nodes: 2, transport: .tcp, configure: { _, c in c.wire.maxFrameSize = 4096 }) { cluster in
            let error = await #expect(throws: CohortError.self) {
                try await cluster[0].send(BigBlob(bytes: Array(repeating: 1, count: 10_000)))
            }
            #expect(error?.code == .frameTooLarge)
            #expect(error?.message.contains("4096") == true)
        }
    }
}
