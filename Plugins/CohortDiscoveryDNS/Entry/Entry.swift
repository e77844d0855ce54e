import CohortCore
import CohortDiscoveryDNS

@_cdecl("cohort_plugin_abi_version")
public func cohort_plugin_abi_version() -> UInt32 { cohortPluginABIVersion }

@_cdecl("cohort_plugin_manifest")
public func cohort_plugin_manifest() -> UnsafeMutableRawPointer {
    PluginManifest(factories: [DNSDiscoveryPlugin()]).retainedPointer()
}
