import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Loads plugin shared libraries at run time and registers their factories.
///
/// A plugin library exports two C symbols: `cohort_plugin_abi_version` (returns the ABI version
/// baked into the plugin at build time) and `cohort_plugin_manifest` (returns a retained
/// ``PluginManifest``). The loader checks the ABI version **before** touching any Swift type, then
/// the build stamp, then casts the manifest — a cast that works only when the plugin shares this
/// process's libCohortCore.so. A failed load throws and leaves the process untouched; a loaded
/// library is never closed (Swift metadata stays registered with the runtime).
public enum PluginLoader {
    /// Where plugin files are looked for when a bare file name is given: the directories in
    /// `COHORT_PLUGIN_PATH` (colon separated), then the executable's own directory.
    public static func searchPath(environment: [String: String] = ProcessInfo.processInfo.environment, extra: [String] = []) -> [String] {
        var dirs = extra
        if let env = environment["COHORT_PLUGIN_PATH"] {
            dirs.append(contentsOf: env.split(separator: ":").map(String.init).filter { !$0.isEmpty })
        }
        dirs.append(executableDirectory)
        var seen = Set<String>()
        return dirs.filter { seen.insert($0).inserted }
    }

    /// The directory of the running executable (`/proc/self/exe`).
    public static var executableDirectory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }

    /// Finds a plugin file.
    ///
    /// - Parameter name: a path (with a `/`), a file name (`libX.so`), or a product name (`X`,
    ///   tried as `libX.so`).
    /// - Throws: ``CohortError/Code/pluginNotFound`` listing every place it looked.
    public static func locate(_ name: String, searchPath: [String]) throws -> String {
        if name.contains("/") {
            guard FileManager.default.fileExists(atPath: name) else {
                throw CohortError(.pluginNotFound, "plugin file '\(name)' does not exist; check the path (build plugins with 'swift build')")
            }
            return name
        }
        let candidates = name.hasSuffix(".so") ? [name] : [name, "lib\(name).so"]
        var tried: [String] = []
        for dir in searchPath {
            for file in candidates {
                let path = dir + "/" + file
                tried.append(path)
                if FileManager.default.fileExists(atPath: path) { return path }
            }
        }
        throw CohortError(.pluginNotFound, "plugin '\(name)' not found; looked in: \(tried.joined(separator: ", ")). Give a path, or add its directory to COHORT_PLUGIN_PATH")
    }

    /// Loads a plugin library and registers its factories.
    ///
    /// - Returns: what was registered.
    /// - Throws: ``CohortError`` with ``CohortError/Code/pluginNotFound``,
    ///   ``CohortError/Code/pluginLoadFailed`` (not a shared library, not a Cohort plugin, wrong ABI
    ///   or build) or ``CohortError/Code/duplicatePlugin``.
    @discardableResult
    public static func load(_ name: String, into registry: PluginRegistry = .shared, searchPath: [String]? = nil) throws -> [PluginInfo] {
        let path = try locate(name, searchPath: searchPath ?? self.searchPath())
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let why = dlerror().map { String(cString: $0) } ?? "unknown error"
            throw CohortError(.pluginLoadFailed, "'\(path)' is not a loadable shared library: \(why)")
        }
        // Never dlclose: a Swift image's metadata stays registered with the runtime.
        guard let abiSymbol = dlsym(handle, "cohort_plugin_abi_version") else {
            throw CohortError(.pluginLoadFailed, "'\(path)' is not a Cohort plugin: the entry symbol 'cohort_plugin_abi_version' is missing (see docs/plugins.md for the two entry points)")
        }
        typealias ABIFunction = @convention(c) () -> UInt32
        let abi = unsafeBitCast(abiSymbol, to: ABIFunction.self)()
        guard abi == cohortPluginABIVersion else {
            throw CohortError(.pluginLoadFailed, "'\(path)' was built for plugin ABI \(abi), this host speaks ABI \(cohortPluginABIVersion); rebuild the plugin against this Cohort release")
        }
        guard let manifestSymbol = dlsym(handle, "cohort_plugin_manifest") else {
            throw CohortError(.pluginLoadFailed, "'\(path)' is not a Cohort plugin: the entry symbol 'cohort_plugin_manifest' is missing")
        }
        typealias ManifestFunction = @convention(c) () -> UnsafeMutableRawPointer
        let raw = unsafeBitCast(manifestSymbol, to: ManifestFunction.self)()
        let object = Unmanaged<AnyObject>.fromOpaque(raw).takeRetainedValue()
        guard let manifest = object as? PluginManifest else {
            throw CohortError(.pluginLoadFailed, "'\(path)' returned \(type(of: object)), which is not this process's CohortCore.PluginManifest: the plugin carries its own copy of CohortCore; link it against the CohortCore product (libCohortCore.so), never statically")
        }
        guard manifest.buildStamp == cohortPluginBuildStamp else {
            throw CohortError(.pluginLoadFailed, "'\(path)' was built with \(manifest.buildStamp), this host with \(cohortPluginBuildStamp); Swift has no ABI stability on Linux, so rebuild the plugin with the host's toolchain")
        }
        var registered: [PluginInfo] = []
        for factory in manifest.factories {
            try registry.register(factory, origin: .file(path))
            registered.append(PluginInfo(id: factory.id, kind: factory.kind, version: factory.version, summary: factory.summary, origin: .file(path)))
        }
        return registered
    }
}
