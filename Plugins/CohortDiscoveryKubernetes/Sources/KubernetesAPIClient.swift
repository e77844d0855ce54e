import AsyncHTTPClient
import CohortCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// Lists pods through the Kubernetes API server (AsyncHTTPClient, TLS verified against the
/// cluster CA, bearer token of the service account). One instance belongs to one polling loop.
struct KubernetesAPIClient {
    let configuration: KubernetesDiscoveryConfiguration
    private var http: HTTPClient?
    private(set) var token: ServiceAccountToken

    init(configuration: KubernetesDiscoveryConfiguration) {
        self.configuration = configuration
        self.token = ServiceAccountToken(path: configuration.tokenFile)
    }

    /// Fetches and decodes the pod list. After a 401 the token file is read again (the token
    /// may have rotated) and the request is repeated once.
    ///
    /// - Throws: ``CohortError`` — `badConfiguration` for missing credentials, a refused token,
    ///   missing RBAC permissions or a wrong API path; `timeout` or `connectionFailed` for
    ///   everything transient.
    mutating func listPods() async throws -> KubernetesPodList {
        let client = try makeClientIfNeeded()
        var bearer = try bearerToken(forceReload: false)
        var (status, body) = try await get(client, bearer: bearer)
        if status == 401 {
            bearer = try bearerToken(forceReload: true)
            (status, body) = try await get(client, bearer: bearer)
        }
        switch status {
        case 200:
            return try KubernetesPodList.decode(body)
        case 401:
            throw CohortError(
                .badConfiguration,
                "the Kubernetes API server refused the service-account token from \(configuration.tokenFile) (401 Unauthorized), also after reading it again; check that the token is current and meant for this cluster\(Self.apiMessage(body))"
            )
        case 403:
            throw CohortError(.badConfiguration, forbiddenMessage(bearer: bearer, body: body))
        case 404:
            throw CohortError(
                .badConfiguration,
                "the Kubernetes API has no \(configuration.podsURL) (404 Not Found); check apiVersion ('\(configuration.apiVersion)') and the API address\(Self.apiMessage(body))"
            )
        default:
            throw CohortError(.connectionFailed, "the Kubernetes API answered HTTP \(status) to the pod list request\(Self.apiMessage(body))")
        }
    }

    /// Shuts the HTTP client down.
    mutating func shutdown() async {
        if let http { try? await http.shutdown() }
        http = nil
    }

    // MARK: - credentials

    private mutating func bearerToken(forceReload: Bool) throws -> String? {
        // Plain http (kubectl proxy) may run without a token; over https one is required.
        if configuration.apiProtocol == "http" && FileIdentity(path: configuration.tokenFile) == nil { return nil }
        return try token.current(forceReload: forceReload)
    }

    private mutating func makeClientIfNeeded() throws -> HTTPClient {
        if let http { return http }
        var settings = HTTPClient.Configuration()
        if configuration.apiProtocol == "https" {
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMFile(configuration.caFile)
            } catch {
                throw CohortError(
                    .badConfiguration,
                    "discovery.kubernetes cannot read the cluster CA certificate \(configuration.caFile) (\(error)); it is mounted with the service account, or set the 'caFile' setting / KUBERNETES_CA_CERTIFICATE_FILE",
                    cause: error
                )
            }
            guard !certificates.isEmpty else {
                throw CohortError(.badConfiguration, "discovery.kubernetes: the CA file \(configuration.caFile) holds no PEM certificate")
            }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(certificates)
            settings.tlsConfiguration = tls
        }
        settings.timeout = .init(connect: Self.amount(configuration.connectTimeout), read: Self.amount(configuration.requestTimeout))
        settings.httpVersion = .http1Only
        settings.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: settings)
        http = client
        return client
    }

    // MARK: - the request

    private func get(_ client: HTTPClient, bearer: String?) async throws -> (UInt, [UInt8]) {
        var request = HTTPClientRequest(url: configuration.podsURL)
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/json")
        if let bearer { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        let prepared = request
        let timeout = configuration.requestTimeout
        let limit = configuration.maxResponseBytes
        do {
            return try await Self.withTimeout(timeout) {
                let response = try await client.execute(prepared, timeout: Self.amount(timeout))
                var body = try await response.body.collect(upTo: limit)
                return (response.status.code, body.readBytes(length: body.readableBytes) ?? [])
            }
        } catch let error as CohortError {
            throw error
        } catch let error as HTTPClientError where Self.timeouts.contains(error) {
            throw CohortError(.timeout, "the Kubernetes API at \(Self.origin(configuration)) did not answer in time (\(error))", cause: error)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw CohortError(.connectionFailed, "cannot list pods at \(Self.origin(configuration)): \(error)", cause: error)
        }
    }

    private static let timeouts: [HTTPClientError] = [.connectTimeout, .readTimeout, .deadlineExceeded, .tlsHandshakeTimeout]

    private func forbiddenMessage(bearer: String?, body: [UInt8]) -> String {
        let namespace = configuration.namespace
        let account = bearer.flatMap(ServiceAccountToken.serviceAccount(ofJWT:))
        let who = account.map { "service account '\($0.name)' (namespace '\($0.namespace)')" } ?? "the pod's service account (spec.serviceAccountName)"
        return "the Kubernetes API refused to list pods in namespace '\(namespace)' (403 Forbidden) for \(who): "
            + "create a Role in namespace '\(namespace)' that grants the verbs get and list (and watch) on the resource pods (apiGroups: [\"\"]), "
            + "and a RoleBinding of that Role to \(who) — docs/deploy/kubernetes/rbac.yaml is an example\(Self.apiMessage(body))"
    }

    // MARK: - helpers

    /// The `message` of a Kubernetes `Status` answer, as a suffix for an error message.
    static func apiMessage(_ body: [UInt8]) -> String {
        guard !body.isEmpty else { return "" }
        if let object = try? JSONSerialization.jsonObject(with: Data(body.prefix(65536))) as? [String: Any],
            let message = object["message"] as? String
        {
            return " — API said: \(message)"
        }
        return " — API said: \(String(decoding: body.prefix(200), as: UTF8.self))"
    }

    static func origin(_ configuration: KubernetesDiscoveryConfiguration) -> String {
        let host = configuration.apiHost.contains(":") ? "[\(configuration.apiHost)]" : configuration.apiHost
        return "\(configuration.apiProtocol)://\(host):\(configuration.apiPort)"
    }

    static func amount(_ duration: Duration) -> TimeAmount {
        let parts = duration.components
        return .nanoseconds(parts.seconds * 1_000_000_000 + parts.attoseconds / 1_000_000_000)
    }

    /// Runs an operation, cancelling it when it takes longer than `timeout`.
    static func withTimeout<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw CohortError(.timeout, "the Kubernetes API did not answer within \(timeout)")
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw CancellationError() }
            return first
        }
    }
}
