import Cohort
import Testing

/// Safe by default: a node reachable beyond loopback without credentials refuses to start.
@Suite("security configuration")
struct SecurityConfigurationTests {
    @Test func aListenerBeyondLoopbackNeedsCredentialsOrAnExplicitInsecure() throws {
        for host in ["0.0.0.0", "::", "10.1.2.3", "cohort-0.cohort.svc"] {
            let open = ClusterConfiguration(name: "n", listen: Endpoint(host: host, port: 4000))
            let error = #expect(throws: CohortError.self, "\(host)") { try open.validate() }
            #expect(error?.code == .unauthenticated)
            #expect(error?.message.contains("cohort key") == true && error?.message.contains("COHORT_INSECURE") == true)

            var keyed = open
            keyed.clusterKeys = [ClusterKey.generate()]
            #expect(throws: Never.self) { try keyed.validate() }
            var tls = open
            (tls.tlsCertificateFile, tls.tlsKeyFile, tls.tlsCAFile) = ("a.crt", "a.key", "ca.crt")
            #expect(throws: Never.self) { try tls.validate() }
            var insecure = open
            insecure.insecure = true
            #expect(throws: Never.self) { try insecure.validate() }
        }
        for host in ["127.0.0.1", "127.0.0.2", "::1", "localhost"] {
            #expect(throws: Never.self, "\(host)") { try ClusterConfiguration(name: "n", listen: Endpoint(host: host, port: 4000)).validate() }
        }
    }

    @Test func keysAndTheInsecureFlagLoadFromTheEnvironmentWithoutShowingTheSecret() throws {
        let key = ClusterKey.generate(id: 4)
        let loaded = try ClusterConfiguration.load(file: nil, environment: ["COHORT_LISTEN": "0.0.0.0:4000", "COHORT_CLUSTER_KEYS": key.text])
        #expect(loaded.clusterKeys == [key])
        let insecure = try ClusterConfiguration.load(file: nil, environment: ["COHORT_LISTEN": "0.0.0.0:4000", "COHORT_INSECURE": "true"])
        #expect(insecure.insecure)
        let bad = #expect(throws: CohortError.self) {
            try ClusterConfiguration.load(file: nil, environment: ["COHORT_CLUSTER_KEYS": "4:" + String(key.text.dropFirst(2).dropLast(2))])
        }
        #expect(bad?.message.contains(String(key.text.dropFirst(2).prefix(16))) == false, "an error message must not show the key")
        // Partial TLS settings, and TLS with keys, are refused.
        #expect(throws: CohortError.self) { try ClusterConfiguration.load(file: nil, environment: ["COHORT_TLS_CERTIFICATE_FILE": "a.crt"]) }
        #expect(throws: CohortError.self) {
            try ClusterConfiguration.load(file: nil, environment: ["COHORT_TLS_CERTIFICATE_FILE": "a.crt", "COHORT_TLS_KEY_FILE": "a.key", "COHORT_TLS_CA_FILE": "ca.crt", "COHORT_CLUSTER_KEYS": key.text])
        }
    }
}
