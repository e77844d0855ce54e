// The entry point of libCohortExampleFileDiscovery.so, looked up by the host's plugin loader.
//
// Everything the host sees of this library goes through the table `PluginExport.entry` builds:
// C types only, so the library carries its own copies of the core and of NIO and may be built
// by any package, linked statically. This module is never linked into an executable that also
// links another plugin's entry point (the symbol name is the same in every plugin).
import CohortPluginSDK

@_cdecl("cohort_plugin_entry")
public func cohortPluginEntry() -> UnsafeRawPointer? {
    PluginExport.entry([FileDiscoveryPlugin()])
}
