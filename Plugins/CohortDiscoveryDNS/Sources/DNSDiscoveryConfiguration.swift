import CohortCore

/// What ``DNSDiscovery`` resolves and how often.
///
/// | Setting | Environment (first set wins) | Default |
/// |---|---|---|
/// | `service` | `DNS_MEMBERSHIP_SERVICE_NAME` | required |
/// | `port` | — | the local member's port |
/// | `family` | — | `any` (A and AAAA); `ipv4`, `ipv6` |
/// | `podIP` | `POD_IP`, `MY_POD_IP` | none |
/// | `pollIntervalMs` | — | 5000 |
/// | `timeoutMs` | — | 5000 |
/// | `backoffInitialMs` | — | 500 |
/// | `backoffMaxMs` | — | 30000 |
public struct DNSDiscoveryConfiguration: Sendable, Equatable {
    /// The name to resolve, such as `cohort-cluster.shop.svc.cluster.local`.
    public var serviceName: String
    /// The cluster port of every member; nil means the local member's port.
    public var port: Int?
    /// The address families asked for.
    public var family: DNSAddressFamily
    /// This pod's IP, skipped.
    public var podIP: String?
    /// The wait between successful lookups.
    public var pollInterval: Duration
    /// How long one lookup may take.
    public var timeout: Duration
    /// The base wait after the first failed lookup; doubles per further failure.
    public var initialBackoff: Duration
    /// The longest wait after failures.
    public var maximumBackoff: Duration

    /// Creates a configuration.
    public init(
        serviceName: String,
        port: Int? = nil,
        family: DNSAddressFamily = .any,
        podIP: String? = nil,
        pollInterval: Duration = .seconds(5),
        timeout: Duration = .seconds(5),
        initialBackoff: Duration = .milliseconds(500),
        maximumBackoff: Duration = .seconds(30)
    ) {
        self.serviceName = serviceName
        self.port = port
        self.family = family
        self.podIP = podIP
        self.pollInterval = pollInterval
        self.timeout = timeout
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
    }

    /// The settings keys this plugin reads.
    public static let settingKeys = ["service", "port", "family", "podIP", "pollIntervalMs", "timeoutMs", "backoffInitialMs", "backoffMaxMs"]

    /// Resolves a configuration from plugin settings (which win) and environment variables.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` when no name is given or a value is
    ///   malformed.
    public init(settings: [String: String], environment: [String: String]) throws {
        func value(_ key: String, _ names: [String] = []) -> String? {
            if let text = settings[key], !text.isEmpty { return text }
            return names.lazy.compactMap { environment[$0] }.first { !$0.isEmpty }
        }
        func number(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let text = value(key) else { return nil }
            guard let number = Int(text), range.contains(number) else {
                throw CohortError(.badConfiguration, "discovery.dns setting '\(key)' must be an integer in \(range.lowerBound)…\(range.upperBound), got '\(text)'")
            }
            return number
        }
        guard let service = value("service", ["DNS_MEMBERSHIP_SERVICE_NAME"]) else {
            throw CohortError(
                .badConfiguration,
                "discovery.dns needs a name to resolve: set the 'service' setting (or DNS_MEMBERSHIP_SERVICE_NAME) to the headless Service, e.g. cohort-cluster.NAMESPACE.svc.cluster.local"
            )
        }
        var family = DNSAddressFamily.any
        if let text = value("family") {
            guard let parsed = DNSAddressFamily(rawValue: text) else {
                throw CohortError(.badConfiguration, "discovery.dns setting 'family' must be any, ipv4 or ipv6, got '\(text)'")
            }
            family = parsed
        }
        self.init(
            serviceName: service,
            port: try number("port", 1...65535),
            family: family,
            podIP: value("podIP", ["POD_IP", "MY_POD_IP"]),
            pollInterval: .milliseconds(try number("pollIntervalMs", 1...86_400_000) ?? 5000),
            timeout: .milliseconds(try number("timeoutMs", 1...600_000) ?? 5000),
            initialBackoff: .milliseconds(try number("backoffInitialMs", 1...86_400_000) ?? 500),
            maximumBackoff: .milliseconds(try number("backoffMaxMs", 1...86_400_000) ?? 30000)
        )
    }

    /// The wait before the next lookup: ``pollInterval`` after a success; after n failures
    /// `initialBackoff × 2^(n-1)` capped at ``maximumBackoff``, minus up to 20 % jitter.
    ///
    /// - Parameters:
    ///   - failures: consecutive failed lookups (0 after a success).
    ///   - random: a number in `0..<1` choosing the jitter.
    public func delay(afterFailures failures: Int, random: Double) -> Duration {
        guard failures > 0 else { return pollInterval }
        var base = initialBackoff
        var step = 1
        while step < failures && step < 64 && base < maximumBackoff {
            base = base * 2
            step += 1
        }
        let capped = min(base, maximumBackoff)
        return capped * (1 - 0.2 * min(max(random, 0), 0.999_999))
    }
}
