import Cohort
import CohortDiscoveryKubernetes
import CohortTestKit
import Foundation
import Testing

/// The Kubernetes discovery against a local HTTPS stand-in for the API server (TLS with a CA
/// made at test time, bearer tokens, recorded PodList answers).
@Suite("Kubernetes discovery against a stub API server", .enabled(if: TestPKI.available, "needs the openssl command to make certificates"), .timeLimit(.minutes(2)))
struct KubernetesAPITests {
    let local = localMember()

    @Test func theLabelSelectorReachesTheAPIURLEncoded() async throws {
        try await withStub { harness in
            harness.serve(try Fixture.text("complex_pods.json"))
            let provider = try harness.provider(["labels": "acme.com/app=demo-service,acme.com/track=main", "port": "7800"])
            try await withRunning(provider, local: local) { events in
                let main = ["10.232.136.138", "10.232.140.236", "10.232.92.47"].map { Endpoint(host: $0, port: 7800) }
                #expect(await events.waitFor(main), "\(events.candidateLists)")
            }
            let request = try #require(harness.stub.requests.first)
            #expect(request.method == "GET")
            #expect(request.path == "/api/v1/namespaces/demo/pods")
            #expect(request.rawParameter("labelSelector") == "acme.com%2Fapp%3Ddemo-service%2Cacme.com%2Ftrack%3Dmain")
            #expect(request.parameter("labelSelector") == "acme.com/app=demo-service,acme.com/track=main")
            #expect(request.bearer == fakeServiceAccountToken(namespace: "demo", account: "cohort", serial: 1))
        }
    }

    @Test func phasesAndReadinessDecideWhoIsProposed() async throws {
        try await withStub { harness in
            harness.serve(PodListJSON.list([
                PodSpec(name: "pending", ip: "10.0.0.1", phase: "Pending", ready: false, ports: ["cluster": 4001]),
                PodSpec(name: "failed", ip: "10.0.0.2", phase: "Failed", ready: false, ports: ["cluster": 4001]),
                PodSpec(name: "booting", ip: "10.0.0.3", ready: false, ports: ["cluster": 4001]),
                PodSpec(name: "ready", ip: "10.0.0.4", ports: ["cluster": 4001]),
                PodSpec(name: "other-app", ip: "10.0.0.5", labels: ["app": "other"], ports: ["cluster": 4001]),
            ]))
            let everyone = try harness.provider(["labels": "app=cohort", "portName": "cluster"])
            try await withRunning(everyone, local: local) { events in
                #expect(await events.waitFor([Endpoint(host: "10.0.0.3", port: 4001), Endpoint(host: "10.0.0.4", port: 4001)]), "\(events.candidateLists)")
            }
            let readyOnly = try harness.provider(["labels": "app=cohort", "portName": "cluster", "readyOnly": "true"])
            try await withRunning(readyOnly, local: local) { events in
                #expect(await events.waitFor([Endpoint(host: "10.0.0.4", port: 4001)]), "\(events.candidateLists)")
            }
        }
    }

