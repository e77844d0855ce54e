/// Everything a node needs to know, as one value.
///
/// Build it in code, or load it from a JSON file with environment overrides through
/// ``ClusterConfiguration/load(file:environment:)``.
public struct ClusterConfiguration: Sendable, Equatable {
    /// The node's name (for logs and tools).
    public var name: String
    /// The address the transport listens on. Port 0 picks a free port.
    public var listen: Endpoint
    /// The cluster domain; members of other domains never see each other.
    public var domain: String
    /// Small metadata published with the member record.
    public var metadata: [String: String]
    /// The transport plugin id (`tcp`, or a loaded plugin's id).
    public var transport: String
    /// The codec plugin id used for sending (`binary` or `json`). Every loaded codec can be received.
    public var codec: String
    /// The discovery plugin id (`static`, or a loaded plugin's id).
    public var discovery: String
    /// Settings handed to the discovery plugin (for `static`: `members`).
    public var discoverySettings: [String: String]
    /// Settings handed to the transport plugin.
    public var transportSettings: [String: String]
    /// Shared libraries to load before the plugins are resolved.
    public var plugins: [String]
    /// Frame cap and connect timeout.
    public var wire: TransportSettings
    /// Heartbeats and handshakes.
    public var membership: MembershipState.Settings
    /// Probing and verdicts.
    public var failureDetector: FailureDetectorState.Settings
    /// Asynchronous send queues.
    public var dispatch: MessageDispatch.Settings
    /// Interceptor order, top (nearest the application) first: built-in names (`throughput`,
    /// `dispatch`, `compression`, `order`, `fragmentation`, `failureDetector`, `domainFilter`) and
    /// ids of interceptor plugins. An unknown name or an order that cannot work is refused when
    /// the channel starts; see ``InterceptorStack`` for the rules.
    public var interceptors: [String]
    /// Fragment size and reassembly bounds of the `fragmentation` stage.
    public var fragmentation: Fragmentation.Settings = .init()
    /// Algorithm, minimum size and decompression cap of the `compression` stage. The cap also
    /// applies on a node without the stage (every node reads compressed messages).
    public var compression: Compression.Settings = .init()
    /// Gap timeout and bound of held messages of the `order` stage.
    public var order: OrderSettings = .init()
    /// Settings handed to interceptor plugins, by the name used in ``interceptors``.
    public var interceptorSettings: [String: [String: String]] = [:]
    /// Default timeout of acknowledged sends.
    public var sendTimeout: Duration
    /// The fewest members, this node included, the node must see to be in quorum
    /// (``GroupChannel/isInQuorum``); 1 (the default) means always.
    public var minimumMembers: Int = 1
    /// The cluster keys of shared-key mode (the first one opens connections; all are accepted).
    /// Empty: no shared key. See ``ClusterKey`` and docs/security.md.
    public var clusterKeys: [ClusterKey] = []
    /// Mutual TLS: this node's PEM certificate (its member name as a `DNS:` subject alternative
    /// name), its private key and the cluster CA's certificate. All three, or none. Read again
    /// when they change on disk.
    public var tlsCertificateFile: String?
    /// See ``tlsCertificateFile``.
    public var tlsKeyFile: String?
    /// See ``tlsCertificateFile``.
    public var tlsCAFile: String?
    /// Run without cluster credentials even though the listener is reachable beyond loopback.
    /// Off by default: such a node refuses to start (see ``validate()``).
    public var insecure: Bool = false

    /// Creates a configuration.
    public init(
        name: String = "node",
        listen: Endpoint = Endpoint(host: "127.0.0.1", port: 4000),
        members: [Endpoint] = [],
        domain: String = "default",
        metadata: [String: String] = [:],
        transport: String = "tcp",
        codec: String = "binary",
        discovery: String = "static",
        discoverySettings: [String: String] = [:],
        transportSettings: [String: String] = [:],
        plugins: [String] = [],
        wire: TransportSettings = TransportSettings(),
        membership: MembershipState.Settings = .init(),
        failureDetector: FailureDetectorState.Settings = .init(),
        dispatch: MessageDispatch.Settings = .init(),
        interceptors: [String] = ["dispatch", "failureDetector", "domainFilter"],
        sendTimeout: Duration = .seconds(5)
    ) {
        self.name = name
        self.listen = listen
        self.domain = domain
        self.metadata = metadata
        self.transport = transport
        self.codec = codec
        self.discovery = discovery
        self.discoverySettings = discoverySettings
        self.transportSettings = transportSettings
        self.plugins = plugins
        self.wire = wire
        self.membership = membership
        self.failureDetector = failureDetector
        self.dispatch = dispatch
        self.interceptors = interceptors
        self.sendTimeout = sendTimeout
        if !members.isEmpty { self.members = members }
    }

    /// The static member list (the `members` setting of the static discovery).
    public var members: [Endpoint] {
        get { (discoverySettings["members"] ?? "").split(separator: ",").compactMap { try? Endpoint(parsing: String($0)) } }
        set { discoverySettings["members"] = newValue.map(\.description).joined(separator: ",") }
    }

