import Cohort
import CohortCodecBinary
import CohortDiscoveryStatic
import CohortTestKit
import Foundation
import Testing

/// Interceptors named in configuration: unknown names and orders that cannot work are refused
/// at start, with the valid names and the right order in the message.
@Suite("Interceptor stack configuration")
struct InterceptorStackTests {
    func configuration(_ names: [String]) -> ClusterConfiguration {
        var configuration = ClusterConfiguration(name: "n", listen: Endpoint(host: "127.0.0.1", port: 0))
        configuration.interceptors = names
        return configuration
    }

    @Test func theRecommendedStackIsValid() throws {
        try configuration(InterceptorStack.recommended).validate()
        try configuration(["throughput", "fragmentation", "domainFilter"]).validate()
    }

    @Test func anUnknownNameIsRefusedNamingTheValidOnes() {
        let error = #expect(throws: CohortError.self) { try configuration(["dispatch", "gzip"]).validate() }
        #expect(error?.code == .badConfiguration)
        #expect(error?.message.contains("'gzip'") == true)
        for name in InterceptorStack.builtInNames { #expect(error?.message.contains(name) == true, "\(name) not named") }
    }

    @Test(arguments: [
        ["fragmentation", "order"],
        ["order", "compression"],
        ["fragmentation", "compression"],
        ["domainFilter", "fragmentation"],
        ["dispatch", "domainFilter", "order"],
    ])
    func anOrderThatCannotWorkIsRefusedWithTheRightOne(_ names: [String]) {
        let error = #expect(throws: CohortError.self) { try configuration(names).validate() }
        #expect(error?.message.contains("must sit below") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains(InterceptorStack.recommended.joined(separator: ", ")) == true)
    }

    @Test func aNameListedTwiceIsRefused() {
        let error = #expect(throws: CohortError.self) { try configuration(["order", "order"]).validate() }
        #expect(error?.message.contains("twice") == true)
    }

    @Test func aFragmentSizeThatDoesNotFitAFrameIsRefused() {
        var bad = configuration(["fragmentation"])
        bad.wire.maxFrameSize = 64 * 1024
        bad.fragmentation.fragmentSize = 64 * 1024
        let error = #expect(throws: CohortError.self) { try bad.validate() }
        #expect(error?.message.contains("fragmentSize") == true)
    }

    /// The designated initializer used to skip an unknown name silently; now the channel refuses
    /// to start.
    @Test func theDesignatedInitializerRefusesAnUnknownNameAtStart() async throws {
        let channel = try TestCluster.makeChannel(configuration: configuration(["dispatch", "compresion"]), transport: .inMemory(InMemoryNetwork()))
        #expect(channel.configurationError?.message.contains("'compresion'") == true)
        let error = await #expect(throws: CohortError.self) { try await channel.run() }
        #expect(error?.code == .badConfiguration)
        #expect(error?.message.contains("compression") == true)
    }

    @Test func theConfigurationInitializerThrows() {
        let error = #expect(throws: CohortError.self) { try GroupChannel(configuration: configuration(["order", "compression"])) }
        #expect(error?.message.contains("must sit below") == true)
    }

    @Test func stagesAreBuiltInTheConfiguredOrder() throws {
        let channel = try TestCluster.makeChannel(configuration: configuration(InterceptorStack.recommended), transport: .inMemory(InMemoryNetwork()))
        #expect(channel.configurationError == nil)
        #expect(channel.interceptors.map(\.name) == InterceptorStack.recommended)
    }

    @Test func settingsLoadFromAFileAndTheEnvironment() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-\(UUID().uuidString).json").path
        try Data(#"{"interceptors": ["compression", "order", "fragmentation"], "fragmentSize": 65536, "maxMessageSize": 1048576, "compressionAlgorithm": "gzip", "orderGapTimeoutMs": 500}"#.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let loaded = try ClusterConfiguration.load(file: path, environment: ["COHORT_MAX_DECOMPRESSED_SIZE": "2048", "COHORT_COMPRESSION_MIN_SIZE": "100"])
        #expect(loaded.interceptors == ["compression", "order", "fragmentation"])
        #expect(loaded.fragmentation.fragmentSize == 65536)
        #expect(loaded.fragmentation.maxMessageSize == 1_048_576)
        #expect(loaded.compression.algorithm == .gzip)
        #expect(loaded.compression.maxDecompressedSize == 2048)
        #expect(loaded.compression.minSize == 100)
        #expect(loaded.order.gapTimeout == .milliseconds(500))
    }
}
