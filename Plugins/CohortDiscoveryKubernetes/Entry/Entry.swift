// The entry point of libCohortDiscoveryKubernetesPlugin.so, looked up by the plugin loader (docs/plugins.md).
import CohortDiscoveryKubernetes
import CohortPluginSDK

@_cdecl("cohort_plugin_entry")
public func cohortPluginEntry() -> UnsafeRawPointer? {
    PluginExport.entry([KubernetesDiscoveryPlugin()])
}
