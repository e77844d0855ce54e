import Cohort
import CohortDiscoveryKubernetes
import Foundation
import Testing

/// The Kubernetes deployment bundle in docs/deploy/kubernetes: it parses, and its pieces fit
/// together (RBAC for the service account the pods use, probes on the app's endpoints, a grace
/// period longer than the node's hand-off, a rolling update that never drops below the replica
/// count, the discovery settings matching the pod spec, a preStop hook that lets the hand-off
/// finish, a NetworkPolicy that admits only members to the cluster port, a Dockerfile that builds
/// the static binary and runs it as the non-root user the Deployment expects).
@Suite("Kubernetes deployment bundle")
struct KubernetesBundleTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let bundle = repository.appendingPathComponent("docs/deploy/kubernetes")

    func documents(_ file: String) throws -> [YAMLNode] {
        let text = try String(contentsOf: Self.bundle.appendingPathComponent(file), encoding: .utf8)
        return try MiniYAML.documents(text)
    }

    func all() throws -> [YAMLNode] {
        try ["rbac.yaml", "service.yaml", "deployment.yaml", "networkpolicy.yaml"].flatMap { try documents($0) }
    }

    func one(_ kind: String, named name: String? = nil) throws -> YAMLNode {
        let matches = try all().filter { $0["kind"]?.string == kind && (name == nil || $0["metadata", "name"]?.string == name) }
        return try #require(matches.first, "no \(kind) \(name ?? "")")
    }

    var container: YAMLNode {
        get throws { try #require(try one("Deployment")["spec", "template", "spec", "containers", 0]) }
    }

    func env(_ name: String) throws -> YAMLNode? {
        try container["env"]?.items.first { $0["name"]?.string == name }
    }

    @Test func everyDocumentIsAKubernetesObject() throws {
        let objects = try all()
        #expect(objects.count == 8)
        for object in objects {
            #expect(object["apiVersion"]?.string?.isEmpty == false, "\(object)")
            #expect(object["metadata", "name"]?.string?.isEmpty == false, "\(object)")
        }
        #expect(Set(objects.compactMap { $0["kind"]?.string }) == ["ServiceAccount", "Role", "RoleBinding", "Service", "Deployment", "PodDisruptionBudget", "NetworkPolicy"])
        let kustomization = try #require(try documents("kustomization.yaml").first)
        #expect(kustomization["resources"]?.strings == ["rbac.yaml", "service.yaml", "deployment.yaml", "networkpolicy.yaml"])
    }

    @Test func theRoleLetsThePodsServiceAccountListPods() throws {
        let role = try one("Role")
        let rule = try #require(role["rules"]?.items.first { $0["resources"]?.strings.contains("pods") == true })
        #expect(rule["apiGroups"]?.strings == [""])
        let verbs = Set(rule["verbs"]?.strings ?? [])
        #expect(verbs.isSuperset(of: ["get", "list"]))
        #expect(rule["resources"]?.strings == ["pods"], "read pods only")
        #expect(!(rule["verbs"]?.strings ?? []).contains { ["create", "update", "patch", "delete", "*"].contains($0) })

        let account = try one("ServiceAccount")["metadata", "name"]?.string
        let binding = try one("RoleBinding")
        #expect(binding["roleRef", "kind"]?.string == "Role")
        #expect(binding["roleRef", "name"]?.string == role["metadata", "name"]?.string)
        #expect(binding["subjects"]?.items.contains { $0["kind"]?.string == "ServiceAccount" && $0["name"]?.string == account } == true)
        #expect(try one("Deployment")["spec", "template", "spec", "serviceAccountName"]?.string == account)
    }

    @Test func theDeploymentRollsWithoutLosingCapacityAndProbesTheApp() throws {
        let deployment = try one("Deployment")
        let spec = try #require(deployment["spec"])
        #expect(spec["strategy", "type"]?.string == "RollingUpdate")
        #expect(spec["strategy", "rollingUpdate", "maxUnavailable"]?.int == 0)
        #expect(spec["strategy", "rollingUpdate", "maxSurge"]?.int == 1)
        let labels = try #require(spec["template", "metadata", "labels"])
        #expect(spec["selector", "matchLabels"] == labels)

        let container = try self.container
        #expect(container["image"]?.string == "cohort-demo:latest")
        #expect(container["args", 0]?.string == "serve")
        #expect(container["readinessProbe", "httpGet", "path"]?.string == "/ready")
        #expect(container["livenessProbe", "httpGet", "path"]?.string == "/alive")
        let portNames = container["ports"]?.items.compactMap { $0["name"]?.string } ?? []
        #expect(portNames.contains(container["readinessProbe", "httpGet", "port"]?.string ?? "?"))
        #expect(portNames.contains(container["livenessProbe", "httpGet", "port"]?.string ?? "?"))
        let httpPort = container["ports"]?.items.first { $0["name"]?.string == "http" }?["containerPort"]?.int
        #expect(container["args"]?.strings.contains("--http-port=\(httpPort ?? -1)") == true)
        #expect(container["args"]?.strings.contains("--http-host=0.0.0.0") == true, "probes come from outside the pod")
    }

    @Test func theGracePeriodCoversTheGracefulHandOff() throws {
        let args = try container["args"]?.strings ?? []
        // `cohort serve --grace N`; the node's own default is 20 s.
        let grace = args.first { $0.hasPrefix("--grace=") }.flatMap { Int($0.dropFirst("--grace=".count)) } ?? 20
        #expect(grace >= 20)
        let termination = try #require(try one("Deployment")["spec", "template", "spec", "terminationGracePeriodSeconds"]?.int)
        #expect(termination >= grace + 5, "Kubernetes must not SIGKILL a node in the middle of its hand-off (\(termination) s vs --grace \(grace) s)")
    }

    /// The value of `--flag=VALUE` or `--flag VALUE` in a command line.
    func value(of flag: String, in arguments: [String]) -> String? {
        if let inline = arguments.first(where: { $0.hasPrefix(flag + "=") }) { return String(inline.dropFirst(flag.count + 1)) }
        guard let index = arguments.firstIndex(of: flag), index + 1 < arguments.count else { return nil }
        return arguments[index + 1]
    }

    @Test func thePreStopHookLeavesGracefullyWithinTheTerminationGracePeriod() throws {
        let container = try self.container
        let command = container["lifecycle", "preStop", "exec", "command"]?.strings ?? []
        #expect(command.first == "cohort" && command.dropFirst().first == "leave", "preStop runs `cohort leave`: \(command)")
        // It talks to the loopback-only admin server the container starts.
        let args = container["args"]?.strings ?? []
        let adminPort = try #require(value(of: "--admin-port", in: args), "the container starts no admin server (--admin-port)")
        #expect(value(of: "--admin", in: command) == "127.0.0.1:\(adminPort)")
        // It waits for the hand-off, and Kubernetes waits for it and then for the node's own stop.
        let wait = try #require(value(of: "--wait", in: command).flatMap(Int.init), "the hook must wait until the node has left (--wait)")
        let delay = value(of: "--delay", in: command).flatMap(Int.init) ?? 0
        #expect(wait >= 10, "a hand-off needs time (\(wait) s)")
        let grace = value(of: "--grace", in: args).flatMap(Int.init) ?? 20
        let termination = try #require(try one("Deployment")["spec", "template", "spec", "terminationGracePeriodSeconds"]?.int)
        #expect(termination >= delay + wait + grace + 5, "SIGKILL would cut the hook or the stop short: \(termination) s < \(delay) + \(wait) + \(grace) + 5 s")
        // The admin port is not a container port: nothing outside the pod reaches it.
        #expect(!(container["ports"]?.items.contains { $0["containerPort"]?.string == adminPort } ?? false))
    }

    @Test func theNetworkPolicyAdmitsOnlyMembersToTheClusterPort() throws {
        let policy = try one("NetworkPolicy")
        let labels = try #require(try one("Deployment")["spec", "template", "metadata", "labels"])
        #expect(policy["spec", "podSelector", "matchLabels"] == labels, "the policy must select the cohort pods")
        #expect(policy["spec", "policyTypes"]?.strings.contains("Ingress") == true)
        let clusterPort = try container["ports"]?.items.first { $0["name"]?.string == "cluster" }?["containerPort"]?.string
        let rules = policy["spec", "ingress"]?.items ?? []
        func covers(_ rule: YAMLNode, _ names: [String?]) -> Bool {
            guard let ports = rule["ports"] else { return true }  // no ports: every port
            return ports.items.contains { names.contains($0["port"]?.string) }
        }
        let clusterRules = rules.filter { covers($0, ["cluster", clusterPort]) }
        #expect(!clusterRules.isEmpty, "no rule admits the members to the cluster port")
        for rule in clusterRules {
            let peers = rule["from"]?.items ?? []
            #expect(!peers.isEmpty, "a rule without `from` admits everyone to the cluster port")
            for peer in peers {
                #expect(peer.keys == ["podSelector"], "only pods of this namespace: \(peer)")
                #expect(peer["podSelector", "matchLabels"] == labels, "only the members' pods: \(peer)")
            }
        }
        // The app stays reachable.
        #expect(rules.contains { covers($0, ["http"]) && $0["from"] == nil })
    }

    @Test func theDockerfileBuildsTheStaticBinaryAndRunsItAsTheDeploymentsUser() throws {
        let text = try String(contentsOf: Self.repository.appendingPathComponent("docs/deploy/Dockerfile"), encoding: .utf8)
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.hasPrefix("#") }
        #expect(text.contains("swift build -c release --static-swift-stdlib --product cohort"))
        let stages = lines.filter { $0.hasPrefix("FROM ") }
        #expect(stages.count == 2, "a build stage and a run stage")
        #expect(stages.last?.contains("swift") == false, "the run stage carries no toolchain")
        let user = try #require(lines.last { $0.hasPrefix("USER ") }).dropFirst("USER ".count)
        let uid = try #require(user.split(separator: ":").first.flatMap { Int($0) })
        #expect(uid != 0)
        #expect(try container["securityContext", "runAsUser"]?.int == uid, "runAsNonRoot checks the numeric user")
        #expect(lines.contains { $0.hasPrefix("ENTRYPOINT") && $0.contains("cohort") })
        #expect(try container["command", 0]?.string == "cohort")
    }

    @Test func thePodsKnowWhoTheyAreAndHowToFindEachOther() throws {
        for (name, field) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"), ("POD_IP", "status.podIP")] {
            #expect(try env(name)?["valueFrom", "fieldRef", "fieldPath"]?.string == field, "\(name)")
        }
        #expect(try env("COHORT_DISCOVERY")?["value"]?.string == "kubernetes")
        // The cluster key comes from a Secret, never from the manifest itself.
        #expect(try env("COHORT_CLUSTER_KEYS")?["valueFrom", "secretKeyRef", "name"]?.string == "cohort-cluster-key")
        #expect(try env("COHORT_CLUSTER_KEYS")?["valueFrom", "secretKeyRef", "key"]?.string == "keys")
        #expect(try env("COHORT_CLUSTER_KEYS")?["value"] == nil)
        #expect(try container["args"]?.strings.contains("--listen=$(POD_IP):4001") == true)
        // The label selector matches the pod template's labels.
        let selector = try #require(try env("KUBERNETES_LABELS")?["value"]?.string)
        let labels = try one("Deployment")["spec", "template", "metadata", "labels"]
        for requirement in selector.split(separator: ",") {
            let parts = requirement.split(separator: "=", maxSplits: 1).map(String.init)
            #expect(parts.count == 2 && labels?[parts[0]]?.string == parts[1], "\(requirement)")
        }
        // The named port the discovery reads is a container port.
        let settings = try #require(try env("COHORT_DISCOVERY_SETTINGS")?["value"]?.string)
        let portName = settings.split(separator: ",").first { $0.hasPrefix("portName=") }.map { String($0.dropFirst("portName=".count)) }
        #expect(try container["ports"]?.items.contains { $0["name"]?.string == portName } == true)
        // The settings are ones the plugin reads.
        let keys = settings.split(separator: ",").compactMap { $0.split(separator: "=").first.map(String.init) }
        #expect(keys.allSatisfy { key in KubernetesDiscoveryConfiguration.Key.all.contains { $0.setting == key } })
    }

    @Test func theHeadlessServicePublishesPodsBeforeTheyAreReady() throws {
        let service = try one("Service", named: "cohort-demo-cluster")
        #expect(service["spec", "clusterIP"]?.string == "None")
        #expect(service["spec", "publishNotReadyAddresses"]?.string == "true")
        let labels = try one("Deployment")["spec", "template", "metadata", "labels"]
        #expect(service["spec", "selector"] == labels)
        #expect(service["spec", "ports", 0, "targetPort"]?.string == "cluster")
    }

    @Test func theGuideDocumentsEverySettingAndVariable() throws {
        let guide = try String(contentsOf: Self.repository.appendingPathComponent("docs/kubernetes.md"), encoding: .utf8)
        for key in KubernetesDiscoveryConfiguration.Key.all {
            #expect(guide.contains("`\(key.setting)`"), "docs/kubernetes.md does not mention the setting \(key.setting)")
            for name in key.environment { #expect(guide.contains("`\(name)`"), "docs/kubernetes.md does not mention \(name)") }
        }
        let discovery = try String(contentsOf: Self.repository.appendingPathComponent("docs/discovery.md"), encoding: .utf8)
        #expect(discovery.contains("publishNotReadyAddresses"))
    }

    @Test func theParserRejectsWhatItDoesNotUnderstand() {
        #expect(throws: MiniYAML.ParseError.self) { try MiniYAML.documents("a: 1\n  b: 2\n") }
        #expect(throws: MiniYAML.ParseError.self) { try MiniYAML.documents("a: |\n  text\n") }
        #expect(throws: MiniYAML.ParseError.self) { try MiniYAML.documents("a: 1\na: 2\n") }
        let parsed = try? MiniYAML.documents("a:\n- x: 1 # note\n  y: \"2\"\n- z\nb: [p, 'q']\n---\nc: d\n")
        #expect(parsed?.count == 2)
        #expect(parsed?.first?["a", 0, "y"]?.string == "2")
        #expect(parsed?.first?["a", 1]?.string == "z")
        #expect(parsed?.first?["b"]?.strings == ["p", "q"])
    }
}
