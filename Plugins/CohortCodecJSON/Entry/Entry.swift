// The entry points of libCohortCodecJSONPlugin.so, looked up by the plugin loader.
import CohortCodecJSON
import CohortCore

/// The plugin ABI this library was built for.
@_cdecl("cohort_plugin_abi_version") public func cohort_plugin_abi_version() -> UInt32 { cohortPluginABIVersion }
/// The library's factories, as a retained ``PluginManifest``.
@_cdecl("cohort_plugin_manifest") public func cohort_plugin_manifest() -> UnsafeMutableRawPointer { PluginManifest(factories: [JSONCodecPlugin()]).retainedPointer() }
