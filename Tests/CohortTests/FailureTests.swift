import Cohort
import CohortTestKit
import CohortTransportTCP
import NIOCore
import NIOPosix
import Testing

@Suite("Failures", .timeLimit(.minutes(2)))
struct FailureTests {
    /// A node that dies mid-traffic is removed, probe-verified, within the configured time; the
    /// living are never suspected; traffic to the survivors goes on.
    @Test(arguments: ["memory", "tcp"])
    func killedNodeIsDetectedAndLivingAreNotSuspected(transport: String) async throws {
        let network = InMemoryNetwork()
        let counts = Counts(3)
        let cluster = try await TestCluster.start(
            nodes: 3,
            transport: transport == "tcp" ? .tcp : .inMemory(network),
            prepare: { i, node in try node.onMessage(Ping.self) { _, _ in counts.bump(i) } }
        )
        let log1 = EventLog(cluster[0])
        let log2 = EventLog(cluster[1])
        // Steady traffic (bursts of 8 every 2 ms at most), not a flood: in a debug build on a
        // loaded 2-core CI machine a flood starves the heartbeats of every node in the process by
        // sheer CPU, which tests the machine, not detection mid-traffic.
        let sender = Task {
            var n = 0
            while !Task.isCancelled && n < 100_000 {
                _ = try? await cluster[0].send(Ping(n: n), options: .asynchronous)
                n += 1
                if n % 8 == 0 { try? await Task.sleep(for: .milliseconds(2)) }
            }
        }
        #expect(await eventually { counts[2] > 10 })
        let killedAt = ContinuousClock.now
        if transport == "tcp" {
            await (cluster[2].underlyingTransport as! TCPTransport).abort()
        } else {
            network.kill(cluster[2].localMember.endpoint)
        }
        #expect(await eventually(timeout: .seconds(10)) { log1.contains(isRemoved("node3")) && log2.contains(isRemoved("node3")) })
        sender.cancel()
        if let (_, at) = log1.first(isRemoved("node3")) {
            let detection = at - killedAt
            // How fast is the benchmarks' business (a crash on loopback is seen at once:
            // connection reset, probe refused); the figure is printed for the curious.
            print("failure detection (\(transport)): \(detection)")
            print("events: \(log1.timeline(since: killedAt))")
        }
        #expect(!log1.contains(isSuspected("node2")))
        #expect(!log2.contains(isSuspected("node1")))
        let report = try await cluster[0].send(Ping(n: -1), options: .processed)
        #expect(report.count == 1 && report.allSucceeded)
        await cluster.stop()
    }

    /// A silent member (no crash, no traffic) is reported missing, probed, and removed only after
    /// the failed probes; a member that answers the probe is kept.
    @Test func silentButReachableMemberIsNotRemoved() async throws {
        let network = InMemoryNetwork()
        let cluster = try await TestCluster.start(nodes: 2, transport: .inMemory(network), configure: { _, c in c.membership.missingAfter = .seconds(1) })
        let log = EventLog(cluster[0])
        // Cut heartbeats from node2 to node1 only: node1 stops hearing node2 but can still probe it.
        network.cut(cluster[1].localMember.endpoint, cluster[0].localMember.endpoint, bothWays: false)
        #expect(await eventually(timeout: .seconds(5)) { log.contains(isSuspected("node2")) })
        #expect(await eventually(timeout: .seconds(5)) { log.events.contains { if case .recovered(let m) = $0 { m.name == "node2" } else { false } } })
        #expect(!log.contains(isRemoved("node2")))
        #expect(cluster[0].view.members.count == 1)
        await cluster.stop()
    }

