import CohortCore

/// Everything the Kubernetes discovery needs: where the API server is, which credentials to
/// use, which pods to list and how to turn them into cluster addresses.
///
/// Inside a pod the defaults are right: the API address comes from `KUBERNETES_SERVICE_HOST` /
/// `KUBERNETES_SERVICE_PORT`, the token, CA certificate and namespace from the mounted service
/// account. ``init(settings:environment:readFile:)`` resolves every value from the plugin
/// settings first, then from environment variables (including the names Tomcat's
/// `KubernetesMembershipProvider` and JGroups' `KUBE_PING` read), then the default. The table is
/// ``KubernetesDiscoveryConfiguration/Key``.
public struct KubernetesDiscoveryConfiguration: Sendable, Equatable {
    /// The service-account token mounted into every pod.
    public static let defaultTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    /// The cluster CA certificate mounted into every pod.
    public static let defaultCAFile = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    /// The pod's own namespace, mounted into every pod.
    public static let defaultNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

    /// `https` (the default) or `http` (for example `kubectl proxy`).
    public var apiProtocol: String
    /// The API server's host name or IP address.
    public var apiHost: String
    /// The API server's port.
    public var apiPort: Int
    /// The core API version (`v1`).
    public var apiVersion: String
    /// The namespace whose pods are listed.
    public var namespace: String
    /// A Kubernetes label selector (`app=cohort,tier in (web)`), or nil for every pod.
    public var labelSelector: String?
    /// The bearer-token file; re-read when it changes and after a 401.
    public var tokenFile: String
    /// The PEM file of the CA that signed the API server's certificate.
    public var caFile: String
    /// This pod's name, to skip itself.
    public var podName: String?
    /// This pod's IP address, to skip itself.
    public var podIP: String?
    /// The cluster port of every member; nil means the local member's port.
    public var port: Int?
    /// The name of a container port that holds each pod's cluster port (wins over ``port``).
    public var portName: String?
    /// Only propose pods whose `Ready` condition is `True`.
    public var readyOnly: Bool
    /// When to poll.
    public var schedule: PollSchedule
    /// How long a TCP + TLS connect to the API may take.
    public var connectTimeout: Duration
    /// How long one list request may take, response body included.
    public var requestTimeout: Duration
    /// The largest response accepted.
    public var maxResponseBytes: Int

    /// Creates a configuration from values.
    public init(
        apiProtocol: String = "https",
        apiHost: String,
        apiPort: Int = 443,
        apiVersion: String = "v1",
        namespace: String,
        labelSelector: String? = nil,
        tokenFile: String = Self.defaultTokenFile,
        caFile: String = Self.defaultCAFile,
        podName: String? = nil,
        podIP: String? = nil,
        port: Int? = nil,
        portName: String? = nil,
        readyOnly: Bool = false,
        schedule: PollSchedule = PollSchedule(),
        connectTimeout: Duration = .seconds(2),
        requestTimeout: Duration = .seconds(5),
        maxResponseBytes: Int = 16 << 20
    ) {
        self.apiProtocol = apiProtocol
        self.apiHost = apiHost
        self.apiPort = apiPort
        self.apiVersion = apiVersion
        self.namespace = namespace
        self.labelSelector = labelSelector
        self.tokenFile = tokenFile
        self.caFile = caFile
        self.podName = podName
        self.podIP = podIP
        self.port = port
        self.portName = portName
        self.readyOnly = readyOnly
        self.schedule = schedule
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.maxResponseBytes = maxResponseBytes
    }

    /// The URL that lists the pods: `proto://host:port/api/<version>/namespaces/<ns>/pods`,
    /// with `?labelSelector=` (percent-encoded) when a selector is set. IPv6 hosts are bracketed.
    public var podsURL: String {
        let host = apiHost.contains(":") ? "[\(apiHost)]" : apiHost
        var url = "\(apiProtocol)://\(host):\(apiPort)/api/\(apiVersion)/namespaces/\(Self.percentEncoded(namespace))/pods"
        if let labelSelector, !labelSelector.isEmpty {
            url += "?labelSelector=" + Self.percentEncoded(labelSelector)
        }
        return url
    }

    /// Percent-encodes everything but the unreserved characters of RFC 3986
    /// (`A–Z a–z 0–9 - . _ ~`), so `=`, `,`, `!`, spaces and parentheses of a selector survive.
    public static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".unicodeScalars)
                result.unicodeScalars.append("%")
                result.unicodeScalars.append(hex[Int(byte >> 4)])
                result.unicodeScalars.append(hex[Int(byte & 0xF)])
            }
        }
        return result
    }

    /// Checks the values.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` naming the value that is wrong.
    public func validate() throws {
        func bad(_ message: String) -> CohortError { CohortError(.badConfiguration, "discovery.kubernetes: \(message)") }
        guard apiProtocol == "https" || apiProtocol == "http" else {
            throw bad("apiProtocol must be https or http, got '\(apiProtocol)'")
        }
        guard !apiHost.isEmpty else { throw bad("the API server host is empty") }
        guard (1...65535).contains(apiPort) else { throw bad("apiPort must be 1…65535, got \(apiPort)") }
        guard Self.isDNSLabel(namespace) else {
            throw bad("namespace '\(namespace)' is not a Kubernetes namespace name (lower-case letters, digits and '-', at most 63)")
        }
        if let port, !(1...65535).contains(port) { throw bad("port must be 1…65535, got \(port)") }
        guard schedule.interval > .zero else { throw bad("pollIntervalMs must be positive") }
        guard requestTimeout > .zero, connectTimeout > .zero else { throw bad("timeouts must be positive") }
    }

    static func isDNSLabel(_ text: String) -> Bool {
        guard (1...63).contains(text.utf8.count), text.first != "-", text.last != "-" else { return false }
        return text.utf8.allSatisfy { ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: "-") }
    }
}
