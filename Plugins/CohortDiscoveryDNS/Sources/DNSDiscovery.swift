import CohortCore
import Logging
import NIOConcurrencyHelpers

/// Discovery through DNS: resolves a name — typically a Kubernetes headless Service, whose name
/// has one A/AAAA record per pod — every ``DNSDiscoveryConfiguration/pollInterval`` and proposes
/// each address with the cluster port.
///
/// It needs no API permissions, but it sees only what DNS publishes: by default a headless
/// Service lists only *ready* pods, and a Cohort node becomes ready only after it joined, so set
/// `publishNotReadyAddresses: true` on the Service (see docs/discovery.md).
///
/// A failed lookup (NXDOMAIN while no pod is published, a timeout, a resolver error) **keeps the
/// last known view**; the lookup is retried with exponential backoff and jitter, and the failure
/// detector alone decides that a member is gone. Problems are logged once per change of state.
public final class DNSDiscovery: DiscoveryProvider {
    /// The configuration.
    public let configuration: DNSDiscoveryConfiguration
    private let resolver: any DNSResolver
    private let logger: Logger
    private let lastError = NIOLockedValueBox<CohortError?>(nil)

    /// Creates the provider.
    ///
    /// - Parameters:
    ///   - configuration: the name, the port and the timers.
    ///   - resolver: the resolver (the system's by default; inject one in tests).
    ///   - logger: where problems are logged.
    public init(configuration: DNSDiscoveryConfiguration, resolver: (any DNSResolver)? = nil, logger: Logger = Logger(label: "cohort.discovery.dns")) {
        self.configuration = configuration
        self.resolver = resolver ?? SystemDNSResolver(family: configuration.family)
        self.logger = logger
    }

    public var name: String { "dns" }

    /// The error of the latest failed lookup, until one succeeds again.
    public var latestError: CohortError? { lastError.withLockedValue { $0 } }

    /// The candidates for some resolved addresses: sorted, without duplicates and without this
    /// node (its pod IP or its own address).
    public func candidates(addresses: [String], local: Member) -> [Endpoint] {
        let port = configuration.port ?? local.endpoint.port
        let endpoints = Set(addresses.filter { $0 != configuration.podIP }.map { Endpoint(host: $0, port: port) })
        return endpoints.filter { $0 != local.endpoint }.sorted { ($0.host, $0.port) < ($1.host, $1.port) }
    }

    public func run(local: Member, report: @escaping @Sendable (DiscoveryEvent) -> Void) async throws {
        var lastView: [Endpoint]?
        var failures = 0
        var reported: String?
        let name = configuration.serviceName
        while !Task.isCancelled {
            do {
                let addresses = try await Self.withTimeout(configuration.timeout, name: name) { [resolver] in
                    try await resolver.resolve(name)
                }
                let view = candidates(addresses: addresses, local: local)
                if failures > 0 { logger.info("dns discovery of [\(name)] works again after [\(failures)] failed lookups") }
                lastView = view
                failures = 0
                reported = nil
                lastError.withLockedValue { $0 = nil }
                report(.candidates(view))
            } catch {
                if Task.isCancelled || error is CancellationError { throw CancellationError() }
                let failure = (error as? CohortError) ?? CohortError(.connectionFailed, "cannot resolve '\(name)': \(error)", cause: error)
                failures += 1
                lastError.withLockedValue { $0 = failure }
                let key = "\(failure.code):\(failure.message)"
                if key != reported {
                    reported = key
                    let kept = lastView.map { "keeping the last [\($0.count)] candidates" } ?? "no candidates known yet"
                    logger.warning("dns discovery failed (\(kept)): \(failure.message)")
                }
                // Keep the last known view: an error never empties the candidate list.
                if let lastView { report(.candidates(lastView)) }
            }
            try await Task.sleep(for: configuration.delay(afterFailures: failures, random: Double.random(in: 0..<1)))
        }
        throw CancellationError()
    }

    static func withTimeout(_ timeout: Duration, name: String, _ operation: @escaping @Sendable () async throws -> [String]) async throws -> [String] {
        try await withThrowingTaskGroup(of: [String].self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw CohortError(.timeout, "resolving '\(name)' took longer than \(timeout)")
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw CancellationError() }
            return first
        }
    }
}
