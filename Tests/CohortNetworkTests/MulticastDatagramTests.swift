import Cohort
import CohortDiscoveryMulticast
import CohortTestKit
import NIOCore
import Testing

/// The datagram format, the pure peer table and the settings of multicast discovery.
@Suite("Multicast discovery: format, table, settings")
struct MulticastDatagramTests {
    let t0 = ContinuousClock.now
    let local = Member(name: "a", endpoint: Endpoint(host: "10.231.0.1", port: 4000), startTime: 1)
    let b = Member(name: "b", endpoint: Endpoint(host: "10.231.0.2", port: 4000), metadata: ["zone": "z1", "route": "r-b"], startTime: 2)

    @Test func datagramRoundTripsKindAndWholeMemberRecord() throws {
        for kind in [MulticastDatagram.Kind.alive, .leave] {
            let buffer = try MulticastDatagram.encode(kind, member: b)
            #expect(buffer.getInteger(at: 0, as: UInt32.self) == MulticastDatagram.magic)
            #expect(buffer.getInteger(at: 4, as: UInt8.self) == MulticastDatagram.version)
            let decoded = try MulticastDatagram.decode(buffer)
            #expect(decoded.kind == kind)
            let m = decoded.member
            #expect(m.id == b.id && m.name == b.name && m.endpoint == b.endpoint && m.domain == b.domain)
            #expect(m.metadata == b.metadata && m.startTime == b.startTime)
        }
    }

