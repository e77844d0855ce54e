import Cohort
import CohortDiscoveryDNS
import CohortTestKit
import Foundation
import NIOConcurrencyHelpers
import Testing

/// A resolver whose answers the test sets.
final class ScriptedResolver: DNSResolver {
    enum Answer: Sendable {
        case addresses([String])
        case failure(String)
        case hang
    }

    private let state = NIOLockedValueBox<(answer: Answer, lookups: [String])>((.addresses([]), []))

    init(_ answer: Answer) { set(answer) }

    func set(_ answer: Answer) { state.withLockedValue { $0.answer = answer } }
    var lookups: [String] { state.withLockedValue { $0.lookups } }

    func resolve(_ name: String) async throws -> [String] {
        let answer = state.withLockedValue { state -> Answer in
            state.lookups.append(name)
            return state.answer
        }
        switch answer {
        case .addresses(let list): return list
        case .failure(let reason): throw CohortError(.connectionFailed, "cannot resolve '\(name)': \(reason)")
        case .hang:
            try await suspendUntilCancelled()
            return []
        }
    }
}

@Suite("DNS discovery", .timeLimit(.minutes(1)))
struct DNSDiscoveryTests {
    let local = localMember(Endpoint(host: "10.0.0.1", port: 4001))
    let service = "cohort-cluster.demo.svc.cluster.local"

    func provider(_ resolver: ScriptedResolver, _ settings: [String: String] = [:], capture: LogCapture = LogCapture()) throws -> DNSDiscovery {
        var values = ["service": service, "pollIntervalMs": "30", "backoffInitialMs": "10", "backoffMaxMs": "50", "timeoutMs": "300"]
        values.merge(settings) { $1 }
        return try DNSDiscoveryPlugin().makeDiscovery(settings: PluginSettings(values: values, logger: capture.logger("cohort.discovery.dns")), environment: [:], resolver: resolver)
    }

    @Test func headlessServiceRecordsBecomeCandidatesWithoutItself() async throws {
        let resolver = ScriptedResolver(.addresses(["10.0.0.3", "10.0.0.1", "10.0.0.2", "10.0.0.2", "fd00::4"]))
        try await withRunning(try provider(resolver), local: local) { events in
            let expected = ["10.0.0.2", "10.0.0.3", "fd00::4"].map { Endpoint(host: $0, port: 4001) }
            #expect(await events.waitFor(expected), "\(events.candidateLists)")
            #expect(events.latest?.last?.description == "[fd00::4]:4001")
        }
        #expect(resolver.lookups.allSatisfy { $0 == service })
    }

    @Test func portAndPodIPComeFromSettingsAndEnvironment() async throws {
        let resolver = ScriptedResolver(.addresses(["10.0.0.5", "10.0.0.6"]))
        let discovery = try DNSDiscoveryPlugin().makeDiscovery(
            settings: PluginSettings(values: ["port": "7800", "pollIntervalMs": "30"]),
            environment: ["DNS_MEMBERSHIP_SERVICE_NAME": service, "POD_IP": "10.0.0.5"],
            resolver: resolver
        )
        #expect(discovery.configuration.serviceName == service)
        try await withRunning(discovery, local: local) { events in
            #expect(await events.waitFor([Endpoint(host: "10.0.0.6", port: 7800)]), "\(events.candidateLists)")
        }
    }

    @Test func lookupFailuresKeepTheLastViewAndAreLoggedOnce() async throws {
        let resolver = ScriptedResolver(.addresses(["10.0.0.2", "10.0.0.3"]))
        let capture = LogCapture()
        let discovery = try provider(resolver, capture: capture)
        let view = [Endpoint(host: "10.0.0.2", port: 4001), Endpoint(host: "10.0.0.3", port: 4001)]
        try await withRunning(discovery, local: local) { events in
            #expect(await events.waitFor(view))
            // No ready pod published: NXDOMAIN. Then a resolver that never answers.
            resolver.set(.failure("Name or service not known"))
            let before = resolver.lookups.count
            #expect(await eventually { resolver.lookups.count >= before + 4 })
            #expect(discovery.latestError?.code == .connectionFailed)
            resolver.set(.hang)
            #expect(await eventually { discovery.latestError?.code == .timeout })
            #expect(events.latest == view)
            #expect(!events.candidateLists.contains([]), "an error never reports an empty list")
            #expect(capture.lines(containing: "Name or service not known").count == 1, "\(capture.text)")

            resolver.set(.addresses(["10.0.0.4"]))
            #expect(await events.waitFor([Endpoint(host: "10.0.0.4", port: 4001)]))
            #expect(discovery.latestError == nil)
        }
    }

    @Test func backoffAfterFailedLookups() throws {
        let configuration = DNSDiscoveryConfiguration(serviceName: service, pollInterval: .seconds(5), initialBackoff: .milliseconds(500), maximumBackoff: .seconds(4))
        #expect(configuration.delay(afterFailures: 0, random: 0.5) == .seconds(5))
        #expect((1...6).map { configuration.delay(afterFailures: $0, random: 0) } == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(4), .seconds(4)])
        #expect(configuration.delay(afterFailures: 2, random: 0.5) == .milliseconds(900))
    }

    @Test func settingsErrorsAreClear() {
        let noName = #expect(throws: CohortError.self) { try DNSDiscoveryPlugin().makeDiscovery(settings: PluginSettings(), environment: [:]) }
        #expect(noName?.code == .badConfiguration)
        #expect(noName?.message.contains("DNS_MEMBERSHIP_SERVICE_NAME") == true)
        let badFamily = #expect(throws: CohortError.self) {
            try DNSDiscoveryPlugin().makeDiscovery(settings: PluginSettings(values: ["service": "x", "family": "ipx"]), environment: [:])
        }
        #expect(badFamily?.message.contains("family") == true)
    }

    @Test func passesTheDiscoveryConformanceSuite() async throws {
        let resolver = ScriptedResolver(.addresses(["10.0.0.1", "10.0.0.7"]))
        try await DiscoveryConformance.run(name: "dns", try provider(resolver), local: local) { events in
            events.contains(.candidates([Endpoint(host: "10.0.0.7", port: 4001)])) ? nil : "expected 10.0.0.7 only: \(events)"
        }
    }

    @Test func theSystemResolverFindsLocalhost() async throws {
        let addresses = try await SystemDNSResolver().resolve("localhost")
        #expect(addresses.contains("127.0.0.1") || addresses.contains("::1"), "\(addresses)")
        let v4 = try await SystemDNSResolver(family: .ipv4).resolve("localhost")
        #expect(v4.allSatisfy { !$0.contains(":") } && v4.contains("127.0.0.1"), "\(v4)")
        // A real provider with the system resolver, on localhost only.
        let discovery = DNSDiscovery(configuration: DNSDiscoveryConfiguration(serviceName: "localhost", port: 4999, family: .ipv4, pollInterval: .milliseconds(50)))
        try await withRunning(discovery, local: localMember(Endpoint(host: "127.0.0.1", port: 4001))) { events in
            #expect(await events.waitFor([Endpoint(host: "127.0.0.1", port: 4999)]), "\(events.candidateLists)")
        }
    }
}
