import Cohort
import CohortCodecBinary
import CohortPluginSDK
import CohortTestKit
import Foundation
import NIOConcurrencyHelpers
import Testing

/// Clusters whose transport, codecs and discovery come from dlopen'ed libraries.
@Suite("Clusters on loaded plugins", .enabled(if: PluginFiles.allBuilt, "the plugin libraries are not built next to the tests (run swift build)"), .timeLimit(.minutes(2)))
struct LoadedPluginClusterTests {
    /// Sends greetings from each node to all others and checks every one arrives, processed.
    private func exchangeGreetings(_ nodes: RunningNodes, count: Int) async throws {
        let inboxes = (0..<count).map { _ in NIOLockedValueBox<[PluginGreeting]>([]) }
        for i in 0..<count {
            let inbox = inboxes[i]
            try nodes[i].onMessage(PluginGreeting.self) { message, _ in inbox.withLockedValue { $0.append(message) } }
        }
        for i in 0..<count {
            let report = try await nodes[i].send(PluginGreeting(text: "hello from \(nodes[i].configuration.name) — grüße 👋", number: i), options: .processed)
            #expect(report.count == count - 1)
            #expect(report.allSucceeded, "\(report)")
        }
        for i in 0..<count {
            let got = inboxes[i].withLockedValue { $0 }.sorted { $0.number < $1.number }
            let expected = (0..<count).filter { $0 != i }.map { PluginGreeting(text: "hello from \(nodes[$0].configuration.name) — grüße 👋", number: $0) }
            #expect(got == expected, "node \(i) received \(got)")
        }
    }

    @Test func loadedTCPTransportCarriesMessagesBetweenThreeNodes() async throws {
        try await withNodes { nodes in
            var endpoints: [Endpoint] = []
            for i in 0..<3 {
                // Each node resolves `transport.tcp` from a registry that holds the loaded library;
                // GroupChannel adds the built-ins only for ids not taken.
                let registry = try PluginFiles.registry(loading: [PluginFiles.tcp])
                var configuration = testConfiguration("tcp\(i + 1)")
                configuration.members = endpoints
                configuration.discoverySettings["interval_ms"] = "100"
                let channel = try GroupChannel(configuration: configuration, registry: registry, logger: quietLogger)
                let library = (channel.underlyingTransport as? any LoadedPluginPart)?.library
                #expect(library == PluginFiles.path(PluginFiles.tcp), "the transport is not driven by the loaded library: \(library ?? "built in")")
                #expect(registry.plugins.first { $0.id == "transport.tcp" }?.origin == .file(PluginFiles.path(PluginFiles.tcp)))
                endpoints.append(try await nodes.start(channel))
            }
            #expect(await nodes.waitForMesh(3), "\(nodes.views)")
            try await exchangeGreetings(nodes, count: 3)

            // Async and receipt sends go over the loaded transport too.
            let receipt = try await nodes[0].send(PluginGreeting(text: "receipt", number: 10), options: .receipt)
            #expect(receipt.allSucceeded && receipt.count == 2, "\(receipt)")
            let queued = try await nodes[1].send(PluginGreeting(text: "async", number: 11), options: .asynchronous)
            #expect(queued.count == 2 && queued.outcomes.allSatisfy { $0.outcome == .queued }, "\(queued)")
        }
    }

