// The entry point of libCohortDiscoveryDNSPlugin.so, looked up by the plugin loader (docs/plugins.md).
import CohortDiscoveryDNS
import CohortPluginSDK

@_cdecl("cohort_plugin_entry")
public func cohortPluginEntry() -> UnsafeRawPointer? {
    PluginExport.entry([DNSDiscoveryPlugin()])
}
