import Cohort
import CohortCodecBinary
import CohortTestKit
import CohortTransportTCP
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import CohortDiscoveryMulticast

/// Multicast discovery with real sockets inside the test process, kept on loopback: interface
/// 127.0.0.1 and TTL 0 (nothing leaves the host), a random group and port per test.
@Suite("Multicast discovery over loopback (in process)", .serialized, .timeLimit(.minutes(2)))
struct MulticastLoopbackTests {
    static func configuration(frequency: Duration = .milliseconds(100), dropTime: Duration = .milliseconds(600)) -> MulticastDiscoveryConfiguration {
        MulticastDiscoveryConfiguration(
            address: "239.255.\(Int.random(in: 1...254)).\(Int.random(in: 1...254))",
            port: freePorts(1, type: Int32(SOCK_DGRAM.rawValue))[0],
            frequency: frequency,
            dropTime: dropTime,
            ttl: 0,
            interface: "127.0.0.1",
            recoveryBackoff: .milliseconds(50)
        )
    }

    static func member(_ name: String, port: Int, domain: String) -> Member {
        Member(name: name, endpoint: Endpoint(host: "127.0.0.1", port: port), domain: domain, startTime: Int64(port))
    }

    /// One provider running in a task, collecting its events.
    final class Running: Sendable {
        let provider: MulticastDiscovery
        let local: Member
        let events = NIOLockedValueBox<[(DiscoveryEvent, ContinuousClock.Instant)]>([])
        let task: NIOLockedValueBox<Task<Void, Never>?> = NIOLockedValueBox(nil)

        init(_ configuration: MulticastDiscoveryConfiguration, _ local: Member) {
            provider = MulticastDiscovery(configuration: configuration)
            self.local = local
            let events = self.events
            let provider = self.provider
            task.withLockedValue {
                $0 = Task { try? await provider.run(local: local) { event in events.withLockedValue { $0.append((event, .now)) } } }
            }
        }

        func heard(_ member: Member) -> Bool { events.withLockedValue { $0.contains { $0.0 == .alive(member) } } }
        func gone(_ member: Member) -> ContinuousClock.Instant? { events.withLockedValue { $0.first { $0.0 == .gone(member.id) }?.1 } }
        func aliveCount(_ member: Member) -> Int { events.withLockedValue { $0.filter { $0.0 == .alive(member) }.count } }

        /// Stops without a leave datagram (as a crash would).
        func crash() async {
            let task = self.task.withLockedValue { $0 }
            task?.cancel()
            await task?.value
        }

        /// Stops and announces the leave.
        func stop() async {
            await crash()
            await provider.leave(local: local)
        }
    }

    @Test func membersHearEachOtherAndIgnoreEverythingElseCounted() async throws {
        let configuration = Self.configuration()
        let domain = "mc-\(Int.random(in: 0...1_000_000))"
        let a = Running(configuration, Self.member("a", port: 40001, domain: domain))
        let b = Running(configuration, Self.member("b", port: 40002, domain: domain))
        defer { Task { await a.crash(); await b.crash() } }
        #expect(await eventually(timeout: .seconds(5)) { a.heard(b.local) && b.heard(a.local) })

        // Garbage, a newer format, another domain, a truncated record: ignored, counted.
        let sender = try await RawMulticast.open()
        let group = try SocketAddress(ipAddress: configuration.address, port: configuration.port)
        var newer = try MulticastDatagram.encode(.alive, member: Self.member("n", port: 40003, domain: domain))
        newer.setInteger(UInt8(2), at: 4)
        let foreign = try MulticastDatagram.encode(.alive, member: Self.member("f", port: 40004, domain: "other"))
        var truncated = try MulticastDatagram.encode(.alive, member: Self.member("t", port: 40005, domain: domain))
        truncated.moveWriterIndex(to: truncated.writerIndex - 3)
        let before = a.provider.counters
        for datagram in [ByteBuffer(string: "not a cohort datagram"), newer, foreign, truncated, ByteBuffer()] {
            try await sender.writeAndFlush(AddressedEnvelope(remoteAddress: group, data: datagram))
        }
        let counted = await eventually(timeout: .seconds(5)) {
            let now = a.provider.counters
            return now.malformed >= before.malformed + 3 && now.incompatibleVersion >= before.incompatibleVersion + 1
                && now.foreignDomain >= before.foreignDomain + 1
        }
        try await sender.close()
        let counters = a.provider.counters
        #expect(counted, "\(counters)")
        #expect(counters.own > 0, "own datagrams are looped back and ignored: \(counters)")
        #expect(counters.sent > 0 && counters.alive > 0)
        #expect(a.provider.heardMembers == [b.local], "only b is heard: \(a.provider.heardMembers)")
        #expect(!a.events.withLockedValue { $0.contains { if case .alive(let m) = $0.0 { m.domain != domain } else { false } } })
    }

