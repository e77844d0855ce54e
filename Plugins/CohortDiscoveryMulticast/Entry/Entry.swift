// The entry point of libCohortDiscoveryMulticastPlugin.so, looked up by the plugin loader (docs/plugins.md).
import CohortDiscoveryMulticast
import CohortPluginSDK

@_cdecl("cohort_plugin_entry")
public func cohortPluginEntry() -> UnsafeRawPointer? {
    PluginExport.entry([MulticastDiscoveryPlugin()])
}
