import Cohort
import CohortDiscoveryKubernetes
import CohortTestKit
import Foundation
import Logging
import NIOConcurrencyHelpers

/// A running API stub, a token file and a CA, with a helper to make providers pointed at them.
final class StubHarness: Sendable {
    let pki: TestPKI
    let stub: KubernetesAPIStub
    let directory: ScratchDirectory
    let capture = LogCapture(level: .info)
    /// The list the default responder serves (filtered by the request's label selector).
    let served = NIOLockedValueBox<String>(PodListJSON.list([]))

    var tokenFile: String { directory.file("token") }

    private init(pki: TestPKI, stub: KubernetesAPIStub, directory: ScratchDirectory) {
        self.pki = pki
        self.stub = stub
        self.directory = directory
    }

    /// Starts a stub that serves ``served`` to any request, and writes a first token.
    static func start() async throws -> StubHarness {
        let pki = try TestPKI.get()
        let served = NIOLockedValueBox<String>(PodListJSON.list([]))
        let stub = try await KubernetesAPIStub.start(pki: pki) { request in
            .json(status: 200, body: PodListJSON.filter(served.withLockedValue { $0 }, selector: request.parameter("labelSelector")))
        }
        let harness = StubHarness(pki: pki, stub: stub, directory: try ScratchDirectory())
        harness.serveDefault()
        try harness.writeToken(fakeServiceAccountToken(namespace: "demo", account: "cohort", serial: 1))
        return harness
    }

    /// Serves ``served`` again (after a test replaced the responder).
    func serveDefault() {
        let served = self.served
        stub.respond { request in
            .json(status: 200, body: PodListJSON.filter(served.withLockedValue { $0 }, selector: request.parameter("labelSelector")))
        }
    }

    /// Sets the PodList JSON the default responder serves.
    func serve(_ json: String) { served.withLockedValue { $0 = json } }

    /// Replaces the token file atomically (new inode), as the kubelet rotates it.
    func writeToken(_ token: String) throws { try directory.write(token, to: "token") }

    /// A configuration pointed at the stub, with quick polls and generous request timeouts (a
    /// loaded machine must not turn a slow answer into a failure the test did not ask for);
    /// `extra` settings win.
    func configuration(_ extra: [String: String] = [:]) throws -> KubernetesDiscoveryConfiguration {
        var settings = [
            "apiHost": "127.0.0.1", "apiPort": "\(stub.port)", "namespace": "demo", "caFile": pki.caFile,
            "tokenFile": tokenFile, "pollIntervalMs": "40", "backoffInitialMs": "20", "backoffMaxMs": "80",
            "requestTimeoutMs": "20000", "connectTimeoutMs": "10000",
        ]
        settings.merge(extra) { $1 }
        return try KubernetesDiscoveryConfiguration(settings: settings, environment: [:]) { _ in nil }
    }

    /// A provider pointed at the stub, logging into ``capture``.
    func provider(_ extra: [String: String] = [:]) throws -> KubernetesDiscovery {
        KubernetesDiscovery(configuration: try configuration(extra), logger: capture.logger("cohort.discovery.kubernetes"))
    }

    func close() async { await stub.close() }
}

/// Runs a test body with a started harness and closes it afterwards.
func withStub<T>(_ body: (StubHarness) async throws -> T) async throws -> T {
    let harness = try await StubHarness.start()
    do {
        let result = try await body(harness)
        await harness.close()
        return result
    } catch {
        await harness.close()
        throw error
    }
}
