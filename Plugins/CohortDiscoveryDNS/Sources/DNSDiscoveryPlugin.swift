import CohortCore
import Foundation
import Logging

/// Registers ``DNSDiscovery`` as `discovery.dns`.
///
/// Settings (`discoverySettings`, `COHORT_DISCOVERY_SETTINGS`, `--discovery-setting KEY=VALUE`)
/// win over environment variables; ``DNSDiscoveryConfiguration`` lists them.
public struct DNSDiscoveryPlugin: PluginFactory {
    /// Creates the factory.
    public init() {}
    public var id: String { "discovery.dns" }
    public var kind: PluginKind { .discovery }
    public var version: String { "1.0.0" }
    public var summary: String { "A/AAAA records of a name, such as a Kubernetes headless Service" }

    /// Makes the provider from the settings and the process environment.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` when no name is given or a value is
    ///   malformed.
    public func makeDiscovery(settings: PluginSettings) throws -> any DiscoveryProvider {
        try makeDiscovery(settings: settings, environment: ProcessInfo.processInfo.environment)
    }

    /// Makes the provider from the settings and a given environment.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` as ``makeDiscovery(settings:)``.
    public func makeDiscovery(settings: PluginSettings, environment: [String: String], resolver: (any DNSResolver)? = nil) throws -> DNSDiscovery {
        let configuration = try DNSDiscoveryConfiguration(settings: settings.values, environment: environment)
        let unknown = settings.values.filter { !DNSDiscoveryConfiguration.settingKeys.contains($0.key) && !$0.value.isEmpty }.keys.sorted()
        if !unknown.isEmpty {
            settings.logger.warning("discovery.dns ignores the settings [\(unknown.joined(separator: ", "))]; it reads: \(DNSDiscoveryConfiguration.settingKeys.joined(separator: ", "))")
        }
        return DNSDiscovery(configuration: configuration, resolver: resolver, logger: settings.logger)
    }
}
