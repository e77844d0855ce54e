// The entry point of libCohortCodecJSONPlugin.so, looked up by the plugin loader (docs/plugins.md).
import CohortCodecJSON
import CohortPluginSDK

@_cdecl("cohort_plugin_entry")
public func cohortPluginEntry() -> UnsafeRawPointer? {
    PluginExport.entry([JSONCodecPlugin()])
}