    /// Checks the values for mistakes a node would only discover later.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` naming the setting.
    public func validate() throws {
        func bad(_ key: String, _ why: String) -> CohortError {
            CohortError(.badConfiguration, "configuration key '\(key)': \(why)")
        }
        if name.isEmpty { throw bad("name", "must not be empty") }
        if wire.maxFrameSize < 1024 { throw bad("maxFrameSize", "must be at least 1024 bytes, got \(wire.maxFrameSize)") }
        if wire.maxFrameSize > Int(UInt32.max) { throw bad("maxFrameSize", "must fit in 32 bits") }
        if membership.heartbeatInterval <= .zero { throw bad("heartbeatIntervalMs", "must be positive") }
        if membership.missingAfter <= membership.heartbeatInterval {
            throw bad("missingAfterMs", "must be longer than the heartbeat interval (\(membership.heartbeatInterval)), or every member looks missing")
        }
        if failureDetector.confirmations < 1 { throw bad("confirmations", "must be at least 1") }
        if dispatch.queueLimit < 1 { throw bad("queueLimit", "must be at least 1") }
        if minimumMembers < 1 { throw bad("minimumMembers", "must be at least 1 (the node itself), got \(minimumMembers)") }
        try ClusterKey.checkUnique(clusterKeys)
        let tlsFiles = [tlsCertificateFile, tlsKeyFile, tlsCAFile].compactMap { $0 }.filter { !$0.isEmpty }
        if !tlsFiles.isEmpty && tlsFiles.count != 3 {
            throw bad("tlsCertificateFile", "mutual TLS needs all three of tlsCertificateFile, tlsKeyFile and tlsCaFile")
        }
        if tlsFiles.count == 3 && !clusterKeys.isEmpty {
            throw bad("clusterKeys", "choose one: cluster keys (shared-key mode) or TLS files (mutual TLS), not both")
        }
        if !hasClusterCredentials && !insecure && !Self.isLoopback(listen.host) {
            throw CohortError(.unauthenticated, """
                the cluster listener \(listen) is reachable beyond loopback and no cluster credentials are set: \
                anyone who can reach that port could join the cluster and read every session. \
                Give every member the same cluster key (make one with `cohort key`, then set COHORT_CLUSTER_KEYS=1:<hex>, \
                the configuration key 'clusterKeys', or --cluster-key-file) or certificates for mutual TLS \
                (COHORT_TLS_CERTIFICATE_FILE, COHORT_TLS_KEY_FILE, COHORT_TLS_CA_FILE), or listen on 127.0.0.1, \
                or, on a network where every host is trusted, say so explicitly with COHORT_INSECURE=true \
                (configuration key 'insecure', flag --insecure). See docs/security.md.
                """)
        }
        // Names that are not built in may be interceptor plugins of the libraries listed in
        // `plugins`; the channel checks them against its registry when it starts.
        let pluginNames: ((String) -> Bool)? = plugins.isEmpty ? { _ in false } : nil
        try InterceptorStack.validate(interceptors, plugins: pluginNames)
        if interceptors.contains("fragmentation") {
            let room = wire.maxFrameSize - WireFormat.headerSize - 16 - FragmentHeader.size
            if fragmentation.fragmentSize < 1 || fragmentation.fragmentSize > room {
                throw bad("fragmentSize", "must be between 1 and \(room) bytes (maxFrameSize \(wire.maxFrameSize) less the frame and fragment headers), got \(fragmentation.fragmentSize)")
            }
            if fragmentation.maxMessageSize < fragmentation.fragmentSize {
                throw bad("maxMessageSize", "must be at least fragmentSize (\(fragmentation.fragmentSize)), got \(fragmentation.maxMessageSize)")
            }
        }
        if compression.maxDecompressedSize < 1 { throw bad("maxDecompressedSize", "must be positive") }
        if !(1...9).contains(compression.level) { throw bad("compressionLevel", "must be between 1 (fastest) and 9 (smallest), got \(compression.level)") }
        if order.gapTimeout <= .zero { throw bad("orderGapTimeoutMs", "must be positive") }
        if order.maxHeldPerSender < 1 { throw bad("orderMaxHeld", "must be at least 1") }
    }
}

extension ClusterConfiguration {
    /// Whether the node has credentials a peer must prove it shares (a cluster key).
    public var hasClusterCredentials: Bool { !clusterKeys.isEmpty || usesMutualTLS }

    /// Whether the three TLS files are set.
    public var usesMutualTLS: Bool {
        [tlsCertificateFile, tlsKeyFile, tlsCAFile].allSatisfy { !($0 ?? "").isEmpty }
    }

    /// Whether a listen host is reachable from this machine only (`127.0.0.0/8`, `::1`, `localhost`).
    /// A wildcard (`0.0.0.0`, `::`), a name or any other address is reachable beyond it.
    public static func isLoopback(_ host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if bare == "localhost" || bare == "::1" || bare == "0:0:0:0:0:0:0:1" { return true }
        let octets = bare.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// The values the discovery plugin gets: ``discoverySettings`` plus the cluster keys (the
    /// multicast discovery signs its datagrams with them).
    var discoveryPluginValues: [String: String] {
        var values = discoverySettings
        // Only the multicast discovery reads them (other plugins may refuse keys they do not know).
        if !clusterKeys.isEmpty, discovery.hasSuffix("multicast"), values["clusterKeys"] == nil {
            values["clusterKeys"] = ClusterKey.text(of: clusterKeys)
        }
        return values
    }

    /// The values the transport plugin gets: ``transportSettings`` plus the cluster keys.
    var transportPluginValues: [String: String] {
        var values = transportSettings
        if !clusterKeys.isEmpty { values["clusterKeys"] = ClusterKey.text(of: clusterKeys) }
        if usesMutualTLS {
            values["tlsCertificateFile"] = tlsCertificateFile
            values["tlsKeyFile"] = tlsKeyFile
            values["tlsCAFile"] = tlsCAFile
        }
        return values
    }
}
