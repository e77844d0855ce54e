// The entry point of libCohortDiscoveryStaticPlugin.so, looked up by the plugin loader (docs/plugins.md).
import CohortDiscoveryStatic
import CohortPluginSDK

@_cdecl("cohort_plugin_entry")
public func cohortPluginEntry() -> UnsafeRawPointer? {
    PluginExport.entry([StaticDiscoveryPlugin()])
}
