import Cohort
import CohortDiscoveryKubernetes
import Foundation
import Testing

/// The pure PodList → candidates step, on recorded answers of real clusters and on made-up pods.
@Suite("Kubernetes pod filter")
struct KubernetesPodFilterTests {
    func endpoints(_ hosts: [String], _ port: Int) -> [Endpoint] { hosts.map { Endpoint(host: $0, port: port) } }

    @Test func minimalListUsesTheNamedContainerPort() throws {
        let list = try Fixture.podList("pods.json")
        #expect(list.items.count == 2)
        let named = KubernetesPodFilter(portName: "ping", port: 4001)
        #expect(named.candidates(list) == endpoints(["127.0.0.1", "192.168.0.1"], 8888))
        let fixed = KubernetesPodFilter(port: 7600)
        #expect(fixed.candidates(list) == endpoints(["127.0.0.1", "192.168.0.1"], 7600))
    }

    @Test func skipsItselfByPodNameByPodIPAndByAddress() throws {
        let list = try Fixture.podList("pods.json")
        let byName = KubernetesPodFilter(portName: "ping", port: 4001, selfName: "eap-app-1-43wra")
        #expect(byName.candidates(list) == endpoints(["192.168.0.1"], 8888))
        #expect(byName.decisions(list).first?.skipped == .isSelf)
        let byIP = KubernetesPodFilter(port: 7600, selfIP: "192.168.0.1")
        #expect(byIP.candidates(list) == endpoints(["127.0.0.1"], 7600))
        let byAddress = KubernetesPodFilter(port: 7600, selfEndpoint: Endpoint(host: "127.0.0.1", port: 7600))
        #expect(byAddress.candidates(list) == endpoints(["192.168.0.1"], 7600))
    }

    @Test func complexNamespaceWithUnnamedPorts() throws {
        let list = try Fixture.podList("complex_pods.json")
        #expect(list.items.count == 4)
        // No port has a name, so a named-port lookup proposes nothing …
        let named = KubernetesPodFilter(portName: "cluster", port: 4001)
        #expect(named.candidates(list).isEmpty)
        #expect(named.decisions(list).allSatisfy { $0.skipped == .noNamedPort })
        // … and a configured port proposes every running pod, the canary track included
        // (selecting tracks is the label selector's job, on the server).
        let fixed = KubernetesPodFilter(port: 7800)
        #expect(fixed.candidates(list) == endpoints(["10.232.104.95", "10.232.136.138", "10.232.140.236", "10.232.92.47"], 7800))
    }

    @Test func podsWithoutPortsNeedAConfiguredPort() throws {
        let list = try Fixture.podList("pods_without_ports.json")
        #expect(KubernetesPodFilter(portName: "cluster", port: 4001).candidates(list).isEmpty)
        #expect(KubernetesPodFilter(port: 7800).candidates(list) == endpoints(["172.17.0.2", "172.17.0.5"], 7800))
    }

    @Test func aPodOnALostNodeIsTerminatingAndSkipped() throws {
        let list = try Fixture.podList("unknown_pods.json")
        let filter = KubernetesPodFilter(port: 8080)
        let decisions = filter.decisions(list)
        #expect(decisions.map(\.skipped) == [nil, nil, .terminating])
        #expect(filter.candidates(list) == endpoints(["10.232.81.89", "10.232.82.162"], 8080))
    }

    @Test func openShiftRolloutKeepsTheNewPodsAndDropsTheTerminatingOnes() throws {
        let list = try Fixture.podList("openshift_rolling_update.json")
        let filter = KubernetesPodFilter(portName: "ping", port: 4001)
        let decisions = filter.decisions(list)
        #expect(decisions.map(\.skipped) == [.terminating, .terminating, nil, nil, nil, nil])
        #expect(filter.candidates(list) == endpoints(["127.0.0.1", "172.17.0.6", "172.17.0.7", "172.17.0.9"], 8888))
    }

