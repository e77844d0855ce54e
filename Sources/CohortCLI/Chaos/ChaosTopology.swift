import Foundation

/// Where the nodes, the balancer and the clients live: all on loopback, or (as root) the nodes on
/// hosts 1–3 of a test network of namespaces (scripts/netns) and the balancer and the clients on
/// host 4, where the harness itself runs.
struct ChaosTopology: Sendable {
    enum Network: Sendable {
        case loopback
        /// Hosts of `scripts/netns` under `prefix`; `script` is the path of scripts/netns.
        case namespaces(prefix: String, script: String)
    }

    struct Node: Sendable {
        var name: String
        /// The host index in namespace mode (1…3), nil on loopback.
        var host: Int?
        var httpHost: String
        var httpPort: Int
        var clusterHost: String
        var clusterPort: Int

        var httpAddress: String { "\(httpHost):\(httpPort)" }
        var clusterAddress: String { "\(clusterHost):\(clusterPort)" }
        var baseURL: String { "http://\(httpAddress)" }
    }

    var network: Network
    var nodes: [Node]
    /// Where nginx listens.
    var balancerAddress: String

    var networkName: String {
        switch network {
        case .loopback: "loopback"
        case .namespaces: "netns"
        }
    }

    var canPartition: Bool {
        if case .namespaces = network { return true }
        return false
    }

    /// Three nodes on 127.0.0.1 with free ports (asked from the kernel).
    static func loopback(nodeCount: Int = 3) throws -> ChaosTopology {
        let ports = try freeLoopbackPorts(nodeCount * 2 + 1)
        let nodes = (0..<nodeCount).map { i in
            Node(name: "node\(i + 1)", host: nil, httpHost: "127.0.0.1", httpPort: ports[i],
                 clusterHost: "127.0.0.1", clusterPort: ports[nodeCount + i])
        }
        return ChaosTopology(network: .loopback, nodes: nodes, balancerAddress: "127.0.0.1:\(ports[nodeCount * 2])")
    }

    /// Node I on host I (10.231.0.I), the balancer on host 4; `offset` shifts the ports so that a
    /// scenario never reuses the previous one's sockets.
    static func namespaces(prefix: String, script: String, offset: Int, nodeCount: Int = 3) -> ChaosTopology {
        let nodes = (1...nodeCount).map { i in
            Node(name: "node\(i)", host: i, httpHost: "10.231.0.\(i)", httpPort: 18081 + offset,
                 clusterHost: "10.231.0.\(i)", clusterPort: 14001 + offset)
        }
        return ChaosTopology(network: .namespaces(prefix: prefix, script: script), nodes: nodes,
                             balancerAddress: "10.231.0.\(nodeCount + 1):18080")
    }

    /// The program and arguments that start `arguments` on a node's host.
    func launcher(for node: Node, executable: String, arguments: [String]) -> (String, [String]) {
        switch network {
        case .loopback:
            return (executable, arguments)
        case .namespaces(let prefix, _):
            // `ip netns exec` execs the program: its pid is the node's pid.
            return ("/usr/bin/env", ["ip", "netns", "exec", "\(prefix)-h\(node.host ?? 1)", executable] + arguments)
        }
    }

    /// Ports that were free on 127.0.0.1 a moment ago (bound to port 0, then released).
    static func freeLoopbackPorts(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw ChaosError("socket() failed: errno \(errno)") }
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw ChaosError("bind() failed: errno \(errno)") }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}
