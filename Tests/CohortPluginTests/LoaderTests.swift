import Cohort
import CohortCodecBinary
import CohortPluginSDK
import CohortTestKit
import Foundation
import Testing

/// `PluginLoader`: finding libraries, and refusing the ones that are not (this build's) plugins
/// with a clear error instead of a crash.
@Suite("Plugin loader", .enabled(if: PluginFiles.allBuilt, "the plugin libraries are not built next to the tests (run swift build)"))
struct LoaderTests {
    /// Loads and expects a `CohortError` with a code; returns it.
    private func loadError(_ name: String, into registry: PluginRegistry = PluginRegistry(), searchPath: [String]? = nil) throws -> CohortError {
        do {
            let loaded = try PluginLoader.load(name, into: registry, searchPath: searchPath)
            Issue.record("loading '\(name)' succeeded with \(loaded.map(\.id)), expected an error")
            throw CohortError(.internal, "unexpected success")
        } catch let error as CohortError {
            return error
        }
    }

    @Test func loadsAPluginByPathFileNameAndProductName() async throws {
        let byPath = try PluginLoader.load(PluginFiles.path(PluginFiles.json), into: PluginRegistry())
        #expect(byPath.map(\.id) == ["codec.json"])
        #expect(byPath.first?.kind == .codec)
        #expect(byPath.first?.origin == .file(PluginFiles.path(PluginFiles.json)))

        let byFile = try PluginLoader.load("lib\(PluginFiles.json).so", into: PluginRegistry())
        #expect(byFile.map(\.id) == ["codec.json"])
        let byProduct = try PluginLoader.load(PluginFiles.json, into: PluginRegistry())
        #expect(byProduct.map(\.id) == ["codec.json"])
        if case .file(let path) = byProduct.first?.origin {
            #expect(realPath(path) == realPath(PluginFiles.path(PluginFiles.json)))
        } else {
            Issue.record("a loaded plugin's origin is not its file: \(String(describing: byProduct.first?.origin))")
        }
    }

    @Test func searchPathIsTheEnvironmentThenTheExecutableFolder() {
        let path = PluginLoader.searchPath(environment: ["COHORT_PLUGIN_PATH": "/opt/a::/opt/b"])
        #expect(path == ["/opt/a", "/opt/b", PluginLoader.executableDirectory])
        #expect(PluginLoader.searchPath(environment: [:]) == [PluginLoader.executableDirectory])
    }

    @Test func findsAPluginThroughTheSearchPath() async throws {
        let elsewhere = try TemporaryDirectory()
        let loaded = try PluginLoader.load(PluginFiles.binary, into: PluginRegistry(), searchPath: [elsewhere.path, PluginFiles.directory])
        #expect(loaded.map(\.id) == ["codec.binary"])
        #expect(loaded.first?.origin == .file(PluginFiles.directory + "/lib\(PluginFiles.binary).so"))
    }

    @Test func missingFileNamesThePath() async throws {
        let error = try loadError("/nonexistent/cohort/libNothing.so")
        #expect(error.code == .pluginNotFound)
        #expect(error.message.contains("/nonexistent/cohort/libNothing.so"))
        #expect(error.message.contains("does not exist"))
    }

    @Test func bareNameNotOnTheSearchPathListsWhereItLooked() async throws {
        let empty = try TemporaryDirectory()
        let error = try loadError("CohortNoSuchPlugin", searchPath: [empty.path, PluginFiles.directory])
        #expect(error.code == .pluginNotFound)
        for tried in [empty.path + "/CohortNoSuchPlugin", empty.path + "/libCohortNoSuchPlugin.so", PluginFiles.directory + "/libCohortNoSuchPlugin.so"] {
            #expect(error.message.contains(tried), "the message does not list \(tried): \(error.message)")
        }
        #expect(error.message.contains("COHORT_PLUGIN_PATH"))

        // A plugin that exists, but not on the given search path.
        let elsewhere = try loadError(PluginFiles.json, searchPath: [empty.path])
        #expect(elsewhere.code == .pluginNotFound)
        #expect(elsewhere.message.contains(empty.path + "/lib\(PluginFiles.json).so"))
    }

    @Test(.enabled(if: CFixture.available, "no C compiler on PATH"))
    func libraryWithoutEntryPointIsNotACohortPlugin() async throws {
        let registry = PluginRegistry()
        let error = try loadError(try await CFixture.noEntry.library(), into: registry)
        #expect(error.code == .pluginLoadFailed)
        #expect(error.message.contains("not a Cohort plugin"), "\(error.message)")
        #expect(error.message.contains("cohort_plugin_entry"))
        #expect(registry.plugins.isEmpty)
    }

    @Test(.enabled(if: CFixture.available, "no C compiler on PATH"))
    func otherABIVersionIsRefusedNamingBothVersions() async throws {
        let registry = PluginRegistry()
        let error = try loadError(try await CFixture.badABI.library(), into: registry)
        #expect(error.code == .pluginLoadFailed)
        #expect(error.message.contains("ABI 999"), "\(error.message)")
        #expect(error.message.contains("ABI 3"), "\(error.message)")
        #expect(registry.plugins.isEmpty, "nothing of a refused plugin is registered")
    }

