import CohortCore
import Foundation
import Logging

/// Registers ``KubernetesDiscovery`` as `discovery.kubernetes`.
///
/// Every setting can come from the plugin settings (`discoverySettings` in the configuration file,
/// `COHORT_DISCOVERY_SETTINGS`, `--discovery-setting KEY=VALUE`) or from environment variables;
/// the settings win. ``KubernetesDiscoveryConfiguration/Key/all`` lists the keys and variables.
public struct KubernetesDiscoveryPlugin: PluginFactory {
    /// Creates the factory.
    public init() {}
    public var id: String { "discovery.kubernetes" }
    public var kind: PluginKind { .discovery }
    public var version: String { "1.0.0" }
    public var summary: String { "pods listed through the Kubernetes API (label selector, namespace, service-account token)" }

    /// Makes the provider from the settings and the process environment.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` when the API address or the namespace
    ///   cannot be found, or a value is malformed.
    public func makeDiscovery(settings: PluginSettings) throws -> any DiscoveryProvider {
        try makeDiscovery(settings: settings, environment: ProcessInfo.processInfo.environment)
    }

    /// Makes the provider from the settings and a given environment.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` as ``makeDiscovery(settings:)``.
    public func makeDiscovery(settings: PluginSettings, environment: [String: String]) throws -> KubernetesDiscovery {
        let configuration = try KubernetesDiscoveryConfiguration(settings: settings.values, environment: environment) { path in
            FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
        }
        let unknown = KubernetesDiscoveryConfiguration.unknownSettings(in: settings.values)
        if !unknown.isEmpty {
            settings.logger.warning("discovery.kubernetes ignores the settings [\(unknown.joined(separator: ", "))]; it reads: \(KubernetesDiscoveryConfiguration.Key.all.map(\.setting).joined(separator: ", "))")
        }
        return KubernetesDiscovery(configuration: configuration, logger: settings.logger)
    }
}