    @Test func replicaSetRollingUpdateProposesOldAndNewPodsSideBySide() throws {
        let list = try Fixture.podList("replicaset_rolling_update.json")
        let hashes = Set(list.items.compactMap { $0.metadata?.labels?["pod-template-hash"] })
        #expect(hashes.count == 2, "the fixture holds pods of two ReplicaSets")
        let filter = KubernetesPodFilter(portName: "jgroups", port: 4001)
        // Both generations are proposed (no split of the cluster during the update); they share
        // an IP in this recording, so one address remains.
        #expect(filter.decisions(list).map(\.skipped) == [nil, nil])
        #expect(filter.candidates(list) == endpoints(["127.0.0.1"], 7600))
    }

    @Test func statefulSetRollingUpdateSpansBothRevisions() throws {
        let list = try Fixture.podList("statefulset_rolling_update.json")
        let filter = KubernetesPodFilter(port: 7600)
        let decisions = filter.decisions(list)
        #expect(decisions.map(\.pod) == ["keycloak-0", "keycloak-1", "keycloak-2", "keycloak-postgresql-666b764458-tv6pk"])
        #expect(decisions.map(\.skipped) == [nil, .terminating, nil, nil])
        let revisions = Set(list.items.filter { filter.decide($0).endpoint != nil }.compactMap { $0.metadata?.labels?["controller-revision-hash"] })
        #expect(revisions == ["keycloak-5f6594785b", "keycloak-86d5dbd654"])
    }

    @Test func onlyRunningPodsWithAnIPAreProposed() throws {
        let json = PodListJSON.list([
            PodSpec(name: "pending", ip: nil, phase: "Pending", ready: false),
            PodSpec(name: "pending-with-ip", ip: "10.0.0.2", phase: "Pending", ready: false),
            PodSpec(name: "succeeded", ip: "10.0.0.3", phase: "Succeeded", ready: false),
            PodSpec(name: "failed", ip: "10.0.0.4", phase: "Failed", ready: false),
            PodSpec(name: "unknown", ip: "10.0.0.5", phase: "Unknown", ready: false),
            PodSpec(name: "running-no-ip", ip: nil),
            PodSpec(name: "running", ip: "10.0.0.7"),
            PodSpec(name: "running-unready", ip: "10.0.0.8", ready: false),
        ])
        let list = try KubernetesPodList.decode(Array(json.utf8))
        let all = KubernetesPodFilter(port: 4001)
        #expect(all.decisions(list).map(\.skipped) == [.notRunning, .notRunning, .notRunning, .notRunning, .notRunning, .noIP, nil, nil])
        #expect(all.candidates(list) == endpoints(["10.0.0.7", "10.0.0.8"], 4001))
        let readyOnly = KubernetesPodFilter(readyOnly: true, port: 4001)
        #expect(readyOnly.decisions(list).last?.skipped == .notReady)
        #expect(readyOnly.candidates(list) == endpoints(["10.0.0.7"], 4001))
    }

    @Test func ipv6PodIPsBecomeBracketedEndpoints() throws {
        let json = PodListJSON.list([PodSpec(name: "v6", ip: "fd00:10:244::5", ports: ["cluster": 4001]), PodSpec(name: "v4", ip: "10.0.0.1", ports: ["cluster": 4001])])
        let list = try KubernetesPodList.decode(Array(json.utf8))
        let candidates = KubernetesPodFilter(portName: "cluster", port: 1).candidates(list)
        #expect(candidates == [Endpoint(host: "10.0.0.1", port: 4001), Endpoint(host: "fd00:10:244::5", port: 4001)])
        #expect(candidates.last?.description == "[fd00:10:244::5]:4001")
        #expect(try Endpoint(parsing: "[fd00:10:244::5]:4001") == candidates.last)
    }

    @Test func answersThatAreNotPodListsAreErrors() {
        for text in [#"{"kind":"Status","code":500}"#, #"{"kind":"PodList","items":[{"metadata":"#, "<html>"] {
            #expect(throws: CohortError.self) { try KubernetesPodList.decode(Array(text.utf8)) }
        }
        #expect((try? KubernetesPodList.decode(Array(#"{"kind":"PodList","items":null}"#.utf8)))?.items.isEmpty == true)
    }
}
