import CohortCore
import CohortTestKit
import Foundation
import Testing

/// The scenarios, written once and run on loopback and on namespace hosts. Each starts
/// every process it needs and stops them all. They assert what happened (who was removed, who
/// left, who rejoined), never how fast: the waits are generous bounds against hangs, and the
/// measured latencies are printed for the record (timings belong to `Benchmarks/`).
enum Scenarios {
    /// Starts `count` members p1…pN on hosts 1…N and waits until each has added all others.
    /// Returns the nodes and how long the full mesh took after the last node was listening.
    static func startCluster(_ net: ScenarioNetwork, count: Int = 3, environment: [String: String] = [:]) async throws -> ([NodeProcess], Duration) {
        var nodes: [NodeProcess] = []
        for i in 1...count { nodes.append(try net.start("p\(i)", on: i, environment: environment)) }
        let listening = await eventually(timeout: .seconds(60)) { nodes.allSatisfy { $0.has("listening") } }
        try #require(listening, "nodes did not start:\n\(net.transcripts)")
        let lastListening = nodes.compactMap { $0.first("listening")?.at }.max()!
        let meshed = await eventually(timeout: .seconds(60)) {
            nodes.allSatisfy { node in Set(node.all("member-added").map(\.text)).count == count - 1 }
        }
        try #require(meshed, "no full mesh:\n\(net.transcripts)")
        let meshAt = nodes.compactMap { $0.all("member-added").map(\.at).max() }.max()!
        return (nodes, meshAt - lastListening)
    }

    static func report(_ net: ScenarioNetwork, _ what: String, _ value: Duration) {
        print("measured [\(net.kind.rawValue)] \(what): \(value.ms) ms")
    }

