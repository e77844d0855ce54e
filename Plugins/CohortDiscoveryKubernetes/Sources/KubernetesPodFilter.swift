import CohortCore

/// Turns a `PodList` into cluster candidates: which pods may host a member, and at which
/// address. Pure: no I/O, no clock.
///
/// A pod is proposed when
/// - its `kind` is absent or `Pod`, and it has a name;
/// - it is not being deleted (no `deletionTimestamp`: a terminating pod is handing its sessions
///   off and leaving, so nobody should start a handshake with it);
/// - its phase is `Running` and it has a pod IP;
/// - with ``readyOnly``, its `Ready` condition is `True`;
/// - its cluster port is known: the container port named ``portName`` if set (a pod without it
///   is skipped), else ``port``;
/// - it is not this node (by pod name, pod IP, or the resulting address).
///
/// Old and new pods of a rolling update are all proposed: the cluster spans both versions, so
/// sessions move to the new pods before the old ones stop.
public struct KubernetesPodFilter: Sendable, Equatable {
    /// Only propose pods whose `Ready` condition is `True`.
    public var readyOnly: Bool
    /// The name of the container port holding the cluster port, or nil.
    public var portName: String?
    /// The cluster port when ``portName`` is nil.
    public var port: Int
    /// This pod's name.
    public var selfName: String?
    /// This pod's IP.
    public var selfIP: String?
    /// This node's own cluster address.
    public var selfEndpoint: Endpoint?

    /// Creates a filter.
    public init(readyOnly: Bool = false, portName: String? = nil, port: Int, selfName: String? = nil, selfIP: String? = nil, selfEndpoint: Endpoint? = nil) {
        self.readyOnly = readyOnly
        self.portName = portName
        self.port = port
        self.selfName = selfName
        self.selfIP = selfIP
        self.selfEndpoint = selfEndpoint
    }

    /// The filter a configuration implies for a local member.
    public init(configuration: KubernetesDiscoveryConfiguration, local: Member) {
        self.init(
            readyOnly: configuration.readyOnly,
            portName: configuration.portName,
            port: configuration.port ?? local.endpoint.port,
            selfName: configuration.podName,
            selfIP: configuration.podIP,
            selfEndpoint: local.endpoint
        )
    }

    /// Why a pod was not proposed.
    public enum Skip: String, Sendable, Equatable, CaseIterable {
        /// The item is not a pod, or has no name.
        case notAPod
        /// The pod is being deleted.
        case terminating
        /// The phase is not `Running`.
        case notRunning
        /// The pod has no IP yet.
        case noIP
        /// ``KubernetesPodFilter/readyOnly`` is set and the pod is not ready.
        case notReady
        /// The pod declares no container port named ``KubernetesPodFilter/portName``.
        case noNamedPort
        /// The pod is this node.
        case isSelf
    }

    /// The verdict on one pod.
    public struct Decision: Sendable, Equatable {
        /// The pod's name (`?` when it has none).
        public var pod: String
        /// The address proposed, when it is.
        public var endpoint: Endpoint?
        /// Why it is not, when it is not.
        public var skipped: Skip?
    }

    /// Decides on one pod.
    public func decide(_ pod: KubernetesPodList.Pod) -> Decision {
        let name = pod.metadata?.name ?? "?"
        func skip(_ reason: Skip) -> Decision { Decision(pod: name, endpoint: nil, skipped: reason) }
        guard pod.kind == nil || pod.kind == "Pod", let podName = pod.metadata?.name, !podName.isEmpty else { return skip(.notAPod) }
        guard pod.metadata?.deletionTimestamp == nil else { return skip(.terminating) }
        guard pod.status?.phase == "Running" else { return skip(.notRunning) }
        guard let ip = pod.status?.podIP, !ip.isEmpty else { return skip(.noIP) }
        if readyOnly && !pod.isReady { return skip(.notReady) }
        let clusterPort: Int
        if let portName {
            guard let named = pod.containerPort(named: portName) else { return skip(.noNamedPort) }
            clusterPort = named
        } else {
            clusterPort = port
        }
        let endpoint = Endpoint(host: ip, port: clusterPort)
        if podName == selfName || ip == selfIP || endpoint == selfEndpoint { return skip(.isSelf) }
        return Decision(pod: podName, endpoint: endpoint, skipped: nil)
    }

    /// Decides on every pod of a list, in list order.
    public func decisions(_ list: KubernetesPodList) -> [Decision] {
        list.items.map(decide)
    }

    /// The candidate addresses of a list: sorted, without duplicates.
    public func candidates(_ list: KubernetesPodList) -> [Endpoint] {
        let unique = Set(decisions(list).compactMap(\.endpoint))
        return unique.sorted { ($0.host, $0.port) < ($1.host, $1.port) }
    }
}
