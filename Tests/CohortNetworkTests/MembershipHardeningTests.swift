import Cohort
import CohortCodecBinary
import CohortDiscoveryStatic
import CohortHummingbird
import CohortSessions
import CohortTestKit
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Testing

struct Note: ClusterMessage, Equatable {
    static let messageType = MessageType(2601)
    var text: String
}

/// Domain filter, incarnations, quorum: the membership hardening of issue 6, in process.
@Suite("Membership hardening", .timeLimit(.minutes(2)))
struct MembershipHardeningTests {
    /// The chain's ends, recording what passed the stage.
    final class Ends: Sendable {
        let signals = NIOLockedValueBox<[MembershipSignal]>([])
        let delivered = NIOLockedValueBox(0)
        var chainEnds: ChainEnds {
            ChainEnds(
                transmit: { _, members in SendReport(outcomes: members.map { ($0.id, .delivered) }) },
                dispatch: { [delivered] _ in delivered.withLockedValue { $0 += 1 }; return .processed },
                signal: { [signals] signal in signals.withLockedValue { $0.append(signal) } }
            )
        }
    }

    @Test func domainFilterDropsOtherDomainsSignalsAndMessagesAndCountsThem() async {
        let filter = DomainFilter(domain: "shop", logInterval: 1)
        let ends = Ends()
        let chain = InterceptorChain(stages: [filter], ends: ends.chainEnds)
        let ours = Member(name: "a", endpoint: Endpoint(host: "127.0.0.1", port: 1), domain: "shop", startTime: 1)
        let theirs = Member(name: "x", endpoint: Endpoint(host: "127.0.0.1", port: 2), domain: "blog", startTime: 1)
        for member in [ours, theirs] {
            chain.membership(.joined(member))
            chain.membership(.missing(member, reason: "test"))
            chain.membership(.left(member))
        }
        #expect(ends.signals.withLockedValue { $0 } == [.joined(ours), .missing(ours, reason: "test"), .left(ours)])
        #expect(filter.rejectedSignals == 3)
        let message = { (sender: Member) in
            InboundMessage(sender: sender, type: Note.messageType, codec: .binary, payload: ByteBuffer(), guarantee: .processed)
        }
        #expect(await chain.receive(message(ours)) == .processed)
        let refused = await chain.receive(message(theirs))
        guard case .rejected(let why) = refused else { Issue.record("accepted: \(refused)"); return }
        #expect(why.contains("blog") && why.contains("shop"))
        #expect(filter.rejectedMessages == 1)
        #expect(ends.delivered.withLockedValue { $0 } == 1)
    }

    @Test func domainFilterIsConfiguredByNameAndOnByDefault() throws {
        #expect(ClusterConfiguration().interceptors.contains("domainFilter"))
        var configuration = ClusterConfiguration(name: "n", listen: Endpoint(host: "127.0.0.1", port: 0), domain: "shop")
        try configuration.validate()
        let channel = try TestCluster.makeChannel(configuration: configuration, transport: .inMemory(InMemoryNetwork()))
        let filter = try #require(channel.interceptors.first { $0 is DomainFilter } as? DomainFilter)
        #expect(filter.domain == "shop")
        configuration.interceptors = ["dispatch", "domainFilte"]
        let error = #expect(throws: CohortError.self) { try configuration.validate() }
        #expect(error?.message.contains("domainFilter") == true)
    }

    /// A member of another domain that lists ours as static members never appears, and its
    /// messages are refused.
    @Test func anotherDomainNeverAppearsAndItsMessagesAreRefused() async throws {
        let received = NIOLockedValueBox(0)
        try await TestCluster.with(nodes: 2, transport: .tcp, configure: { _, c in c.domain = "shop" }, prepare: { _, node in
            try node.onMessage(Note.self) { _, _ in received.withLockedValue { $0 += 1 } }
        }) { cluster in
            let target = cluster[0].localMember.endpoint
            var stranger = ClusterConfiguration(name: "stranger", listen: Endpoint(host: "127.0.0.1", port: 0), members: [target], domain: "blog")
            stranger.discoverySettings["interval_ms"] = "100"
            let node = try TestCluster.makeChannel(configuration: stranger, transport: .tcp)
            let task = Task { try await node.run() }
            defer { node.shutdown() }
            _ = try await node.waitUntilRunning()
            let fake = try await FakeMember.connect(to: target, as: Member(name: "intruder", endpoint: Endpoint(host: "127.0.0.1", port: 9), domain: "blog", startTime: 1))
            let answer = try await fake.send(Note(text: "hi"))
            #expect(answer != .processed)
            await fake.close()
            // An observation window: the stranger handshakes with node1 every 100 ms meanwhile.
            try await Task.sleep(for: .milliseconds(500))
            let filter = try #require(cluster[0].interceptors.first { $0 is DomainFilter } as? DomainFilter)
            #expect(await eventually(timeout: .seconds(30)) { filter.rejectedMessages >= 1 })
            #expect(!cluster[0].view.members.contains { $0.domain != "shop" })
            #expect(node.view.members.isEmpty)
            #expect(received.withLockedValue { $0 } == 0)
            node.shutdown()
            _ = try? await task.value
        }
    }

