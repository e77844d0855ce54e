// The entry points of libCohortExampleFileDiscovery.so, looked up by the plugin loader.
//
// This module is never linked into an executable (it is only the `.dynamic` product), so the
// entry points can live next to the implementation. A plugin whose implementation is also linked
// statically into a host keeps them in a module of their own (see Plugins/<Name>/Entry).
import CohortCore

/// The plugin ABI this library was built for (the literal is baked in at build time).
@_cdecl("cohort_plugin_abi_version")
public func cohort_plugin_abi_version() -> UInt32 { cohortPluginABIVersion }

/// The library's factories, as a retained ``CohortCore/PluginManifest``.
@_cdecl("cohort_plugin_manifest")
public func cohort_plugin_manifest() -> UnsafeMutableRawPointer {
    PluginManifest(factories: [FileDiscoveryPlugin()]).retainedPointer()
}