    @Test(.enabled(if: CFixture.available, "no C compiler on PATH"))
    func aLibraryOfTheRetiredSharedCoreABIIsToldToRebuild() async throws {
        let error = try loadError(try await CFixture.retiredABI.library())
        #expect(error.code == .pluginLoadFailed)
        #expect(error.message.contains("retired plugin ABI 2"), "\(error.message)")
        #expect(error.message.contains("CohortPluginSDK"), "\(error.message)")
    }

    @Test(.enabled(if: CFixture.available, "no C compiler on PATH"))
    func brokenTablesAreRefusedWithoutCrashing() async throws {
        let cases: [(CFixture, String)] = [
            (.nullTable, "returned no table"),
            (.badManifest, "manifest that is not valid"),
            (.unknownKind, "kind 'teleport'"),
        ]
        for (fixture, expected) in cases {
            let registry = PluginRegistry()
            let error = try loadError(try await fixture.library(), into: registry)
            #expect(error.code == .pluginLoadFailed, "\(fixture)")
            #expect(error.message.contains(expected), "\(fixture): \(error.message)")
            #expect(registry.plugins.isEmpty, "\(fixture)")
        }
    }

    @Test(.enabled(if: CFixture.available, "no C compiler on PATH"))
    func aPluginWrittenInCIsLoadedAndWorks() async throws {
        let path = try await CFixture.codec.library()
        let registry = PluginRegistry()
        let loaded = try PluginLoader.load(path, into: registry)
        #expect(loaded.map(\.id) == ["codec.ctree"])
        #expect(loaded.first?.kind == .codec)
        #expect(loaded.first?.version == "0.1.0")
        let codec = try registry.factory("ctree", kind: .codec).makeCodec(settings: PluginSettings())
        #expect(codec.id == CodecID(rawValue: 200))
        #expect(codec.name == "ctree")
        #expect((codec as? any LoadedPluginPart)?.library == path)
        try CodecConformance.run(codec, consumesWholeBuffer: false)
    }

    @Test func loadingTheSamePluginTwiceIntoOneRegistryIsADuplicate() async throws {
        let registry = PluginRegistry()
        try PluginLoader.load(PluginFiles.path(PluginFiles.staticDiscovery), into: registry)
        let error = try loadError(PluginFiles.path(PluginFiles.staticDiscovery), into: registry)
        #expect(error.code == .duplicatePlugin)
        #expect(error.message.contains("discovery.static"))
        #expect(registry.plugins.map(\.id) == ["discovery.static"])
        // Another registry is unaffected: each test, or each host, has its own.
        #expect(try PluginLoader.load(PluginFiles.path(PluginFiles.staticDiscovery), into: PluginRegistry()).map(\.id) == ["discovery.static"])
    }

    @Test func aLoadedPluginCollidesWithTheBuiltInOfTheSameId() async throws {
        let registry = PluginRegistry()
        BuiltInPlugins.register(into: registry)
        let error = try loadError(PluginFiles.path(PluginFiles.json), into: registry)
        #expect(error.code == .duplicatePlugin)
        #expect(error.message.contains("built-in"))
    }

    @Test func nonLibraryFilesAreRefusedClearly() async throws {
        let dir = try TemporaryDirectory()
        let text = dir.file("libNotAPlugin.so")
        try "this is a text file, not a shared library\n".write(toFile: text, atomically: true, encoding: .utf8)
        let textError = try loadError(text)
        #expect(textError.code == .pluginLoadFailed)
        #expect(textError.message.contains("is not a loadable shared library"), "\(textError.message)")
        #expect(textError.message.contains(text))

        let empty = dir.file("empty.so")
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        #expect(try loadError(empty).code == .pluginLoadFailed)

        let folder = dir.file("folder.so")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        #expect(try loadError(folder).code == .pluginLoadFailed)
    }

    @Test func loadedFactoriesComeFromTheLibrary() async throws {
        let registry = try PluginFiles.registry(loading: [PluginFiles.tcp, PluginFiles.binary, PluginFiles.json, PluginFiles.staticDiscovery])
        let rows = registry.plugins
        #expect(rows.map(\.id) == ["codec.binary", "codec.json", "discovery.static", "transport.tcp"])
        for row in rows {
            guard case .file(let path) = row.origin else {
                Issue.record("\(row.id) has origin \(row.origin)")
                continue
            }
            let factory = try registry.factory(row.id, kind: row.kind)
            let part = factory as? any LoadedPluginPart
            #expect(part?.library == path, "\(row.id)'s factory does not drive \(path)")
            #expect(part?.pluginID == row.id)
        }
        // The statically linked built-ins are not loaded parts.
        #expect(!(BinaryCodecPlugin() as any PluginFactory is any LoadedPluginPart))
    }
}
