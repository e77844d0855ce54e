import CohortCore
import CohortPluginSDK
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
/// A plugin library exports one C function, `cohort_plugin_entry`, that returns a table of plain
/// C types (`cohort_plugin.h`, made by `CohortPluginSDK`'s `PluginExport`). The loader checks the
/// table's ABI version before it reads anything else, then its manifest, and registers one
/// factory per plugin named there. Host and plugin share no Swift library: a plugin built by
/// another package, with its own copies of NIO and the core, loads the same way. A failed load
/// throws and leaves the registry untouched; a loaded library is never closed.
public enum PluginLoader {
    /// The file name a product's shared library has on this platform.
    public static func libraryFileName(_ product: String) -> String {
        #if canImport(Darwin)
        "lib\(product).dylib"
        #else
        "lib\(product).so"
        #endif
    }

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

    /// The directory of the running executable.
    public static var executableDirectory: String {
        #if os(Linux)
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        #else
        let exe = Bundle.main.executablePath ?? CommandLine.arguments[0]
        #endif
        return (exe as NSString).deletingLastPathComponent
    }

    /// Finds a plugin file.
    ///
    /// - Parameter name: a path (with a `/`), a file name (`libX.so`, `libX.dylib`), or a product
    ///   name (`X`, tried as the platform's library file name).
    /// - Throws: ``CohortError/Code/pluginNotFound`` listing every place it looked.
    public static func locate(_ name: String, searchPath: [String]) throws -> String {
        if name.contains("/") {
            guard FileManager.default.fileExists(atPath: name) else {
                throw CohortError(.pluginNotFound, "plugin file '\(name)' does not exist; check the path (build plugins with 'swift build')")
            }
            return name
        }
        let isFileName = name.hasSuffix(".so") || name.hasSuffix(".dylib")
        let candidates = isFileName ? [name] : [name, libraryFileName(name)]
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
    ///   ``CohortError/Code/pluginLoadFailed`` (not a shared library, not a Cohort plugin, wrong
    ///   ABI, unreadable manifest) or ``CohortError/Code/duplicatePlugin``.
    @discardableResult
    public static func load(_ name: String, into registry: PluginRegistry, searchPath: [String]? = nil) throws -> [PluginInfo] {
        let path = try locate(name, searchPath: searchPath ?? self.searchPath())
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let why = dlerror().map { String(cString: $0) } ?? "unknown error"
            throw CohortError(.pluginLoadFailed, "'\(path)' is not a loadable shared library: \(why)")
        }
        // Never dlclose: a plugin's Swift metadata stays registered with the runtime.
        guard let symbol = dlsym(handle, "cohort_plugin_entry") else {
            if dlsym(handle, "cohort_plugin_abi_version") != nil {
                throw CohortError(.pluginLoadFailed, "'\(path)' was built for the retired plugin ABI 2 (a shared core library); rebuild it with CohortPluginSDK (see docs/plugins.md)")
            }
            throw CohortError(.pluginLoadFailed, "'\(path)' is not a Cohort plugin: the entry symbol 'cohort_plugin_entry' is missing (see docs/plugins.md)")
        }
        typealias Entry = @convention(c) () -> UnsafeRawPointer?
        let table = unsafeBitCast(symbol, to: Entry.self)()
        let factories = try PluginImport.factories(entry: table, path: path)
        // Check every id before registering any, so a failed load registers nothing.
        let known = Set(registry.plugins.map(\.id))
        if let taken = factories.first(where: { known.contains($0.id) }) {
            let existing = registry.plugins.first { $0.id == taken.id }
            throw CohortError(
                .duplicatePlugin,
                "plugin id '\(taken.id)' from \(path) is already registered (from \(existing?.origin.description ?? "?")); load each plugin once, or rename one of them"
            )
        }
        var registered: [PluginInfo] = []
        for factory in factories {
            try registry.register(factory, origin: .file(path))
            registered.append(PluginInfo(id: factory.id, kind: factory.kind, version: factory.version, summary: factory.summary, origin: .file(path)))
        }
        return registered
    }
}
