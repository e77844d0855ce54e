import Cohort
import CohortDiscoveryKubernetes
import CohortTestKit
import Foundation
import NIOConcurrencyHelpers
import Testing

/// Real `cohort node` processes that find each other through the (stub) Kubernetes API, set up
/// with the same environment variables a pod has. Every address is on 127.0.0.0/8: the "pods"
/// listen on 127.0.0.2, .3 and .4, the API on 127.0.0.1.
@Suite(
    "cohort node --discovery kubernetes",
    .enabled(if: TestPKI.available && NodeProcess.available, "needs openssl and the built cohort executable (swift build)"),
    .timeLimit(.minutes(2))
)
struct KubernetesEndToEndTests {
    @Test func nodesJoinTheMembersThePodListNames() async throws {
        try await withStub { harness in
            let processes = NodeGroup()
            defer { processes.killAll() }
            try await joinThroughTheAPI(harness, processes)
        }
    }

    func joinThroughTheAPI(_ harness: StubHarness, _ processes: NodeGroup) async throws {
        let hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        for (index, host) in hosts.enumerated() {
            let environment = [
                "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": "\(harness.stub.port)",
                "KUBERNETES_CA_CERTIFICATE_FILE": harness.pki.caFile,
                "SA_TOKEN_FILE": harness.tokenFile,
                "POD_NAMESPACE": "demo",
                "KUBERNETES_LABELS": "app=cohort",
                "POD_NAME": "cohort-\(index)",
                "POD_IP": host,
            ]
            processes.add(try NodeProcess([
                "node", "--name", "k\(index)", "--listen", "\(host):0", "--discovery", "kubernetes",
                "--discovery-setting", "portName=cluster", "--discovery-setting", "pollIntervalMs=100",
            ], environment: environment))
        }
        let nodes = processes.all
        // Each node prints `listening NAME HOST:PORT id …` once it is bound.
        var ports: [Int] = []
        for (index, node) in nodes.enumerated() {
            #expect(await node.wait(for: .seconds(60)) { $0.contains { $0.hasPrefix("listening k\(index) ") } }, "\(node.output) \(node.errors)")
            let line = try #require(node.output.first { $0.hasPrefix("listening k\(index) ") })
            let endpoint = try Endpoint(parsing: String(line.split(separator: " ")[2]))
            #expect(endpoint.host == hosts[index])
            ports.append(endpoint.port)
        }

        // The PodList the "API" serves, written now that the ports are known: the three
        // nodes, plus pods that must not be joined.
        var pods = hosts.indices.map { PodSpec(name: "cohort-\($0)", ip: hosts[$0], ports: ["cluster": ports[$0]]) }
        pods.append(PodSpec(name: "cohort-pending", ip: "127.0.0.5", phase: "Pending", ready: false, ports: ["cluster": ports[0]]))
        pods.append(PodSpec(name: "other-app", ip: "127.0.0.6", labels: ["app": "other"], ports: ["cluster": ports[0]]))
        let podList = PodListJSON.list(pods)
        try podList.write(toFile: harness.directory.file("podlist.json"), atomically: true, encoding: .utf8)
        harness.serve(try String(contentsOfFile: harness.directory.file("podlist.json"), encoding: .utf8))

        for (index, node) in nodes.enumerated() {
            let others = hosts.indices.filter { $0 != index }.map { "member-added k\($0) " }
            let joined = await node.wait(for: .seconds(60)) { lines in others.allSatisfy { other in lines.contains { $0.hasPrefix(other) } } }
            #expect(joined, "k\(index) did not add both others: \(node.output)\n\(node.errors)")
            #expect(node.output.filter { $0.hasPrefix("member-added") }.count == 2, "\(node.output)")
        }
        // A message reaches both others. Right after a simultaneous join the transport may still
        // be settling duplicate connections (a send then reports "replaced by a newer
        // connection"), so a failed send is retried a few times.
        var delivered = false
        for _ in 0..<5 where !delivered {
            let outcomes = { (lines: [String]) in lines.filter { $0.hasPrefix("sent to") || $0.hasPrefix("send failed") }.count }
            let before = outcomes(nodes[0].output)
            nodes[0].send("hello over kubernetes discovery")
            _ = await nodes[0].wait(for: .seconds(60)) { outcomes($0) > before }
            delivered = nodes[0].output.contains("sent to 2/2 members")
        }
        #expect(delivered, "\(nodes[0].output)")
        for node in nodes.dropFirst() {
            #expect(await node.wait(for: .seconds(60)) { $0.contains("received from k0: hello over kubernetes discovery") }, "\(node.output)")
        }

        // What reached the API: the namespace, the URL-encoded selector, the token.
        #expect(await eventually { harness.stub.requests.count >= 3 })
        let requests = harness.stub.requests
        #expect(requests.allSatisfy { $0.path == "/api/v1/namespaces/demo/pods" && $0.rawParameter("labelSelector") == "app%3Dcohort" })
        #expect(requests.allSatisfy { $0.bearer == fakeServiceAccountToken(namespace: "demo", account: "cohort", serial: 1) })

        for node in nodes { node.signal(SIGTERM) }
        for node in nodes { #expect(await node.waitForExit(.seconds(60)) != nil, "\(node.output)") }
    }

    @Test func aNodeOutsideAClusterRefusesToStartWithAClearMessage() async throws {
        let node = try NodeProcess(["node", "--name", "lost", "--listen", "127.0.0.1:0", "--discovery", "kubernetes"], environment: [:])
        defer { node.signal(SIGKILL) }
        let status = await node.waitForExit(.seconds(60))
        #expect(status == 2, "\(node.output) \(node.errors)")
        #expect(await eventually(timeout: .seconds(30)) { node.errors.contains("KUBERNETES_SERVICE_HOST") }, "\(node.errors)")
        #expect(!node.output.contains { $0.hasPrefix("listening") })
    }
}

/// The processes a test started; killed at the end whatever happened.
final class NodeGroup: Sendable {
    private let nodes = NIOLockedValueBox<[NodeProcess]>([])

    func add(_ node: NodeProcess) { nodes.withLockedValue { $0.append(node) } }
    var all: [NodeProcess] { nodes.withLockedValue { $0 } }
    func killAll() { for node in all { node.signal(SIGKILL) } }
}