    @Test func everyPartFromLoadedLibrariesThroughTheExplicitInitializer() async throws {
        try await withNodes { nodes in
            var endpoints: [Endpoint] = []
            for i in 0..<3 {
                let registry = try PluginFiles.registry(loading: [PluginFiles.tcp, PluginFiles.binary, PluginFiles.json, PluginFiles.staticDiscovery])
                var configuration = testConfiguration("all\(i + 1)")
                let settings = PluginSettings(transport: configuration.wire, logger: quietLogger)
                let transport = try registry.factory("tcp", kind: .transport).makeTransport(settings: settings)
                // Node 2 sends JSON, the others binary: every node can read both loaded codecs.
                let binary = try registry.factory("binary", kind: .codec).makeCodec(settings: settings)
                let json = try registry.factory("json", kind: .codec).makeCodec(settings: settings)
                configuration.members = endpoints
                let discovery = try registry.factory("static", kind: .discovery).makeDiscovery(
                    settings: PluginSettings(values: ["members": endpoints.map(\.description).joined(separator: ","), "interval_ms": "100"], logger: quietLogger)
                )
                let parts: [any Sendable] = [transport, binary, json, discovery]
                for part in parts {
                    let library = (part as? any LoadedPluginPart)?.library
                    #expect(library.map { $0.hasSuffix("Plugin.so") } == true, "\(type(of: part)) is not a loaded library's: \(library ?? "built in")")
                }
                let channel = GroupChannel(
                    configuration: configuration,
                    transport: transport,
                    codec: i == 1 ? json : binary,
                    codecs: [binary, json],
                    discovery: discovery,
                    logger: quietLogger
                )
                endpoints.append(try await nodes.start(channel))
            }
            #expect(await nodes.waitForMesh(3), "\(nodes.views)")
            try await exchangeGreetings(nodes, count: 3)
        }
    }

    @Test func loadedStaticDiscoveryFormsTheCluster() async throws {
        try await withNodes { nodes in
            var endpoints: [Endpoint] = []
            for i in 0..<3 {
                let registry = try PluginFiles.registry(loading: [PluginFiles.staticDiscovery])
                var configuration = testConfiguration("static\(i + 1)")
                configuration.members = endpoints
                configuration.discoverySettings["interval_ms"] = "100"
                let channel = try GroupChannel(configuration: configuration, registry: registry, logger: quietLogger)
                #expect(registry.plugins.first { $0.id == "discovery.static" }?.origin == .file(PluginFiles.path(PluginFiles.staticDiscovery)))
                endpoints.append(try await nodes.start(channel))
            }
            #expect(await nodes.waitForMesh(3), "\(nodes.views)")
        }
    }

    @Test(.enabled(if: CFixture.available, "no C compiler on PATH"))
    func pluginsConfigurationKeyLoadsTheLibrary() async throws {
        let library = try await CFixture.codec.library()
        try await withNodes { nodes in
            let registry = PluginRegistry()
            var endpoints: [Endpoint] = []
            for i in 0..<2 {
                var configuration = testConfiguration("config\(i + 1)")
                // The same registry for both nodes: the library is loaded once (by the first).
                configuration.plugins = [library]
                configuration.codec = "ctree"
                configuration.members = endpoints
                configuration.discoverySettings["interval_ms"] = "100"
                let channel = try GroupChannel(configuration: configuration, registry: registry, logger: quietLogger)
                #expect(channel.codec.name == "ctree")
                endpoints.append(try await nodes.start(channel))
            }
            #expect(registry.plugins.first { $0.id == "codec.ctree" }?.origin == .file(library))
            #expect(await nodes.waitForMesh(2), "\(nodes.views)")
            try await exchangeGreetings(nodes, count: 2)
        }
    }

    @Test(.enabled(if: CFixture.available, "no C compiler on PATH"))
    func aLibraryLoadedOnceServesSeveralChannels() async throws {
        let library = try await CFixture.codec.library()
        let registry = PluginRegistry()
        var configuration = testConfiguration("shared")
        configuration.plugins = [library]
        configuration.codec = "ctree"
        _ = try GroupChannel(configuration: configuration, registry: registry, logger: quietLogger)
        #expect(registry.plugins.contains { $0.id == "codec.ctree" })
        // The second channel finds the library already loaded instead of failing as a duplicate.
        let second = try GroupChannel(configuration: configuration, registry: registry, logger: quietLogger)
        #expect(second.codec.name == "ctree")
    }
}
