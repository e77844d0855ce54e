// The entry point of libCohortCodecBinaryPlugin.so, looked up by the plugin loader (docs/plugins.md).
import CohortCodecBinary
import CohortPluginSDK

@_cdecl("cohort_plugin_entry")
public func cohortPluginEntry() -> UnsafeRawPointer? {
    PluginExport.entry([BinaryCodecPlugin()])
}