    @Test func malformedAndIncompatibleDatagramsAreRejectedWithoutTrapping() throws {
        let good = try MulticastDatagram.encode(.alive, member: b)
        func decode(_ bytes: [UInt8]) -> MulticastDatagram.DecodeError? {
            do throws(MulticastDatagram.DecodeError) {
                _ = try MulticastDatagram.decode(ByteBuffer(bytes: bytes))
                return nil
            } catch {
                return error
            }
        }
        let bytes = Array(good.readableBytesView)
        #expect(decode([]) == .malformed("0 bytes, shorter than the 8-byte header"))
        if case .malformed? = decode(Array("GET / HTTP/1.1\r\n".utf8)) {} else { Issue.record("HTTP text accepted") }
        var newer = bytes
        newer[4] = 2
        #expect(decode(newer) == .incompatibleVersion(2))
        var newerRecord = bytes
        newerRecord[MulticastDatagram.headerSize] = 9
        #expect(decode(newerRecord) == .incompatibleVersion(9))
        var badKind = bytes
        badKind[5] = 7
        if case .malformed? = decode(badKind) {} else { Issue.record("unknown kind accepted") }
        // Every truncation and one extra byte.
        for length in 0..<bytes.count {
            #expect(decode(Array(bytes.prefix(length))) != nil, "truncated to \(length) accepted")
        }
        #expect(decode(bytes + [0]) != nil)
        // Random garbage and random corruptions of a good datagram: never a trap.
        var generator = SystemRandomNumberGenerator()
        for round in 0..<2000 {
            var mutated = round.isMultiple(of: 2) ? bytes : (0..<Int.random(in: 0..<200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if round.isMultiple(of: 2) {
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    mutated[Int.random(in: 0..<mutated.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            }
            _ = decode(mutated)
        }
    }

    @Test func oversizedMemberRecordIsRefusedAtEncode() {
        var huge = b
        huge.metadata = ["blob": String(repeating: "x", count: 70_000)]
        #expect(throws: CohortError.self) { _ = try MulticastDatagram.encode(.alive, member: huge) }
    }

    @Test func tableReportsAliveIgnoresOwnAndOtherDomainsAndExpiresAfterDropTime() {
        var table = MulticastPeerTable(local: local, dropTime: .seconds(3))
        let first = table.receive(.init(kind: .alive, member: b), now: t0)
        #expect(first.outcome == .alive(new: true) && first.events == [.alive(b)])
        #expect(table.receive(.init(kind: .alive, member: b), now: t0 + .milliseconds(500)).outcome == .alive(new: false))
        #expect(table.receive(.init(kind: .alive, member: local), now: t0) == (.own, []))
        var stranger = b
        stranger.id = .random()
        stranger.domain = "other"
        #expect(table.receive(.init(kind: .alive, member: stranger), now: t0) == (.foreignDomain, []))
        #expect(table.members == [b])
        #expect(table.expire(now: t0 + .milliseconds(3400)).isEmpty)
        #expect(table.expire(now: t0 + .milliseconds(3500)) == [.gone(b.id)])
        #expect(table.members.isEmpty)
    }

    @Test func leaveIsReportedAtOnceAndLateHeartbeatsOfTheLeaverAreStale() {
        var table = MulticastPeerTable(local: local, dropTime: .seconds(3))
        _ = table.receive(.init(kind: .alive, member: b), now: t0)
        #expect(table.receive(.init(kind: .leave, member: b), now: t0 + .milliseconds(100)) == (.leave, [.gone(b.id)]))
        #expect(table.receive(.init(kind: .alive, member: b), now: t0 + .milliseconds(200)) == (.stale, []))
        #expect(table.expire(now: t0 + .seconds(4)).isEmpty)
        // After a drop time the id is forgotten.
        #expect(table.receive(.init(kind: .alive, member: b), now: t0 + .seconds(5)).outcome == .alive(new: true))
    }

    @Test func newIncarnationAtTheSameAddressReplacesTheOldInTheTable() {
        var table = MulticastPeerTable(local: local, dropTime: .seconds(3))
        _ = table.receive(.init(kind: .alive, member: b), now: t0)
        let restarted = Member(name: "b", endpoint: b.endpoint, startTime: 9)
        #expect(table.receive(.init(kind: .alive, member: restarted), now: t0).events == [.alive(restarted)])
        #expect(table.members == [restarted])
    }

    @Test func settingsHaveTomcatDefaultsAndRejectMistakesByName() throws {
        let defaults = try MulticastDiscoveryConfiguration(settings: [:])
        #expect(defaults.address == "228.0.0.4" && defaults.port == 45564)
        #expect(defaults.frequency == .milliseconds(500) && defaults.dropTime == .milliseconds(3000))
        #expect(defaults.ttl == nil && defaults.interface == nil && defaults.loopback)
        let custom = try MulticastDiscoveryConfiguration(settings: [
            "address": "239.1.2.3", "port": "5000", "frequencyMs": "100", "dropTimeMs": "600",
            "ttl": "0", "interface": "lo", "loopback": "off",
        ])
        #expect(custom.address == "239.1.2.3" && custom.port == 5000 && custom.ttl == 0 && custom.interface == "lo" && !custom.loopback)
        let mistakes: [([String: String], String)] = [
            (["address": "10.0.0.1"], "'address'"),
            (["address": "228.0.0"], "'address'"),
            (["port": "70000"], "'port'"),
            (["frequencyMs": "abc"], "'frequencyMs'"),
            (["frequencyMs": "500", "dropTimeMs": "400"], "'dropTimeMs'"),
            (["ttl": "300"], "'ttl'"),
            (["loopback": "maybe"], "'loopback'"),
        ]
        for (settings, key) in mistakes {
            let error = #expect(throws: CohortError.self) { _ = try MulticastDiscoveryConfiguration(settings: settings) }
            #expect(error?.code == .badConfiguration)
            #expect(error?.message.contains(key) == true, "\(settings): \(error?.message ?? "")")
        }
    }

    @Test func pluginIsBuiltInAsDiscoveryMulticast() throws {
        #expect(BuiltInPlugins.factories.map(\.id).contains("discovery.multicast"))
        let registry = PluginRegistry()
        BuiltInPlugins.register(into: registry)
        let factory = try registry.factory("multicast", kind: .discovery)
        #expect(factory.id == "discovery.multicast")
        let provider = try factory.makeDiscovery(settings: PluginSettings(values: ["port": "45999"]))
        #expect(provider.name == "multicast")
        #expect((provider as? MulticastDiscovery)?.configuration.port == 45999)
        #expect(throws: CohortError.self) { _ = try factory.makeDiscovery(settings: PluginSettings(values: ["ttl": "-1"])) }
    }
}
