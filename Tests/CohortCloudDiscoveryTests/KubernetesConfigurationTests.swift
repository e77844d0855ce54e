import Cohort
import CohortDiscoveryKubernetes
import Foundation
import Testing

/// Settings resolution (plugin settings over environment over defaults), the request URL and
/// the poll/backoff schedule — all pure.
@Suite("Kubernetes discovery configuration")
struct KubernetesConfigurationTests {
    let pod = ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"]
    func noFiles(_ path: String) -> String? { nil }

    @Test func inAPodTheDefaultsComeFromTheServiceAccountMount() throws {
        let configuration = try KubernetesDiscoveryConfiguration(settings: [:], environment: pod) { path in
            path == KubernetesDiscoveryConfiguration.defaultNamespaceFile ? "shop\n" : nil
        }
        #expect(configuration.apiHost == "10.96.0.1")
        #expect(configuration.apiPort == 443)
        #expect(configuration.apiProtocol == "https")
        #expect(configuration.namespace == "shop")
        #expect(configuration.tokenFile == "/var/run/secrets/kubernetes.io/serviceaccount/token")
        #expect(configuration.caFile == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
        #expect(configuration.labelSelector == nil)
        #expect(configuration.readyOnly == false)
        #expect(configuration.schedule.interval == .seconds(5))
        #expect(configuration.podsURL == "https://10.96.0.1:443/api/v1/namespaces/shop/pods")
    }

    @Test func environmentNamesOfCohortTomcatAndKubePing() throws {
        var environment = pod
        environment["POD_NAMESPACE"] = "from-downward-api"
        environment["KUBERNETES_LABELS"] = "app=cohort"
        environment["POD_NAME"] = "cohort-7d9-abcde"
        environment["POD_IP"] = "10.1.2.3"
        var configuration = try KubernetesDiscoveryConfiguration(settings: [:], environment: environment, readFile: noFiles)
        #expect(configuration.namespace == "from-downward-api")
        #expect(configuration.labelSelector == "app=cohort")
        #expect(configuration.podName == "cohort-7d9-abcde")
        #expect(configuration.podIP == "10.1.2.3")

        // Tomcat / KUBE_PING names carry over; OPENSHIFT_KUBE_PING_* is read first, as Tomcat does.
        environment["KUBERNETES_NAMESPACE"] = "tomcat-ns"
        environment["SA_TOKEN_FILE"] = "/secrets/token"
        environment["KUBERNETES_CA_CERTIFICATE_FILE"] = "/secrets/ca.pem"
        environment["KUBERNETES_MASTER_PROTOCOL"] = "http"
        environment["KUBERNETES_USE_NOT_READY_ADDRESSES"] = "false"
        configuration = try KubernetesDiscoveryConfiguration(settings: [:], environment: environment, readFile: noFiles)
        #expect(configuration.namespace == "tomcat-ns")
        #expect(configuration.tokenFile == "/secrets/token")
        #expect(configuration.caFile == "/secrets/ca.pem")
        #expect(configuration.apiProtocol == "http")
        #expect(configuration.readyOnly == true)

        environment["OPENSHIFT_KUBE_PING_NAMESPACE"] = "openshift-ns"
        environment["OPENSHIFT_KUBE_PING_LABELS"] = "application=eap-app"
        environment["OPENSHIFT_KUBE_PING_SA_TOKEN_FILE"] = "/os/token"
        configuration = try KubernetesDiscoveryConfiguration(settings: [:], environment: environment, readFile: noFiles)
        #expect(configuration.namespace == "openshift-ns")
        #expect(configuration.labelSelector == "application=eap-app")
        #expect(configuration.tokenFile == "/os/token")
    }

    @Test func pluginSettingsWinOverTheEnvironment() throws {
        var environment = pod
        environment["KUBERNETES_NAMESPACE"] = "env-ns"
        environment["KUBERNETES_LABELS"] = "app=env"
        environment["KUBERNETES_USE_NOT_READY_ADDRESSES"] = "false"
        let settings = [
            "namespace": "settings-ns", "labels": "app=settings", "apiHost": "127.0.0.1", "apiPort": "6443",
            "readyOnly": "false", "portName": "cluster", "port": "7800", "pollIntervalMs": "250",
            "backoffInitialMs": "100", "backoffMaxMs": "2000", "requestTimeoutMs": "700", "connectTimeoutMs": "300",
            "tokenFile": "/t", "caFile": "/c", "podName": "me",
        ]
        let configuration = try KubernetesDiscoveryConfiguration(settings: settings, environment: environment, readFile: noFiles)
        #expect(configuration.namespace == "settings-ns")
        #expect(configuration.labelSelector == "app=settings")
        #expect(configuration.apiHost == "127.0.0.1" && configuration.apiPort == 6443)
        #expect(configuration.readyOnly == false)
        #expect(configuration.portName == "cluster" && configuration.port == 7800)
        #expect(configuration.schedule == PollSchedule(interval: .milliseconds(250), initialBackoff: .milliseconds(100), maximumBackoff: .seconds(2)))
        #expect(configuration.requestTimeout == .milliseconds(700) && configuration.connectTimeout == .milliseconds(300))
        #expect(configuration.tokenFile == "/t" && configuration.caFile == "/c" && configuration.podName == "me")
        #expect(KubernetesDiscoveryConfiguration.unknownSettings(in: settings.merging(["prot": "1", "members": ""]) { $1 }) == ["prot"])
    }

