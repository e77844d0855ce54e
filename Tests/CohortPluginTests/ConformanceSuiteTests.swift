import Cohort
import CohortDiscoveryStatic
import CohortPluginSDK
import CohortTestKit
import CohortTransportTCP
import Foundation
import NIOConcurrencyHelpers
import Testing

/// The conformance suites of CohortTestKit, run against the built-in plugins (linked in and
/// loaded from their libraries), the in-memory test transport and the example plugin.
@Suite("Conformance suites", .timeLimit(.minutes(2)))
struct ConformanceSuiteTests {
    /// A small frame cap, so the oversized-payload check stays cheap.
    static let frameCap = 64 * 1024

    // MARK: Transport

    @Test func builtInTCPTransportConforms() async throws {
        let settings = TransportSettings(maxFrameSize: Self.frameCap)
        try await TransportConformance.run(name: "tcp (built-in)", maxFrameSize: Self.frameCap) {
            TCPTransport(settings: settings, logger: quietLogger)
        }
    }

    @Test(.enabled(if: PluginFiles.allBuilt, "the plugin libraries are not built"))
    func loadedTCPTransportConforms() async throws {
        let factory = try PluginFiles.factory(PluginFiles.tcp, id: "transport.tcp", kind: .transport)
        let settings = PluginSettings(transport: TransportSettings(maxFrameSize: Self.frameCap), logger: quietLogger)
        let library = PluginFiles.path(PluginFiles.tcp)
        try await TransportConformance.run(name: "tcp (loaded)", maxFrameSize: Self.frameCap) {
            let transport = try factory.makeTransport(settings: settings)
            #expect((transport as? any LoadedPluginPart)?.library == library)
            return transport
        }
    }

    @Test func inMemoryTransportConforms() async throws {
        let network = InMemoryNetwork()
        // The in-memory transport has no frame cap (it takes no TransportSettings), so that one
        // check is skipped.
        try await TransportConformance.run(name: "in-memory", maxFrameSize: nil) { network.makeTransport() }
    }

    @Test func transportSuiteNamesTheFailedCheck() async throws {
        // The TCP transport refuses payloads above its cap; telling the suite a larger cap than
        // the transport really has makes the sends of 'largest' payloads fail.
        let failure = await #expect(throws: PluginConformanceFailure.self) {
            try await TransportConformance.run(name: "tcp (misconfigured)", maxFrameSize: 1_000_000) {
                TCPTransport(settings: TransportSettings(maxFrameSize: 8 * 1024), logger: quietLogger)
            }
        }
        #expect(failure?.kind == .transport)
        #expect(failure?.plugin == "tcp (misconfigured)")
        #expect(failure?.check.hasPrefix("send") == true, "\(String(describing: failure))")
        #expect(failure?.description.contains("transport 'tcp (misconfigured)' fails 'send") == true)
    }

    // MARK: Discovery

    @Test func builtInStaticDiscoveryConforms() async throws {
        let local = TransportConformance.localMember(0)
        let others = [Endpoint(host: "127.0.0.1", port: 4101), Endpoint(host: "127.0.0.1", port: 4102)]
        let provider = StaticDiscovery(endpoints: others + [local.endpoint], interval: .milliseconds(50))
        try await DiscoveryConformance.run(name: "static (built-in)", provider, local: local) { events in
            events.first == .candidates(others) ? nil : "expected candidates \(others) first, got \(events)"
        }
    }

    @Test(.enabled(if: PluginFiles.allBuilt, "the plugin libraries are not built"))
    func loadedStaticDiscoveryWithItsOwnAddressConforms() async throws {
        var local = TransportConformance.localMember(0)
        local.endpoint = Endpoint(host: "127.0.0.1", port: 4300)
        let others = [Endpoint(host: "127.0.0.1", port: 4301), Endpoint(host: "10.1.2.3", port: 4302)]
        let factory = try PluginFiles.factory(PluginFiles.staticDiscovery, id: "discovery.static", kind: .discovery)
        let members = (others + [local.endpoint]).map(\.description).joined(separator: ",")
        let provider = try factory.makeDiscovery(settings: PluginSettings(values: ["members": members, "interval_ms": "50"], logger: quietLogger))
        #expect((provider as? any LoadedPluginPart)?.library == PluginFiles.path(PluginFiles.staticDiscovery))
        try await DiscoveryConformance.run(name: "static (loaded)", provider, local: local) { events in
            events.first == .candidates(others) ? nil : "expected candidates \(others) first, got \(events)"
        }
    }

    @Test func discoverySuiteNamesTheFailedCheck() async throws {
        let local = TransportConformance.localMember(0)
        let silent = await #expect(throws: PluginConformanceFailure.self) {
            try await DiscoveryConformance.run(name: "silent", SilentDiscovery(), local: local, firstEventWithin: .milliseconds(200))
        }
        #expect(silent?.check == "first event")
        #expect(silent?.kind == .discovery)
        let selfish = await #expect(throws: PluginConformanceFailure.self) {
            try await DiscoveryConformance.run(name: "selfish", SelfProposingDiscovery(), local: local)
        }
        #expect(selfish?.check == "no self-proposal", "\(String(describing: selfish))")
        let stubbornProvider = StubbornDiscovery()
        defer { stubbornProvider.release() }
        let stubborn = await #expect(throws: PluginConformanceFailure.self) {
            try await DiscoveryConformance.run(name: "stubborn", stubbornProvider, local: local, stopWithin: .milliseconds(300))
        }
        #expect(stubborn?.check == "stops when cancelled", "\(String(describing: stubborn))")
    }
}

/// Reports nothing, ever (until cancelled).
struct SilentDiscovery: DiscoveryProvider {
    var name: String { "silent" }
    func run(local: Member, report: @escaping @Sendable (DiscoveryEvent) -> Void) async throws {
        try await suspendUntilCancelled()
    }
}

/// Proposes the local member's own address.
struct SelfProposingDiscovery: DiscoveryProvider {
    var name: String { "selfish" }
    func run(local: Member, report: @escaping @Sendable (DiscoveryEvent) -> Void) async throws {
        report(.candidates([local.endpoint]))
        try await suspendUntilCancelled()
    }
}

/// Reports once, then ignores cancellation until the test releases it (however long the
/// suite's checks take on a busy machine, it is still running when they look).
final class StubbornDiscovery: DiscoveryProvider, Sendable {
    private let gate = NIOLockedValueBox<(released: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    var name: String { "stubborn" }

    func run(local: Member, report: @escaping @Sendable (DiscoveryEvent) -> Void) async throws {
        report(.candidates([]))
        // A continuation does not end when its task is cancelled.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let released = gate.withLockedValue { gate -> Bool in
                if gate.released { return true }
                gate.waiter = continuation
                return false
            }
            if released { continuation.resume() }
        }
    }

    /// Lets `run` return.
    func release() {
        let waiter = gate.withLockedValue { gate -> CheckedContinuation<Void, Never>? in
            gate.released = true
            defer { gate.waiter = nil }
            return gate.waiter
        }
        waiter?.resume()
    }
}