    /// Nodes with multicast discovery and no member list find each other; a node of another
    /// domain on the same group is never seen, and sees no one.
    static func discovery(_ net: ScenarioNetwork, foreignHost: Int) async throws {
        let foreign = try net.start("x1", on: foreignHost, domain: "other")
        #expect(await eventually(timeout: .seconds(60)) { foreign.has("listening") }, "\(foreign.transcript)")
        let (nodes, mesh) = try await startCluster(net)
        report(net, "discovery (last node listening → full mesh of 3)", mesh)
        // Observe three more heartbeat periods: the foreign node's datagrams keep arriving.
        try await Task.sleep(for: .milliseconds(1500))
        for node in nodes { #expect(!node.has("member-added x1"), "\(node.transcript)") }
        #expect(!foreign.has("member-added"), "\(foreign.transcript)")
        nodes[0].send("hello")
        #expect(await eventually(timeout: .seconds(60)) { nodes[0].has("sent to 2/2 members") }, "\(nodes[0].transcript)")
    }

    /// A killed node is removed (in practice at once: its connections reset); restarted at the
    /// same address it is a new incarnation and rejoins.
    static func killedAndRestarted(_ net: ScenarioNetwork) async throws {
        let (nodes, _) = try await startCluster(net)
        let oldID = nodes[2].memberID
        let killedAt = ContinuousClock.now
        nodes[2].signal(SIGKILL)
        let removed = await eventually(timeout: .seconds(60)) {
            nodes[0].has("member-removed p3") && nodes[1].has("member-removed p3")
        }
        #expect(removed, "\(net.transcripts)")
        guard removed else { return }
        let detection = [nodes[0], nodes[1]].compactMap { $0.first("member-removed p3")?.at }.max()! - killedAt
        report(net, "killed node removed (SIGKILL → member-removed on both peers)", detection)

        let again = try net.start("p3", on: 3)
        let rejoined = await eventually(timeout: .seconds(60)) {
            nodes[0].all("member-added p3").count == 2 && nodes[1].all("member-added p3").count == 2
                && Set(again.all("member-added").map(\.text)).count == 2
        }
        #expect(rejoined, "\(net.transcripts)")
        #expect(again.memberID != nil && again.memberID != oldID, "a restart must be a new incarnation")
        again.send("from the new p3")
        #expect(await eventually(timeout: .seconds(60)) { again.has("sent to 2/2 members") }, "\(again.transcript)")
        #expect(!nodes[0].has("member-left p3"))
    }

    /// A live but stopped (CPU-starved) node, frozen for longer than `missingAfter` but less than
    /// the whole verification, is not removed: the suspicion ends with a probe answered after
    /// SIGCONT.
    ///
    /// The nodes run with a patient failure detector (missing after 2 s, probes of 3 s): the
    /// freeze stays past `missingAfter`, and the woken node has seconds, not the defaults' 1 s,
    /// to answer — a busy machine must not turn "answers late" into "never answered".
    static func starvedNodeIsKept(_ net: ScenarioNetwork) async throws {
        let patient = ["COHORT_MISSING_AFTER_MS": "2000", "COHORT_PROBE_TIMEOUT_MS": "3000"]
        let verification = Duration.milliseconds(2000 + 3000 + 200 + 3000)
        let (nodes, _) = try await startCluster(net, environment: patient)
        nodes[2].signal(SIGSTOP)
        // The starvation itself is the point of the test, not a wait for a condition.
        try await Task.sleep(for: .milliseconds(2500))
        nodes[2].signal(SIGCONT)
        // Any removal would come within the verification budget; poll for it until then.
        let removed = await eventually(timeout: verification + .seconds(1)) {
            nodes.contains { $0.has("member-removed") }
        }
        #expect(!removed, "a live node was removed:\n\(net.transcripts)")
        for node in nodes.prefix(2) where node.has("member-suspected p3") {
            #expect(await eventually(timeout: .seconds(60)) { node.has("member-recovered p3") }, "\(node.transcript)")
        }
        nodes[0].send("still here")
        #expect(await eventually(timeout: .seconds(60)) { nodes[0].has("sent to 2/2 members") }, "\(nodes[0].transcript)")
    }

    /// A gracefully stopped node leaves, as member-left (not removed as crashed), on every peer.
    ///
    /// The node first sends a message to all, so that its own connections to the peers are up:
    /// the TCP transport says goodbye only on connections that are ready, and a node stopped
    /// within a heartbeat of joining is otherwise seen as crashed (removed after a refused probe,
    /// also at once, but as member-removed).
    static func gracefulStop(_ net: ScenarioNetwork) async throws {
        let (nodes, _) = try await startCluster(net)
        nodes[2].send("leaving soon")
        #expect(await eventually(timeout: .seconds(60)) { nodes[2].has("sent to 2/2 members") }, "\(nodes[2].transcript)")
        let stoppedAt = ContinuousClock.now
        nodes[2].signal(SIGTERM)
        let left = await eventually(timeout: .seconds(60)) { nodes[0].has("member-left p3") && nodes[1].has("member-left p3") }
        #expect(left, "\(net.transcripts)")
        if left {
            let latency = [nodes[0], nodes[1]].compactMap { $0.first("member-left p3")?.at }.max()! - stoppedAt
            report(net, "graceful stop (SIGTERM → member-left on both peers)", latency)
        }
        let status = await nodes[2].waitForExit(timeout: .seconds(60))
        #expect(status == 0, "exit status \(String(describing: status)):\n\(nodes[2].transcript)")
        for node in nodes.prefix(2) {
            // A suspicion may flash when a peer notices a closed connection before the goodbye
            // on the other one; what matters is that the node leaves, not that it is removed.
            #expect(!node.has("member-removed p3"), "\(node.transcript)")
        }
    }

    /// A node cut off the network is removed (and removes the others), then rejoins once the link
    /// is back.
    static func cutOffAndRejoin(_ net: ScenarioNetwork, hosts: NetnsHosts) async throws {
        let (nodes, _) = try await startCluster(net)
        let cutAt = ContinuousClock.now
        try hosts.cut(3)
        let removed = await eventually(timeout: .seconds(60)) {
            nodes[0].has("member-removed p3") && nodes[1].has("member-removed p3")
                && nodes[2].has("member-removed p1") && nodes[2].has("member-removed p2")
        }
        #expect(removed, "\(net.transcripts)")
        if removed {
            let detection = [nodes[0], nodes[1]].compactMap { $0.first("member-removed p3")?.at }.max()! - cutAt
            report(net, "cut-off node removed (link down → member-removed on both peers)", detection)
        }
        let restoredAt = ContinuousClock.now
        try hosts.restore(3)
        let rejoined = await eventually(timeout: .seconds(60)) {
            nodes[0].all("member-added p3").count == 2 && nodes[1].all("member-added p3").count == 2
                && nodes[2].all("member-added p1").count == 2 && nodes[2].all("member-added p2").count == 2
        }
        #expect(rejoined, "\(net.transcripts)")
        if rejoined {
            let back = [nodes[0], nodes[1]].compactMap { $0.all("member-added p3").last?.at }.max()! - restoredAt
            report(net, "cut-off node rejoined (link up → member-added on both peers)", back)
        }
        nodes[2].send("back again")
        #expect(await eventually(timeout: .seconds(60)) { nodes[2].has("sent to 2/2 members") }, "\(nodes[2].transcript)")
    }

    /// With minimumMembers 3, nodes report quorum lost at start, regained when all three see each
    /// other, and lost again when one dies.
    static func quorum(_ net: ScenarioNetwork) async throws {
        let (nodes, _) = try await startCluster(net, environment: ["COHORT_MINIMUM_MEMBERS": "3"])
        for node in nodes {
            #expect(await eventually(timeout: .seconds(60)) { node.has("quorum-regained 3/3") }, "\(node.transcript)")
        }
        #expect(nodes[0].has("quorum-lost 1/3"), "\(nodes[0].transcript)")
        nodes[2].signal(SIGKILL)
        for node in nodes.prefix(2) {
            #expect(await eventually(timeout: .seconds(60)) { node.has("quorum-lost 2/3") }, "\(node.transcript)")
        }
    }
}
