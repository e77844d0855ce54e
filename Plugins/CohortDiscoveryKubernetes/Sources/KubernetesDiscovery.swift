import CohortCore
import Logging
import NIOConcurrencyHelpers

/// Discovery through the Kubernetes API: polls the pods of a namespace (optionally only those
/// matching a label selector) and proposes the running ones as candidates.
///
/// Discovery only proposes addresses; the node handshakes with each, and the failure detector —
/// never this provider — decides that a member is gone. Therefore a failed poll (API down,
/// timeout, truncated answer, 5xx, missing permissions) **keeps the last known view**: the
/// provider re-announces the last good list and retries with exponential backoff and jitter.
/// Only a successful answer replaces the list.
///
/// Problems are logged once when they start, once when they change and once when polls work
/// again — not on every poll. ``status`` shows the latest state.
///
/// ```swift
/// let configuration = try KubernetesDiscoveryConfiguration(
///     settings: ["labels": "app=shop"], environment: ProcessInfo.processInfo.environment,
///     readFile: { try? String(contentsOfFile: $0, encoding: .utf8) })
/// let discovery = KubernetesDiscovery(configuration: configuration)
/// ```
public final class KubernetesDiscovery: DiscoveryProvider {
    /// What the provider has seen so far.
    public struct Status: Sendable {
        /// Polls that returned a pod list.
        public var successfulPolls = 0
        /// Polls that failed.
        public var failedPolls = 0
        /// Failed polls since the last successful one.
        public var consecutiveFailures = 0
        /// The error of the latest failed poll, until a poll succeeds again.
        public var lastError: CohortError?
        /// The candidates of the latest successful poll.
        public var lastView: [Endpoint]?
        /// How often the token file was read.
        public var tokenReads = 0
    }

    /// The resolved configuration.
    public let configuration: KubernetesDiscoveryConfiguration
    private let logger: Logger
    private let state = NIOLockedValueBox(Status())

    /// Creates the provider.
    ///
    /// - Parameters:
    ///   - configuration: where the API is and what to list.
    ///   - logger: where problems are logged (once per change of state).
    public init(configuration: KubernetesDiscoveryConfiguration, logger: Logger = Logger(label: "cohort.discovery.kubernetes")) {
        self.configuration = configuration
        self.logger = logger
    }

    public var name: String { "kubernetes" }

    /// The latest state.
    public var status: Status { state.withLockedValue { $0 } }

    public func run(local: Member, report: @escaping @Sendable (DiscoveryEvent) -> Void) async throws {
        let filter = KubernetesPodFilter(configuration: configuration, local: local)
        var api = KubernetesAPIClient(configuration: configuration)
        logger.debug("kubernetes discovery polls [\(configuration.podsURL)] every [\(configuration.schedule.interval)]")
        do {
            try await poll(api: &api, filter: filter, report: report)
        } catch {
            await api.shutdown()
            throw error
        }
        await api.shutdown()
    }

    private func poll(api: inout KubernetesAPIClient, filter: KubernetesPodFilter, report: @escaping @Sendable (DiscoveryEvent) -> Void) async throws {
        var lastView: [Endpoint]?
        var failures = 0
        var reported: String?
        while !Task.isCancelled {
            do {
                let list = try await api.listPods()
                let decisions = filter.decisions(list)
                let view = filter.candidates(list)
                if failures > 0 {
                    logger.info("kubernetes discovery works again after [\(failures)] failed polls: [\(view.count)] candidates")
                } else if view != lastView {
                    logger.debug("kubernetes discovery: [\(view.map(\.description).joined(separator: ", "))] (skipped: [\(Self.describeSkips(decisions))])")
                }
                lastView = view
                failures = 0
                reported = nil
                state.withLockedValue {
                    $0.successfulPolls += 1
                    $0.consecutiveFailures = 0
                    $0.lastError = nil
                    $0.lastView = view
                    $0.tokenReads = api.token.reads
                }
                report(.candidates(view))
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                if Task.isCancelled { throw CancellationError() }
                let failure = (error as? CohortError) ?? CohortError(.connectionFailed, "kubernetes discovery failed: \(error)", cause: error)
                failures += 1
                let key = Self.stateKey(failure)
                if key != reported {
                    reported = key
                    let kept = lastView.map { "keeping the last [\($0.count)] candidates" } ?? "no candidates known yet"
                    let level: Logger.Level = failure.code == .badConfiguration ? .error : .warning
                    logger.log(level: level, "kubernetes discovery failed (\(kept)): \(failure.message)")
                }
                state.withLockedValue {
                    $0.failedPolls += 1
                    $0.consecutiveFailures = failures
                    $0.lastError = failure
                    $0.tokenReads = api.token.reads
                }
                // Keep the last known view: never replace it with an empty list because of an error.
                if let lastView { report(.candidates(lastView)) }
            }
            try await Task.sleep(for: configuration.schedule.delay(afterFailures: failures))
        }
        throw CancellationError()
    }

    /// Identifies a kind of failure, so a repeated failure is logged once.
    static func stateKey(_ error: CohortError) -> String {
        // The message minus anything variable (bodies differ per answer; the prefix names the kind).
        "\(error.code):\(error.message.prefix(60))"
    }

    static func describeSkips(_ decisions: [KubernetesPodFilter.Decision]) -> String {
        decisions.compactMap { decision in decision.skipped.map { "\(decision.pod): \($0.rawValue)" } }.joined(separator: ", ")
    }
}
