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
    /// A heartbeat every 100 ms, and a drop time far above it, so that a loaded machine's late
    /// heartbeat never drops a live member.
    static func configuration(frequency: Duration = .milliseconds(100), dropTime: Duration = .seconds(3)) -> MulticastDiscoveryConfiguration {
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
        /// When a member was first reported gone after an instant.
        func gone(_ member: Member, after instant: ContinuousClock.Instant) -> ContinuousClock.Instant? {
            events.withLockedValue { $0.first { $0.0 == .gone(member.id) && $0.1 >= instant }?.1 }
        }
        /// When the last heartbeat of a member before an instant was reported.
        func lastAlive(_ member: Member, before instant: ContinuousClock.Instant) -> ContinuousClock.Instant? {
            events.withLockedValue { $0.last { $0.0 == .alive(member) && $0.1 <= instant }?.1 }
        }
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
        // Nothing here waits for silence: a drop time longer than the test.
        let configuration = Self.configuration(dropTime: .seconds(600))
        let domain = "mc-\(Int.random(in: 0...1_000_000))"
        let a = Running(configuration, Self.member("a", port: 40001, domain: domain))
        let b = Running(configuration, Self.member("b", port: 40002, domain: domain))
        defer { Task { await a.crash(); await b.crash() } }
        #expect(await eventually(timeout: .seconds(30)) { a.heard(b.local) && b.heard(a.local) })

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
        let counted = await eventually(timeout: .seconds(30)) {
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

    /// A leave datagram makes a member gone at once. The drop time is longer than the test, so
    /// nothing but the leave can (a busy machine's late heartbeats cannot).
    @Test func leaveIsReportedWithoutWaitingForTheDropTime() async throws {
        let configuration = Self.configuration(dropTime: .seconds(600))
        let domain = "mc-\(Int.random(in: 0...1_000_000))"
        let a = Running(configuration, Self.member("a", port: 40011, domain: domain))
        let b = Running(configuration, Self.member("b", port: 40012, domain: domain))
        defer { Task { await a.crash() } }
        #expect(await eventually(timeout: .seconds(30)) { a.heard(b.local) })

        let leftAt = ContinuousClock.now
        await b.stop()
        #expect(await eventually(timeout: .seconds(30)) { a.gone(b.local) != nil })
        if let at = a.gone(b.local) {
            print("measured [in-process loopback] leave datagram → gone: \((at - leftAt).ms) ms")
        }
        #expect(a.provider.counters.leaves >= 1, "\(a.provider.counters)")
        #expect(a.provider.counters.dropped == 0, "\(a.provider.counters)")
    }

    /// A member that goes silent (a crash: no leave datagram) is gone after the drop time,
    /// counted from the last heartbeat heard — never sooner.
    @Test func silenceIsReportedAfterTheDropTime() async throws {
        let configuration = Self.configuration()
        let domain = "mc-\(Int.random(in: 0...1_000_000))"
        let a = Running(configuration, Self.member("a", port: 40013, domain: domain))
        let c = Running(configuration, Self.member("c", port: 40014, domain: domain))
        defer { Task { await a.crash() } }
        #expect(await eventually(timeout: .seconds(30)) { a.heard(c.local) })

        let crashedAt = ContinuousClock.now
        await c.crash()
        #expect(await eventually(timeout: .seconds(30)) { a.gone(c.local, after: crashedAt) != nil })
        if let at = a.gone(c.local, after: crashedAt) {
            print("measured [in-process loopback] crash → gone (dropTime \(configuration.dropTime.ms) ms): \((at - crashedAt).ms) ms")
            // The drop time runs from the last heartbeat heard, which may be well before the crash
            // when the machine is busy: never gone sooner than that. (The instants here are taken
            // when the events are reported, a little after the table read its clock: 500 ms of
            // slack for a busy machine, far below the 3 s drop time.)
            let lastHeard = try #require(a.lastAlive(c.local, before: at))
            let silence = at - lastHeard
            #expect(silence >= configuration.dropTime - .milliseconds(500), "gone \(silence) after the last heartbeat, before the drop time")
            #expect(a.provider.counters.dropped >= 1, "\(a.provider.counters)")
        }
    }

    @Test func socketErrorsReopenTheSocketAndDiscoveryGoesOn() async throws {
        // Nothing here waits for silence: a drop time longer than the test.
        let configuration = Self.configuration(dropTime: .seconds(600))
        let domain = "mc-\(Int.random(in: 0...1_000_000))"
        let a = Running(configuration, Self.member("a", port: 40021, domain: domain))
        let b = Running(configuration, Self.member("b", port: 40022, domain: domain))
        defer { Task { await a.crash(); await b.crash() } }
        #expect(await eventually(timeout: .seconds(30)) { a.heard(b.local) })
        for round in 1...3 {
            #expect(await eventually(timeout: .seconds(30)) { a.provider.isSocketHealthyForTesting })
            a.provider.breakSocketForTesting()
            #expect(await eventually(timeout: .seconds(30)) { a.provider.counters.reopens >= round }, "\(a.provider.counters)")
        }
        let heardBefore = a.aliveCount(b.local)
        #expect(await eventually(timeout: .seconds(30)) { a.aliveCount(b.local) > heardBefore + 2 }, "a hears b again after re-opening")
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
        let meshed = await eventually(timeout: .seconds(30)) { channels.allSatisfy { $0.view.members.count == 2 } }
        try #require(meshed, "\(channels.map { "\($0.view)" })")
        let mesh = ContinuousClock.now - started
        print("measured [in-process loopback] channels: last started → full mesh of 3: \(mesh.ms) ms")

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
        #expect(await eventually(timeout: .seconds(30)) { removedAt.withLockedValue { $0 } != nil })
        let detection = try #require(removedAt.withLockedValue { $0 }) - crashedAt
        print("measured [in-process loopback] crashed channel removed: \(detection.ms) ms")
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
        guard let loopback = ipv4Bits(of: try SocketAddress(ipAddress: "127.0.0.1", port: 0)) else {
            throw CohortError(.internal, "127.0.0.1 is not an IPv4 address")
        }
        try await options.unsafeSetSocketOption(level: .ip, name: .ip_multicast_if, value: loopback).get()
        return channel
    }
}
