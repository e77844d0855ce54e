import CohortCore

/// Discovery from a fixed `host:port` list (Tribes' StaticMembershipService).
///
/// It proposes every address as a candidate; the node handshakes with each, re-tries the ones
/// that do not answer, and leaves the verdict on members to the failure detector.
public struct StaticDiscovery: DiscoveryProvider {
    /// The addresses to try.
    public var endpoints: [Endpoint]
    /// How often the list is re-announced (so addresses that came up later are tried).
    public var interval: Duration

    public init(endpoints: [Endpoint], interval: Duration = .seconds(1)) {
        self.endpoints = endpoints
        self.interval = interval
    }

    public var name: String { "static" }

    public func run(local: Member, report: @escaping @Sendable (DiscoveryEvent) -> Void) async throws {
        let others = endpoints.filter { $0 != local.endpoint }
        while !Task.isCancelled {
            report(.candidates(others))
            try await Task.sleep(for: interval)
        }
    }
}

/// Registers ``StaticDiscovery`` as `discovery.static`.
///
/// Settings: `members` — a comma-separated `host:port` list; `interval_ms` — re-announce period.
public struct StaticDiscoveryPlugin: PluginFactory {
    public init() {}
    public var id: String { "discovery.static" }
    public var kind: PluginKind { .discovery }
    public var version: String { "1.0.0" }
    public var summary: String { "a fixed host:port list" }
    public func makeDiscovery(settings: PluginSettings) throws -> any DiscoveryProvider {
        let list = settings["members"] ?? ""
        let endpoints = try list.split(separator: ",").map { try Endpoint(parsing: String($0)) }
        var interval = Duration.seconds(1)
        if let text = settings["interval_ms"] {
            guard let ms = Int(text), ms > 0 else {
                throw CohortError(.badConfiguration, "discovery.static setting 'interval_ms' must be a positive integer, got '\(text)'")
            }
            interval = .milliseconds(ms)
        }
        return StaticDiscovery(endpoints: endpoints, interval: interval)
    }
}
