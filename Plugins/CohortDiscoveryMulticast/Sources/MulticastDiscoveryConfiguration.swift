import CohortCore

/// Where and how often ``MulticastDiscovery`` announces the local member (Tribes' McastService
/// attributes).
///
/// | Setting | Meaning | Default |
/// |---|---|---|
/// | `address` | IPv4 multicast group | `228.0.0.4` |
/// | `port` | UDP port of the group | `45564` |
/// | `frequencyMs` | heartbeat period | `500` |
/// | `dropTimeMs` | a member unheard of for this long is reported gone | `3000` |
/// | `ttl` | IP_MULTICAST_TTL, 0…255 (0: this host only) | the system's (1) |
/// | `interface` | interface name (`eth0`) or IPv4 address to send and join on (IP_MULTICAST_IF) | the interface of the listen address, else the routing table |
/// | `loopback` | IP_MULTICAST_LOOP: deliver to other members on this host (`true`/`false`) | `true` |
/// | `recoveryBackoffMs` | first wait before re-opening the socket after an error | `500` |
/// | `recoveryMaxBackoffMs` | longest wait between re-opening attempts | `5000` |
/// | `clusterKeys` | cluster keys (``CohortCore/ClusterKey`` text, set from the node's `clusterKeys`): datagrams are signed with the first and must carry a valid MAC | none |
/// | `macWindowMs` | how far a signed datagram's time may be from the receiver's clock | `30000` |
public struct MulticastDiscoveryConfiguration: Sendable, Equatable {
    /// The multicast group (IPv4, 224.0.0.0/4).
    public var address: String
    /// The UDP port of the group.
    public var port: Int
    /// How often a heartbeat datagram is sent.
    public var frequency: Duration
    /// How long a member may stay unheard of before it is reported gone.
    public var dropTime: Duration
    /// IP_MULTICAST_TTL; nil keeps the system default (1: the local network segment).
    public var ttl: Int?
    /// The interface (name or IPv4 address) to join and send on; nil derives it from the listen
    /// address, and falls back to the routing table.
    public var interface: String?
    /// IP_MULTICAST_LOOP: whether members on the same host hear each other.
    public var loopback: Bool
    /// First wait before re-opening the socket after an error; doubles per failure.
    public var recoveryBackoff: Duration
    /// Longest wait between re-opening attempts.
    public var recoveryMaxBackoff: Duration
    /// Cluster keys: datagrams are signed with the first, and only signed datagrams with a valid
    /// MAC under one of them are read. Empty: unsigned datagrams.
    public var keys: [ClusterKey] = []
    /// How far a signed datagram's time may be from this node's clock (either way).
    public var macWindow: Duration = .seconds(30)

    /// Creates a configuration.
    public init(
        address: String = "228.0.0.4",
        port: Int = 45564,
        frequency: Duration = .milliseconds(500),
        dropTime: Duration = .milliseconds(3000),
        ttl: Int? = nil,
        interface: String? = nil,
        loopback: Bool = true,
        recoveryBackoff: Duration = .milliseconds(500),
        recoveryMaxBackoff: Duration = .seconds(5)
    ) {
        self.address = address
        self.port = port
        self.frequency = frequency
        self.dropTime = dropTime
        self.ttl = ttl
        self.interface = interface
        self.loopback = loopback
        self.recoveryBackoff = recoveryBackoff
        self.recoveryMaxBackoff = recoveryMaxBackoff
    }

    /// The setting keys this plugin reads.
    public static let settingKeys = ["address", "port", "frequencyMs", "dropTimeMs", "ttl", "interface", "loopback", "recoveryBackoffMs", "recoveryMaxBackoffMs", "clusterKeys", "macWindowMs"]

    /// Reads a configuration from plugin settings; absent keys keep their defaults.
    ///
    /// - Throws: ``CohortCore/CohortError/Code/badConfiguration`` naming the setting that is wrong.
    public init(settings: [String: String]) throws {
        self.init()
        func value(_ key: String) -> String? {
            guard let raw = settings[key] else { return nil }
            let text = String(raw.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
            return text.isEmpty ? nil : text
        }
        func bad(_ key: String, _ expected: String, _ text: String) -> CohortError {
            CohortError(.badConfiguration, "discovery.multicast setting '\(key)' must be \(expected), got '\(text)'")
        }
        func number(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let text = value(key) else { return nil }
            guard let n = Int(text), range.contains(n) else { throw bad(key, "an integer in \(range.lowerBound)…\(range.upperBound)", text) }
            return n
        }
        if let text = value("address") { address = text }
        if let n = try number("port", 1...65535) { port = n }
        if let n = try number("frequencyMs", 1...3_600_000) { frequency = .milliseconds(n) }
        if let n = try number("dropTimeMs", 1...86_400_000) { dropTime = .milliseconds(n) }
        ttl = try number("ttl", 0...255)
        interface = value("interface") ?? value("bind")
        if let text = value("loopback") {
            guard let flag = Bool(settingText: text) else { throw bad("loopback", "true or false", text) }
            loopback = flag
        }
        if let n = try number("recoveryBackoffMs", 1...3_600_000) { recoveryBackoff = .milliseconds(n) }
        if let n = try number("recoveryMaxBackoffMs", 1...3_600_000) { recoveryMaxBackoff = .milliseconds(n) }
        if let text = value("clusterKeys") {
            do { keys = try ClusterKey.parseList(text) } catch let error as CohortError {
                throw CohortError(.badConfiguration, "discovery.multicast setting 'clusterKeys': \(error.message)")
            }
        }
        if let n = try number("macWindowMs", 1...86_400_000) { macWindow = .milliseconds(n) }
        try validate()
    }

    /// Checks the values.
    ///
    /// - Throws: ``CohortCore/CohortError/Code/badConfiguration`` naming the setting.
    public func validate() throws {
        guard let octets = Self.ipv4Octets(address), (224...239).contains(octets[0]) else {
            throw CohortError(.badConfiguration, "discovery.multicast setting 'address' must be an IPv4 multicast group (224.0.0.0 to 239.255.255.255), got '\(address)'")
        }
        if !(1...65535).contains(port) {
            throw CohortError(.badConfiguration, "discovery.multicast setting 'port' must be in 1…65535, got \(port)")
        }
        if frequency <= .zero {
            throw CohortError(.badConfiguration, "discovery.multicast setting 'frequencyMs' must be positive")
        }
        if dropTime <= frequency {
            throw CohortError(.badConfiguration, "discovery.multicast setting 'dropTimeMs' (\(dropTime)) must be longer than 'frequencyMs' (\(frequency)), or every member is dropped between two heartbeats; Tomcat uses 6 heartbeats (3000 ms for 500 ms)")
        }
        if let ttl, !(0...255).contains(ttl) {
            throw CohortError(.badConfiguration, "discovery.multicast setting 'ttl' must be in 0…255, got \(ttl)")
        }
        if recoveryMaxBackoff < recoveryBackoff {
            throw CohortError(.badConfiguration, "discovery.multicast setting 'recoveryMaxBackoffMs' must not be shorter than 'recoveryBackoffMs'")
        }
    }

    /// The four octets of a dotted IPv4 literal, or nil.
    static func ipv4Octets(_ text: String) -> [Int]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let octets = parts.compactMap { part -> Int? in
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let n = Int(part), (0...255).contains(n) else { return nil }
            return n
        }
        return octets.count == 4 ? octets : nil
    }
}
