@testable import CohortCLI
import Cohort
import CohortTestKit
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A stranger with a plain socket and the documented wire format (docs/wire-format.md) against
/// nodes started the way `cohort demo` starts them: `cohort serve` processes sharing a key
/// generated for the run.
@Suite("a stranger against cohort demo's nodes", .timeLimit(.minutes(3)))
struct StrangerTests {
    static var binary: String? { NodeProcessTests.binary }

    @Test(.enabled(if: binary != nil, "the cohort executable is not built next to the tests (run swift build first)"))
    func aStrangerSpeakingThePlaintextFormatIsRefusedBeforeItIsAdmittedAndLearnsNothing() async throws {
        let exe = try #require(Self.binary)
        let ports = try ChildProcess.freeLoopbackPorts(6)
        let cluster = ["127.0.0.1:\(ports[0])", "127.0.0.1:\(ports[1])"]
        let httpPort = ports[2]
        // Two demo nodes (consecutive HTTP ports, as the demo gives them).
        let httpPorts = [httpPort, ports[3]]
        let environment = DemoCommand.nodeEnvironment(key: ClusterKey.generate())
        var nodes: [ChildProcess] = []
        defer { nodes.forEach { $0.signal(SIGKILL) } }
        for i in 0..<2 {
            var launch = DemoCommand.nodeLaunch(index: i, cluster: cluster, httpPort: httpPort)
            // The demo numbers HTTP ports from the first; free ones are not always consecutive.
            if let at = launch.arguments.firstIndex(of: "--http-port") { launch.arguments[at + 1] = "\(httpPorts[i])" }
            nodes.append(try ChildProcess(exe, launch.arguments, environment: environment, mergeStandardError: true))
        }
        for node in nodes {
            #expect(await node.wait(for: 90) { $0.contains { $0.hasPrefix("serving") } }, "\(node.output)")
        }
        // The keyed members found each other.
        let joined = await eventually(timeout: .seconds(60), poll: .milliseconds(100)) {
            ((try? RawSocket.httpGet(port: httpPorts[0], path: "/cluster/members")) ?? "").contains("node2")
        }
        #expect(joined, "node1 never listed node2: the keyed members did not join each other")

        // The stranger: hello with a made-up member record, then a ReplicaTransferRequest.
        let answer = try RawSocket.exchange(port: ports[0], send: Self.strangerBytes(port: ports[5]), readFor: 10)
        #expect(answer.bytes.isEmpty, "the node answered a stranger with \(answer.bytes.count) bytes")
        #expect(answer.closedByPeer, "the node kept the stranger's connection open")
        // Nothing it said changed state: it is no member of the cluster.
        let after = try RawSocket.httpGet(port: httpPorts[0], path: "/cluster/members")
        #expect(!after.contains("stranger"), "\(after)")

        // The same bytes against a node run without a key (on loopback, as before) do get an
        // answer: the probe above would have seen a leak.
        var plain = DemoCommand.nodeLaunch(index: 0, cluster: ["127.0.0.1:\(ports[4])"], httpPort: ports[5]).arguments
        if let at = plain.firstIndex(of: "--name") { plain[at + 1] = "plain" }
        var keyless = environment
        keyless["COHORT_CLUSTER_KEYS"] = nil
        let open = try ChildProcess(exe, plain, environment: keyless, mergeStandardError: true)
        nodes.append(open)
        #expect(await open.wait(for: 90) { $0.contains { $0.hasPrefix("serving") } }, "\(open.output)")
        let leaked = try RawSocket.exchange(port: ports[4], send: Self.strangerBytes(port: ports[5]), readFor: 10, stopAfter: 16)
        #expect(Array(leaked.bytes.prefix(4)) == Array("COHT".utf8), "a keyless node answers the hello with its own record")
    }

    /// `hello` (kind 1) with a member record (docs/wire-format.md §4) and one data frame (kind 3)
    /// holding a JSON `ReplicaTransferRequest` (type 101) for the demo's store.
    static func strangerBytes(port: Int) -> [UInt8] {
        var record: [UInt8] = [1]
        record += bytes(UInt64(0x1234_5678_9ABC_DEF0)) + bytes(UInt64(0x0FED_CBA9_8765_4321))
        record += bytes(UInt64(1_700_000_000_000))
        record += bytes(UInt16(port))
        for text in ["127.0.0.1", "stranger", "default"] { record += string(text) }
        record += bytes(UInt16(0))
        var out = frame(kind: 1, codec: 0, guarantee: 0, body: record)
        let payload = Array(#"{"s":"demo","r":7}"#.utf8)
        let data = bytes(UInt64(1)) + bytes(UInt32(101)) + bytes(UInt32(0)) + payload
        out += frame(kind: 3, codec: 2, guarantee: 2, body: data)
        return out
    }

    static func frame(kind: UInt8, codec: UInt8, guarantee: UInt8, body: [UInt8]) -> [UInt8] {
        Array("COHT".utf8) + [1, kind, codec, guarantee] + bytes(UInt32(body.count)) + body
    }

    static func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    static func string(_ text: String) -> [UInt8] {
        bytes(UInt16(text.utf8.count)) + Array(text.utf8)
    }
}

/// A blocking loopback socket, bounded by a receive timeout.
enum RawSocket {
    struct Answer {
        var bytes: [UInt8]
        var closedByPeer: Bool
    }

    static func connect(port: Int, timeout seconds: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CohortError(.connectionFailed, "socket() failed") }
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw CohortError(.connectionFailed, "cannot connect to 127.0.0.1:\(port)")
        }
        return fd
    }

    /// Sends `bytes`, then reads until the peer closes, `stopAfter` bytes arrived, or nothing
    /// arrived for `readFor` seconds.
    static func exchange(port: Int, send bytes: [UInt8], readFor seconds: Int, stopAfter: Int = 1 << 20) throws -> Answer {
        let fd = try connect(port: port, timeout: seconds)
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while received.count < stopAfter {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { received += buffer[0..<n]; continue }
            if n == 0 { return Answer(bytes: received, closedByPeer: true) }
            // ECONNRESET: closed by the peer; EAGAIN: the timeout passed with the connection open.
            return Answer(bytes: received, closedByPeer: errno == ECONNRESET)
        }
        return Answer(bytes: received, closedByPeer: false)
    }

    static func httpGet(port: Int, path: String) throws -> String {
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        return String(decoding: try exchange(port: port, send: request, readFor: 10).bytes, as: UTF8.self)
    }
}
