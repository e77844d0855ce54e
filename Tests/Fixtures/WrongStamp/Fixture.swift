// A plugin that speaks the host's ABI version but claims another toolchain/core build: the
// loader must refuse it with a message naming both build stamps.
import CohortCore

/// A factory the loader must never register.
struct WrongStampFixtureFactory: PluginFactory {
    var id: String { "discovery.fixture-wrong-stamp" }
    var kind: PluginKind { .discovery }
    var version: String { "0.0.0" }
    var summary: String { "test fixture: built with another toolchain" }
}

/// The right ABI version.
@_cdecl("cohort_plugin_abi_version")
public func cohort_plugin_abi_version() -> UInt32 { cohortPluginABIVersion }

/// A manifest with a foreign build stamp.
@_cdecl("cohort_plugin_manifest")
public func cohort_plugin_manifest() -> UnsafeMutableRawPointer {
    PluginManifest(factories: [WrongStampFixtureFactory()], buildStamp: "swift-0.0/core-0").retainedPointer()
}