    /// A partitioned member (unreachable both ways) is removed after the confirmations, and comes
    /// back after the partition heals.
    @Test func partitionedMemberIsRemovedAndRejoinsAfterHeal() async throws {
        let network = InMemoryNetwork()
        let cluster = try await TestCluster.start(nodes: 2, transport: .inMemory(network), configure: { _, c in c.membership.missingAfter = .seconds(1) })
        let log = EventLog(cluster[0])
        let log2 = EventLog(cluster[1])
        let start = ContinuousClock.now
        let a = cluster[0].localMember.endpoint
        let b = cluster[1].localMember.endpoint
        network.cut(a, b)
        #expect(await eventually(timeout: .seconds(60)) { log.contains(isRemoved("node2")) })
        network.heal(a, b)
        let rejoined = await eventually(timeout: .seconds(60)) { cluster[0].view.members.count == 1 && cluster[1].view.members.count == 1 }
        #expect(rejoined, "views: \(cluster[0].view) / \(cluster[1].view); node1 events: \(log.timeline(since: start)); node2 events: \(log2.timeline(since: start))")
        await cluster.stop()
    }

    /// Garbage and oversized frames close only the offending connection; the node and the cluster
    /// carry on, and the bad frames are counted.
    @Test func malformedAndOversizedFramesCloseOnlyThatConnection() async throws {
        let counts = Counts(2)
        try await TestCluster.with(nodes: 2, transport: .tcp, configure: { _, c in c.wire.maxFrameSize = 64 * 1024 }, prepare: { i, node in
            try node.onMessage(Ping.self) { _, _ in counts.bump(i) }
        }) { cluster in
            let target = cluster[1].localMember.endpoint
            let transport = cluster[1].underlyingTransport as! TCPTransport
            let before = transport.malformedFrames

            // 1. Not Cohort at all.
            let reply1 = try await RawClient.exchange(target, send: ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
            #expect(reply1.closed)
            #expect(reply1.text.contains("magic"))
            // 2. A header announcing a frame above the cap: refused before reading the body.
            var huge = ByteBuffer()
            WireFormat.writeHeader(kind: .data, length: 10_000_000, into: &huge)
            let reply2 = try await RawClient.exchange(target, send: huge)
            #expect(reply2.closed)
            #expect(reply2.text.contains("cap"))
            // 3. A truncated hello (valid header, body cut short) followed by close.
            var truncated = ByteBuffer()
            WireFormat.writeHeader(kind: .hello, length: 3, into: &truncated)
            truncated.writeBytes([1, 2, 3])
            let reply3 = try await RawClient.exchange(target, send: truncated)
            #expect(reply3.closed)

            #expect(await eventually { transport.malformedFrames >= before + 3 })
            // The cluster is unaffected.
            let report = try await cluster[0].send(Ping(n: 1))
            #expect(report.allSucceeded)
            #expect(counts[1] == 1)
        }
    }

    @Test func portInUseIsAClearError() async throws {
        try await TestCluster.with(nodes: 1, transport: .tcp) { cluster in
            let taken = cluster[0].localMember.endpoint
            let node = try TestCluster.makeChannel(configuration: ClusterConfiguration(name: "dup", listen: taken), transport: .tcp)
            let error = await #expect(throws: CohortError.self) { try await node.run() }
            #expect(error?.code == .addressInUse)
            #expect(error?.message.contains("\(taken.port)") == true)
        }
    }
}

/// A plain TCP client for sending raw bytes at a node.
enum RawClient {
    struct Reply {
        var text: String
        var closed: Bool
    }

    final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        var received = ByteBuffer()
        let closed: EventLoopPromise<Void>
        init(closed: EventLoopPromise<Void>) { self.closed = closed }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            received.writeBuffer(&buffer)
        }
        func channelInactive(context: ChannelHandlerContext) { closed.succeed() }
    }

    static func exchange(_ endpoint: Endpoint, send bytes: ByteBuffer, timeout: Duration = .seconds(5)) async throws -> Reply {
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.next()
        let closed = loop.makePromise(of: Void.self)
        let collector = Collector(closed: closed)
        let channel = try await ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: endpoint.host, port: endpoint.port).get()
        try await channel.writeAndFlush(bytes)
        let timer = loop.scheduleTask(in: .seconds(Int64(timeout.components.seconds))) { channel.close(promise: nil) }
        try? await closed.futureResult.get()
        timer.cancel()
        let received = try await loop.submit { collector.received }.get()
        // Skip the 12-byte header of an error frame, keep the text.
        let text = String(decoding: received.readableBytesView, as: UTF8.self)
        return Reply(text: text, closed: true)
    }
}
