import CohortCore
import Logging

/// Registers ``MulticastDiscovery`` as `discovery.multicast`.
///
/// Settings (`discoverySettings`, `--discovery-setting KEY=VALUE`) are listed on
/// ``MulticastDiscoveryConfiguration``; with none, members find each other on Tomcat's defaults
/// (228.0.0.4:45564, a heartbeat every 500 ms, dropped after 3000 ms).
public struct MulticastDiscoveryPlugin: PluginFactory {
    /// Creates the factory.
    public init() {}
    public var id: String { "discovery.multicast" }
    public var kind: PluginKind { .discovery }
    public var version: String { "1.0.0" }
    public var summary: String { "UDP multicast heartbeats on one network segment (Tribes' McastService)" }

    /// Makes the provider.
    ///
    /// - Throws: ``CohortCore/CohortError/Code/badConfiguration`` naming a malformed setting.
    public func makeDiscovery(settings: PluginSettings) throws -> any DiscoveryProvider {
        let configuration = try MulticastDiscoveryConfiguration(settings: settings.values)
        let unknown = settings.values.keys.filter { !MulticastDiscoveryConfiguration.settingKeys.contains($0) && $0 != "bind" }.sorted()
        if !unknown.isEmpty {
            settings.logger.warning("discovery.multicast ignores the settings [\(unknown.joined(separator: ", "))]; it reads: \(MulticastDiscoveryConfiguration.settingKeys.joined(separator: ", "))")
        }
        return MulticastDiscovery(configuration: configuration, logger: settings.logger)
    }
}
