// A plugin built for an ABI this host does not speak: the loader must refuse it before it
// touches any Swift type, with a message naming both versions.
import CohortCore

/// A factory the loader must never reach.
struct BadABIFixtureFactory: PluginFactory {
    var id: String { "discovery.fixture-bad-abi" }
    var kind: PluginKind { .discovery }
    var version: String { "0.0.0" }
    var summary: String { "test fixture: claims plugin ABI 999" }
}

/// Claims an ABI version no host speaks.
@_cdecl("cohort_plugin_abi_version")
public func cohort_plugin_abi_version() -> UInt32 { 999 }

/// A well-formed manifest, so only the ABI check can reject this library.
@_cdecl("cohort_plugin_manifest")
public func cohort_plugin_manifest() -> UnsafeMutableRawPointer {
    PluginManifest(factories: [BadABIFixtureFactory()]).retainedPointer()
}