    @Test func rollingUpdateProposesOldAndNewPodsSideBySide() async throws {
        try await withStub { harness in
            func pod(_ name: String, _ ip: String, _ hash: String, ready: Bool = true, terminating: Bool = false) -> PodSpec {
                PodSpec(name: name, ip: ip, ready: ready, labels: ["app": "cohort", "pod-template-hash": hash], ports: ["cluster": 4001], terminating: terminating)
            }
            func addresses(_ hosts: [String]) -> [Endpoint] { hosts.map { Endpoint(host: $0, port: 4001) } }
            let stages: [([PodSpec], [String])] = [
                ([pod("old-a", "10.0.1.1", "v1"), pod("old-b", "10.0.1.2", "v1")], ["10.0.1.1", "10.0.1.2"]),
                // maxSurge 1: a new pod starts, not ready until it joined and took over state.
                ([pod("old-a", "10.0.1.1", "v1"), pod("old-b", "10.0.1.2", "v1"), pod("new-a", "10.0.2.1", "v2", ready: false)], ["10.0.1.1", "10.0.1.2", "10.0.2.1"]),
                // The new pod is ready; an old one is terminating (handing off, leaving).
                ([pod("old-a", "10.0.1.1", "v1", terminating: true), pod("old-b", "10.0.1.2", "v1"), pod("new-a", "10.0.2.1", "v2")], ["10.0.1.2", "10.0.2.1"]),
                ([pod("old-b", "10.0.1.2", "v1"), pod("new-a", "10.0.2.1", "v2"), pod("new-b", "10.0.2.2", "v2", ready: false)], ["10.0.1.2", "10.0.2.1", "10.0.2.2"]),
                ([pod("new-a", "10.0.2.1", "v2"), pod("new-b", "10.0.2.2", "v2")], ["10.0.2.1", "10.0.2.2"]),
            ]
            let provider = try harness.provider(["portName": "cluster", "labels": "app=cohort"])
            try await withRunning(provider, local: local) { events in
                for (index, stage) in stages.enumerated() {
                    harness.serve(PodListJSON.list(stage.0))
                    #expect(await events.waitFor(addresses(stage.1)), "stage \(index): \(events.latest ?? [])")
                }
            }
        }
    }

    @Test func ipv6PodIPsWork() async throws {
        try await withStub { harness in
            harness.serve(PodListJSON.list([PodSpec(name: "v6", ip: "fd00:10:244:1::7", ports: ["cluster": 4001])]))
            try await withRunning(try harness.provider(["portName": "cluster"]), local: local) { events in
                #expect(await events.waitFor([Endpoint(host: "fd00:10:244:1::7", port: 4001)]))
                #expect(events.latest?.first?.description == "[fd00:10:244:1::7]:4001")
            }
        }
    }

    @Test func passesTheDiscoveryConformanceSuite() async throws {
        try await withStub { harness in
            harness.serve(PodListJSON.list([
                PodSpec(name: "self", ip: "127.0.0.1", ports: ["cluster": 4001]),
                PodSpec(name: "peer", ip: "127.0.0.9", ports: ["cluster": 4001]),
            ]))
            try await DiscoveryConformance.run(name: "kubernetes", try harness.provider(["portName": "cluster"]), local: local) { events in
                events.contains(.candidates([Endpoint(host: "127.0.0.9", port: 4001)])) ? nil : "expected the peer only: \(events)"
            }
        }
    }

    @Test func theBuiltInAndTheLoadablePluginAreRegistered() throws {
        let ids = BuiltInPlugins.factories.map(\.id)
        #expect(ids.contains("discovery.kubernetes") && ids.contains("discovery.dns"))
        let registry = PluginRegistry()
        BuiltInPlugins.register(into: registry)
        #expect(try registry.factory("kubernetes", kind: .discovery).id == "discovery.kubernetes")
        #expect(try registry.factory("dns", kind: .discovery).id == "discovery.dns")
        for (library, id) in [("CohortDiscoveryKubernetesPlugin", "discovery.kubernetes"), ("CohortDiscoveryDNSPlugin", "discovery.dns")] {
            let path = PluginLoader.executableDirectory + "/lib\(library).so"
            guard FileManager.default.fileExists(atPath: path) else { continue }
            #expect(try PluginLoader.load(path, into: PluginRegistry()).map(\.id) == [id])
        }
    }

    @Test func theFactoryReadsThePodEnvironment() throws {
        let environment = [
            "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443", "POD_NAMESPACE": "demo",
            "KUBERNETES_LABELS": "app=cohort", "POD_NAME": "cohort-0",
        ]
        let provider = try KubernetesDiscoveryPlugin().makeDiscovery(settings: PluginSettings(values: ["portName": "cluster", "labels": "app=settings"]), environment: environment)
        #expect(provider.configuration.podsURL == "https://127.0.0.1:6443/api/v1/namespaces/demo/pods?labelSelector=app%3Dsettings")
        #expect(provider.configuration.podName == "cohort-0")
        let error = #expect(throws: CohortError.self) { try KubernetesDiscoveryPlugin().makeDiscovery(settings: PluginSettings(), environment: [:]) }
        #expect(error?.code == .badConfiguration)
    }
}