    @Test func leaveIsReportedAtOnceAndSilenceAfterTheDropTime() async throws {
        let configuration = Self.configuration()
        let domain = "mc-\(Int.random(in: 0...1_000_000))"
        let a = Running(configuration, Self.member("a", port: 40011, domain: domain))
        let b = Running(configuration, Self.member("b", port: 40012, domain: domain))
        let c = Running(configuration, Self.member("c", port: 40013, domain: domain))
        defer { Task { await a.crash() } }
        #expect(await eventually(timeout: .seconds(5)) { a.heard(b.local) && a.heard(c.local) })

        let leftAt = ContinuousClock.now
        await b.stop()
        #expect(await eventually(timeout: .seconds(2)) { a.gone(b.local) != nil })
        if let at = a.gone(b.local) {
            print("measured [in-process loopback] leave datagram → gone: \((at - leftAt).ms) ms")
            #expect(at - leftAt < configuration.dropTime, "a leave must not wait for the drop time")
        }

        let crashedAt = ContinuousClock.now
        await c.crash()
        #expect(await eventually(timeout: .seconds(5)) { a.gone(c.local) != nil })
        if let at = a.gone(c.local) {
            let silence = at - crashedAt
            print("measured [in-process loopback] silence → gone (dropTime \(configuration.dropTime.ms) ms): \(silence.ms) ms")
            #expect(silence >= configuration.dropTime - configuration.frequency, "gone before the drop time: \(silence)")
            #expect(silence < configuration.dropTime + .milliseconds(1000), "gone late: \(silence)")
        }
    }

    @Test func socketErrorsReopenTheSocketAndDiscoveryGoesOn() async throws {
        let configuration = Self.configuration()
        let domain = "mc-\(Int.random(in: 0...1_000_000))"
        let a = Running(configuration, Self.member("a", port: 40021, domain: domain))
        let b = Running(configuration, Self.member("b", port: 40022, domain: domain))
        defer { Task { await a.crash(); await b.crash() } }
        #expect(await eventually(timeout: .seconds(5)) { a.heard(b.local) })
        for round in 1...3 {
            #expect(await eventually(timeout: .seconds(5)) { a.provider.isSocketHealthyForTesting })
            a.provider.breakSocketForTesting()
            #expect(await eventually(timeout: .seconds(5)) { a.provider.counters.reopens >= round }, "\(a.provider.counters)")
        }
        let heardBefore = a.aliveCount(b.local)
        #expect(await eventually(timeout: .seconds(5)) { a.aliveCount(b.local) > heardBefore + 2 }, "a hears b again after re-opening")
        #expect(a.provider.counters.socketErrors >= 3)
    }

    @Test func passesTheDiscoveryConformanceSuite() async throws {
        let configuration = Self.configuration()
        let domain = "mc-\(Int.random(in: 0...1_000_000))"
        let peer = Running(configuration, Self.member("peer", port: 40031, domain: domain))
        defer { Task { await peer.crash() } }
        let local = Self.member("local", port: 40032, domain: domain)
        let events = try await DiscoveryConformance.run(name: "multicast", MulticastDiscovery(configuration: configuration), local: local) { events in
            events.contains(.alive(peer.local)) ? nil : "the peer was not reported alive: \(events)"
        }
        #expect(!events.isEmpty)
    }

    /// GroupChannels with multicast discovery and no member list form a cluster, and a node
    /// whose sockets all close (a crash) is removed, verified by a probe.
    @Test func channelsFormAClusterAndACrashedNodeIsRemoved() async throws {
        let configuration = Self.configuration(frequency: .milliseconds(500), dropTime: .milliseconds(3000))
        let domain = "mc-\(Int.random(in: 0...1_000_000))"
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical
        var channels: [GroupChannel] = []
        var tasks: [Task<Void, any Error>] = []
        for i in 1...3 {
            let config = ClusterConfiguration(name: "m\(i)", listen: Endpoint(host: "127.0.0.1", port: 0), domain: domain)
            let channel = GroupChannel(configuration: config, transport: TCPTransport(settings: config.wire), codec: BinaryCodec(), discovery: MulticastDiscovery(configuration: configuration), logger: quiet)
            channels.append(channel)
            tasks.append(Task { try await channel.run() })
            _ = try await channel.waitUntilRunning()
        }
        defer { for channel in channels { channel.shutdown() } }
        let started = ContinuousClock.now
        let meshed = await eventually(timeout: .seconds(10)) { channels.allSatisfy { $0.view.members.count == 2 } }
        try #require(meshed, "\(channels.map { "\($0.view)" })")
        let mesh = ContinuousClock.now - started
        print("measured [in-process loopback] channels: last started → full mesh of 3: \(mesh.ms) ms")
        #expect(mesh < .seconds(2))

        let removedAt = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
        let stream = channels[0].membershipEvents()
        let watcher = Task {
            for await event in stream {
                if case .removed(let member) = event, member.name == "m3" { removedAt.withLockedValue { $0 = .now } }
            }
        }
        defer { watcher.cancel() }
        let crashedAt = ContinuousClock.now
        await (channels[2].underlyingTransport as! TCPTransport).abort()
        #expect(await eventually(timeout: .seconds(10)) { removedAt.withLockedValue { $0 } != nil })
        let detection = try #require(removedAt.withLockedValue { $0 }) - crashedAt
        print("measured [in-process loopback] crashed channel removed: \(detection.ms) ms")
        #expect(detection < configuration.dropTime + .milliseconds(2200))
        channels[0].shutdown()
        channels[1].shutdown()
        channels[2].shutdown()
        for task in tasks { _ = try? await task.value }
    }
}

/// A plain UDP socket that sends to a multicast group on loopback (TTL 0).
enum RawMulticast {
    static func open() async throws -> any Channel {
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let options = channel as! any SocketOptionProvider
        try await options.setIPMulticastTTL(0).get()
        try await options.setIPMulticastLoop(1).get()
        // Not `in_addr()` (see `inAddress(of:)`): its initializer's module depends on load order.
        var raw: UInt32 = 0
        inet_pton(AF_INET, "127.0.0.1", &raw)
        try await options.setIPMulticastIF(unsafeBitCast(raw, to: in_addr.self)).get()
        return channel
    }
}
