import CohortCodecBinary
import CohortCodecJSON
import CohortCore
import CohortDiscoveryDNS
import CohortDiscoveryKubernetes
import CohortDiscoveryMulticast
import CohortDiscoveryStatic
import CohortTransportTCP

/// The plugins linked into the default product.
public enum BuiltInPlugins {
    /// Factories of every built-in plugin.
    public static var factories: [any PluginFactory] {
        [TCPTransportPlugin(), BinaryCodecPlugin(), JSONCodecPlugin(), StaticDiscoveryPlugin(), KubernetesDiscoveryPlugin(), DNSDiscoveryPlugin(), MulticastDiscoveryPlugin()]
    }

    /// Registers every built-in plugin (idempotent).
    public static func register(into registry: PluginRegistry) {
        for factory in factories { registry.registerIfAbsent(factory) }
    }
}