    /// A restart is a new incarnation: once it joined at the address of the old one, the old
    /// one is disconnected, and whatever it still sends — on a fresh connection, as a zombie
    /// would — is refused; the new one's messages are processed.
    @Test func oldIncarnationsMessagesAreRefusedOnceANewOneJoined() async throws {
        let received = NIOLockedValueBox([String]())
        try await TestCluster.with(nodes: 1, transport: .tcp, prepare: { _, node in
            try node.onMessage(Note.self) { note, _ in received.withLockedValue { $0.append(note.text) } }
        }) { cluster in
            let target = cluster[0].localMember.endpoint
            // The new incarnation listens at the address (answers hellos and probes as itself),
            // as a restarted node would: the node keeps it as a member for the whole test instead
            // of judging it gone when its connection closes, which on a loaded machine could happen
            // before its last message below.
            let template = Member(name: "ghost", endpoint: Endpoint(host: "127.0.0.1", port: 0), startTime: 2)
            let listener = try await FakeListener.start(as: template)
            defer { listener.close(promise: nil) }
            let address = Endpoint(host: "127.0.0.1", port: try #require(listener.localAddress?.port))
            let oldMember = Member(name: "ghost", endpoint: address, startTime: 1)
            var newMember = template
            newMember.endpoint = address
            let old = try await FakeMember.connect(to: target, as: oldMember)
            #expect(try await old.send(Note(text: "old 1")) == .processed)
            await old.close()
            let new = try await FakeMember.connect(to: target, as: newMember)
            await new.close()
            // The admission is asynchronous: poll until the old incarnation is refused.
            var answer = FakeMember.Answer.processed
            let refused = await eventually(timeout: .seconds(30), poll: .milliseconds(50)) {
                guard let zombie = try? await FakeMember.connect(to: target, as: oldMember) else { return false }
                answer = (try? await zombie.send(Note(text: "old again"))) ?? .processed
                await zombie.close()
                return answer != .processed
            }
            #expect(refused)
            if case .failed(let reason, let text) = answer {
                #expect(reason == 2)
                #expect(text.contains("newer incarnation"), "\(text)")
            }
            let again = try await FakeMember.connect(to: target, as: newMember)
            #expect(try await again.send(Note(text: "new 1")) == .processed)
            await again.close()
            #expect(received.withLockedValue { $0 }.contains("new 1"))
        }
    }

    @Test func quorumFollowsTheViewAndIsAlwaysTrueWithTheDefaultMinimum() async throws {
        try await TestCluster.with(nodes: 2, transport: .inMemory(InMemoryNetwork())) { cluster in
            #expect(cluster[0].isInQuorum && cluster[0].quorum.minimum == 1)
        }
        let cluster = try await TestCluster.start(nodes: 3, transport: .inMemory(InMemoryNetwork()), configure: { _, c in c.minimumMembers = 3 })
        #expect(cluster.nodes.allSatisfy { $0.isInQuorum })
        let changes = cluster[0].quorumChanges()
        await cluster.stop(2)
        // Woken by the quorum changes themselves: the history so far, then the loss.
        let seen = try await withDeadline(.seconds(60), "node1 to report the quorum lost") {
            var seen: [String] = []
            for await status in changes {
                seen.append(status.description)
                if status.description.hasPrefix("quorum-lost") { break }
            }
            return seen
        }
        #expect(seen == ["quorum-regained 3/3", "quorum-lost 2/3"])
        #expect(!cluster[0].isInQuorum)
        await cluster.stop()
    }

    @Test func minimumMembersIsReadFromTheFileKeyAndTheEnvironment() throws {
        let fromEnvironment = try ClusterConfiguration.load(file: nil, environment: ["COHORT_MINIMUM_MEMBERS": "3"])
        #expect(fromEnvironment.minimumMembers == 3)
        #expect(ClusterConfiguration.environmentName(for: "minimumMembers") == "COHORT_MINIMUM_MEMBERS")
        let error = #expect(throws: CohortError.self) { _ = try ClusterConfiguration.load(file: nil, environment: ["COHORT_MINIMUM_MEMBERS": "0"]) }
        #expect(error?.message.contains("minimumMembers") == true)
    }

    /// `ClusterNode` (and so `GET /ready`) is not ready while its channel is not in quorum.
    @Test func clusterNodeIsNotReadyWithoutQuorum() async throws {
        let network = InMemoryNetwork()
        let clock = ManualClock()
        var quiet = Logger(label: "test")
        quiet.logLevel = .error
        func node(_ name: String, members: [Endpoint]) throws -> ClusterNode {
            var configuration = ClusterConfiguration(name: name, listen: Endpoint(host: "127.0.0.1", port: 0), members: members)
            configuration.minimumMembers = 2
            let channel = GroupChannel(configuration: configuration, transport: network.makeTransport(), codec: BinaryCodec(), discovery: StaticDiscovery(endpoints: members, interval: .milliseconds(100)), logger: quiet)
            var sessions = SessionManagerConfiguration(name: "web")
            sessions.clock = clock
            sessions.settleTime = .zero
            sessions.logger = quiet
            return ClusterNode(channel: channel, sessions: try DeltaSessionManager(channel: channel, configuration: sessions), gracePeriod: .seconds(2))
        }
        let first = try node("n1", members: [])
        let firstTask = Task { try await first.run() }
        let address = try await first.channel.waitUntilRunning()
        #expect(!first.isReady)
        let second = try node("n2", members: [address])
        let secondTask = Task { try await second.run() }
        for node in [first, second] {
            try await withDeadline(.seconds(60), "\(node.channel.configuration.name) to be ready") { try await node.waitUntilReady() }
            try await node.channel.waitForMembers(1)
        }
        #expect(first.isReady && second.isReady)
        secondTask.cancel()
        _ = try? await secondTask.value
        try await first.channel.waitForMembers(0)
        #expect(!first.channel.isInQuorum)
        #expect(!first.isReady)
        firstTask.cancel()
        _ = try? await firstTask.value
    }
}
