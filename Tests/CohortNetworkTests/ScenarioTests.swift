import CohortCore
import CohortDiscoveryMulticast
import CohortTestKit
import Foundation
import Testing

/// The multicast discovery and membership scenarios, as separate `cohort node` processes. One
/// suite at a time (they measure timings on a 2-core machine).
@Suite("Multicast scenarios (processes)", .serialized, .timeLimit(.minutes(3)))
struct MulticastScenarioTests {
    /// Every node on 127.0.0.1; multicast on loopback (interface 127.0.0.1, TTL 0).
    @Suite("over loopback", .enabled(if: Paths.cohort != nil, "the cohort executable is not built next to the tests (run swift build first)"))
    struct Loopback {
        @Test func nodesFindEachOtherWithinTwoSecondsAndNeverSeeAnotherDomain() async throws {
            let net = try ScenarioNetwork(.loopback, hosts: 4)
            defer { net.shutdown() }
            try await Scenarios.discovery(net, foreignHost: 4)
        }

        @Test func killedNodeIsRemovedAndItsRestartIsANewIncarnation() async throws {
            let net = try ScenarioNetwork(.loopback, hosts: 3)
            defer { net.shutdown() }
            try await Scenarios.killedAndRestarted(net)
        }

        @Test func cpuStarvedNodeIsNotRemoved() async throws {
            let net = try ScenarioNetwork(.loopback, hosts: 3)
            defer { net.shutdown() }
            try await Scenarios.starvedNodeIsKept(net)
        }

        @Test func gracefullyStoppedNodeLeavesAtOnce() async throws {
            let net = try ScenarioNetwork(.loopback, hosts: 3)
            defer { net.shutdown() }
            try await Scenarios.gracefulStop(net)
        }

        @Test func quorumIsLostAndRegained() async throws {
            let net = try ScenarioNetwork(.loopback, hosts: 3)
            defer { net.shutdown() }
            try await Scenarios.quorum(net)
        }

        /// TcpPing: static members that stop answering (frozen, connections open) are detected by
        /// the membership service's TCP heartbeats and the probe, and come back when they answer.
        @Test func staticMemberThatStopsAnsweringIsRemovedAndReturns() async throws {
            let net = try ScenarioNetwork(.loopback, hosts: 3)
            defer { net.shutdown() }
            let all = (1...3).map { net.listen($0) }
            var nodes: [NodeProcess] = []
            for i in 1...3 {
                let others = all.enumerated().filter { $0.offset != i - 1 }.map(\.element).joined(separator: ",")
                nodes.append(try net.start("p\(i)", on: i, discovery: ["--members", others]))
            }
            let meshed = await eventually(timeout: .seconds(60)) { nodes.allSatisfy { Set($0.all("member-added").map(\.text)).count == 2 } }
            try #require(meshed, "\(net.transcripts)")
            let frozenAt = ContinuousClock.now
            nodes[2].signal(SIGSTOP)
            let removed = await eventually(timeout: .seconds(60)) { nodes[0].has("member-removed p3") && nodes[1].has("member-removed p3") }
            #expect(removed, "\(net.transcripts)")
            if removed {
                let detection = [nodes[0], nodes[1]].compactMap { $0.first("member-removed p3")?.at }.max()! - frozenAt
                Scenarios.report(net, "static member stopped answering (SIGSTOP → member-removed)", detection)
                #expect(nodes[0].has("member-suspected p3"))
            }
            nodes[2].signal(SIGCONT)
            let back = await eventually(timeout: .seconds(60)) { nodes[0].all("member-added p3").count == 2 && nodes[1].all("member-added p3").count == 2 }
            #expect(back, "\(net.transcripts)")
        }
    }

    /// Each node on its own host (network namespaces joined by a bridge), multicast discovery on
    /// its defaults (228.0.0.4:45564).
    @Suite(
        "over network namespaces",
        .enabled(if: Paths.cohort != nil, "the cohort executable is not built next to the tests (run swift build first)"),
        .enabled(if: NetnsHosts.isAvailable, Comment(rawValue: "skipped: \(NetnsHosts.unavailableReason ?? "")"))
    )
    struct Namespaces {
        @Test func nodesFindEachOtherWithinTwoSecondsAndNeverSeeAnotherDomain() async throws {
            let net = try ScenarioNetwork(.netns, hosts: 4)
            defer { net.shutdown() }
            try await Scenarios.discovery(net, foreignHost: 4)
        }

        @Test func killedNodeIsRemovedAndItsRestartIsANewIncarnation() async throws {
            let net = try ScenarioNetwork(.netns, hosts: 3)
            defer { net.shutdown() }
            try await Scenarios.killedAndRestarted(net)
        }

        @Test func cpuStarvedNodeIsNotRemoved() async throws {
            let net = try ScenarioNetwork(.netns, hosts: 3)
            defer { net.shutdown() }
            try await Scenarios.starvedNodeIsKept(net)
        }

        @Test func gracefullyStoppedNodeLeavesAtOnce() async throws {
            let net = try ScenarioNetwork(.netns, hosts: 3)
            defer { net.shutdown() }
            try await Scenarios.gracefulStop(net)
        }

        @Test func cutOffNodeIsRemovedAndRejoinsWhenTheLinkReturns() async throws {
            let net = try ScenarioNetwork(.netns, hosts: 3)
            defer { net.shutdown() }
            try await Scenarios.cutOffAndRejoin(net, hosts: net.hosts!)
        }

        @Test func quorumIsLostAndRegained() async throws {
            let net = try ScenarioNetwork(.netns, hosts: 3)
            defer { net.shutdown() }
            try await Scenarios.quorum(net)
        }

        /// Delay and loss (tc netem) on every host: the cluster still forms and nobody is removed.
        @Test(.enabled(if: NetnsHosts.netemUnavailableReason == nil, Comment(rawValue: "skipped: \(NetnsHosts.netemUnavailableReason ?? "")")))
        func clusterFormsAndHoldsUnderDelayAndLoss() async throws {
            let net = try ScenarioNetwork(.netns, hosts: 3)
            defer { net.shutdown() }
            for i in 1...3 { try net.hosts!.netem(i, ["delay", "30ms", "10ms", "loss", "5%"]) }
            let (nodes, mesh) = try await Scenarios.startCluster(net)
            Scenarios.report(net, "discovery under 30±10 ms delay and 5% loss", mesh)
            let removed = await eventually(timeout: .seconds(5)) { nodes.contains { $0.has("member-removed") } }
            #expect(!removed, "\(net.transcripts)")
        }
    }
}
