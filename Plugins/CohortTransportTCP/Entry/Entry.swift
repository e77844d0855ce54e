// The entry point of libCohortTransportTCPPlugin.so, looked up by the plugin loader (docs/plugins.md).
import CohortPluginSDK
import CohortTransportTCP

@_cdecl("cohort_plugin_entry")
public func cohortPluginEntry() -> UnsafeRawPointer? {
    PluginExport.entry([TCPTransportPlugin()])
}
