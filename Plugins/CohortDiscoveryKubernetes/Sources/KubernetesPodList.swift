import CohortCore
import Foundation

/// The parts of a Kubernetes `PodList` (the answer to `GET /api/v1/namespaces/{ns}/pods`) that
/// discovery reads. Every field is optional, as real answers omit many of them; unknown fields
/// are ignored.
public struct KubernetesPodList: Sendable, Equatable, Decodable {
    /// `PodList` (or `List` in some recordings).
    public var kind: String?
    /// The pods.
    public var items: [Pod]

    /// Creates a list.
    public init(kind: String? = "PodList", items: [Pod]) {
        self.kind = kind
        self.items = items
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        kind = try container.decodeIfPresent(String.self, forKey: .kind)
        items = try container.decodeIfPresent([Pod].self, forKey: .items) ?? []
    }

    private enum CodingKeys: String, CodingKey { case kind, items }

    /// Decodes a JSON answer.
    ///
    /// - Throws: ``CohortError/Code/connectionFailed`` when the bytes are not a PodList (a
    ///   truncated or foreign answer).
    public static func decode(_ bytes: [UInt8]) throws -> KubernetesPodList {
        do {
            let list = try JSONDecoder().decode(KubernetesPodList.self, from: Data(bytes))
            if let kind = list.kind, kind != "PodList", kind != "List" {
                throw CohortError(.connectionFailed, "the Kubernetes API answered a '\(kind)', not a PodList")
            }
            return list
        } catch let error as CohortError {
            throw error
        } catch {
            throw CohortError(.connectionFailed, "the Kubernetes API answer is not a PodList (\(bytes.count) bytes): \(error)", cause: error)
        }
    }

    /// One pod.
    public struct Pod: Sendable, Equatable, Decodable {
        /// `Pod`, or absent inside a list.
        public var kind: String?
        /// Name, labels, deletion time.
        public var metadata: Metadata?
        /// The containers and their ports.
        public var spec: Spec?
        /// Phase, IP and conditions.
        public var status: Status?

        /// Creates a pod.
        public init(kind: String? = nil, metadata: Metadata? = nil, spec: Spec? = nil, status: Status? = nil) {
            self.kind = kind
            self.metadata = metadata
            self.spec = spec
            self.status = status
        }

        /// Whether the condition `Ready` is `True`.
        public var isReady: Bool {
            status?.conditions?.contains { $0.type == "Ready" && $0.status == "True" } ?? false
        }

        /// The number of the first TCP container port with a name, across all containers; a
        /// number outside 1…65535 (which the API server never returns) does not count.
        public func containerPort(named name: String) -> Int? {
            for container in spec?.containers ?? [] {
                for port in container.ports ?? [] where port.name == name && (port.protocol ?? "TCP") == "TCP" {
                    if let number = port.containerPort, (1...65535).contains(number) { return number }
                }
            }
            return nil
        }
    }

    /// `metadata` of a pod.
    public struct Metadata: Sendable, Equatable, Decodable {
        /// The pod's name.
        public var name: String?
        /// The pod's namespace.
        public var namespace: String?
        /// The pod's labels.
        public var labels: [String: String]?
        /// Set once the pod is being deleted (it is terminating).
        public var deletionTimestamp: String?

        /// Creates metadata.
        public init(name: String? = nil, namespace: String? = nil, labels: [String: String]? = nil, deletionTimestamp: String? = nil) {
            self.name = name
            self.namespace = namespace
            self.labels = labels
            self.deletionTimestamp = deletionTimestamp
        }
    }

    /// `spec` of a pod.
    public struct Spec: Sendable, Equatable, Decodable {
        /// The containers.
        public var containers: [Container]?

        /// Creates a spec.
        public init(containers: [Container]? = nil) { self.containers = containers }
    }

    /// One container of a pod.
    public struct Container: Sendable, Equatable, Decodable {
        /// The container's name.
        public var name: String?
        /// The ports it declares.
        public var ports: [Port]?

        /// Creates a container.
        public init(name: String? = nil, ports: [Port]? = nil) {
            self.name = name
            self.ports = ports
        }
    }

    /// A declared container port.
    public struct Port: Sendable, Equatable, Decodable {
        /// The port's name (`cluster`), if any.
        public var name: String?
        /// The port number.
        public var containerPort: Int?
        /// `TCP` (the default), `UDP` or `SCTP`.
        public var `protocol`: String?

        /// Creates a port.
        public init(name: String? = nil, containerPort: Int? = nil, protocol: String? = nil) {
            self.name = name
            self.containerPort = containerPort
            self.protocol = `protocol`
        }
    }

    /// `status` of a pod.
    public struct Status: Sendable, Equatable, Decodable {
        /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
        public var phase: String?
        /// The pod's primary IP address (IPv4 or IPv6).
        public var podIP: String?
        /// Conditions such as `Ready`.
        public var conditions: [Condition]?
        /// Why the pod is in this state (`NodeLost`, `Evicted`…).
        public var reason: String?

        /// Creates a status.
        public init(phase: String? = nil, podIP: String? = nil, conditions: [Condition]? = nil, reason: String? = nil) {
            self.phase = phase
            self.podIP = podIP
            self.conditions = conditions
            self.reason = reason
        }
    }

    /// A pod condition.
    public struct Condition: Sendable, Equatable, Decodable {
        /// `Ready`, `PodScheduled`, `Initialized`, `ContainersReady`…
        public var type: String?
        /// `True`, `False` or `Unknown`.
        public var status: String?

        /// Creates a condition.
        public init(type: String? = nil, status: String? = nil) {
            self.type = type
            self.status = status
        }
    }
}