    @Test func outsideAClusterTheErrorsSayWhatToSet() {
        let noHost = #expect(throws: CohortError.self) {
            try KubernetesDiscoveryConfiguration(settings: [:], environment: [:], readFile: noFiles)
        }
        #expect(noHost?.code == .badConfiguration)
        #expect(noHost?.message.contains("KUBERNETES_SERVICE_HOST") == true)

        let noNamespace = #expect(throws: CohortError.self) {
            try KubernetesDiscoveryConfiguration(settings: [:], environment: pod, readFile: noFiles)
        }
        #expect(noNamespace?.code == .badConfiguration)
        #expect(noNamespace?.message.contains("POD_NAMESPACE") == true)

        for (key, value) in [("apiPort", "http"), ("pollIntervalMs", "0"), ("readyOnly", "maybe"), ("namespace", "Not_A_Namespace"), ("apiProtocol", "ftp")] {
            let error = #expect(throws: CohortError.self, "\(key)=\(value)") {
                try KubernetesDiscoveryConfiguration(settings: ["namespace": "ns"].merging([key: value]) { $1 }, environment: pod, readFile: noFiles)
            }
            #expect(error?.code == .badConfiguration)
            #expect(error?.message.contains(key) == true || error?.message.contains(value) == true, "\(error?.message ?? "")")
        }
    }

    @Test func theLabelSelectorIsPercentEncodedAndIPv6HostsAreBracketed() {
        var configuration = KubernetesDiscoveryConfiguration(apiHost: "fd00::1", apiPort: 6443, namespace: "demo", labelSelector: "app=cohort,tier in (web, api),!canary")
        #expect(configuration.podsURL == "https://[fd00::1]:6443/api/v1/namespaces/demo/pods?labelSelector=app%3Dcohort%2Ctier%20in%20%28web%2C%20api%29%2C%21canary")
        configuration.labelSelector = ""
        #expect(configuration.podsURL == "https://[fd00::1]:6443/api/v1/namespaces/demo/pods")
        #expect(KubernetesDiscoveryConfiguration.percentEncoded("a.b-c_d~e/ö") == "a.b-c_d~e%2F%C3%B6")
    }

    @Test func everyDocumentedEnvironmentVariableIsKnown() {
        let names = Set(KubernetesDiscoveryConfiguration.Key.all.flatMap(\.environment))
        for name in ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBERNETES_NAMESPACE", "POD_NAMESPACE", "KUBERNETES_LABELS",
                     "OPENSHIFT_KUBE_PING_NAMESPACE", "OPENSHIFT_KUBE_PING_LABELS", "SA_TOKEN_FILE", "KUBERNETES_SA_TOKEN_FILE",
                     "KUBERNETES_CA_CERTIFICATE_FILE", "KUBERNETES_MASTER_PROTOCOL", "KUBERNETES_API_VERSION", "POD_NAME", "POD_IP"] {
            #expect(names.contains(name), "\(name)")
        }
    }

    @Test func backoffGrowsExponentiallyUpToTheCapWithBoundedJitter() {
        let schedule = PollSchedule(interval: .seconds(5), initialBackoff: .milliseconds(500), maximumBackoff: .seconds(30), jitter: 0.2)
        #expect(schedule.delay(afterFailures: 0, random: 0.7) == .seconds(5))
        let bases = (1...9).map { schedule.baseDelay(afterFailures: $0) }
        #expect(bases == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(30), .seconds(30), .seconds(30)])
        #expect(schedule.baseDelay(afterFailures: 10_000) == .seconds(30))
        for failures in 1...12 {
            let base = schedule.baseDelay(afterFailures: failures)
            for random in [0.0, 0.25, 0.5, 0.99] {
                let delay = schedule.delay(afterFailures: failures, random: random)
                #expect(delay <= base && delay > base * 0.8 - .milliseconds(1), "failures \(failures) random \(random): \(delay)")
            }
        }
        #expect(schedule.delay(afterFailures: 3, random: 0) == .seconds(2))
        #expect(schedule.delay(afterFailures: 3, random: 0.5) == .milliseconds(1800))
        let spread = Set((0..<50).map { _ in schedule.delay(afterFailures: 4) })
        #expect(spread.count > 1, "jitter spreads the retries")
    }

    @Test func serviceAccountNameComesFromTheTokenClaims() {
        let token = fakeServiceAccountToken(namespace: "shop", account: "cohort", serial: 1)
        let account = ServiceAccountToken.serviceAccount(ofJWT: token)
        #expect(account?.namespace == "shop" && account?.name == "cohort")
        #expect(ServiceAccountToken.serviceAccount(ofJWT: "opaque-token") == nil)
    }

    @Test func theTokenIsReReadOnlyWhenTheFileChanges() throws {
        let dir = try ScratchDirectory()
        var token = ServiceAccountToken(path: dir.file("token"))
        #expect(throws: CohortError.self) { try token.current() }
        try dir.write("first\n", to: "token")
        #expect(try token.current() == "first")
        #expect(try token.current() == "first")
        #expect(token.reads == 1)
        try dir.write("second", to: "token")
        #expect(try token.current() == "second")
        #expect(token.reads == 2)
        #expect(try token.current(forceReload: true) == "second")
        #expect(token.reads == 3)
    }
}
