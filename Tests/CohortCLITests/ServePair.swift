import CohortTestKit
import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Two `cohort serve` processes on loopback that see each other and are ready (each printed
/// `ready NAME` and `member-added` the other).
final class ServePair: @unchecked Sendable {
    let exe: String
    let nodes: [ChildProcess]
    let httpPorts: [Int]
    let names: [String]

    init(exe: String, prefix: String) async throws {
        self.exe = exe
        let ports = try ChildProcess.freeLoopbackPorts(4)
        httpPorts = [ports[0], ports[1]]
        let cluster = ["127.0.0.1:\(ports[2])", "127.0.0.1:\(ports[3])"]
        names = ["\(prefix)1", "\(prefix)2"]
        var started: [ChildProcess] = []
        let environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("COHORT_") }
        for i in 0..<2 {
            started.append(try ChildProcess(exe, [
                "serve", "--name", names[i], "--http-port", "\(httpPorts[i])", "--listen", cluster[i],
                "--members", cluster[1 - i], "--grace", "5",
            ], environment: environment))
        }
        nodes = started
        for (i, node) in nodes.enumerated() {
            let seen = await node.wait(for: 90) { lines in
                lines.contains { $0.hasPrefix("ready \(self.names[i])") } && lines.contains { $0.hasPrefix("member-added \(self.names[1 - i])") }
            }
            if !seen {
                stop()
                throw TestFailure("\(names[i]) did not become ready and see its peer: \(node.output) \(node.standardError)")
            }
        }
    }

    var admin: [String] { httpPorts.map { "127.0.0.1:\($0)" } }

    /// Runs `cohort ARGS`.
    func cohort(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await ChildProcess.run(exe, arguments, timeout: 60)
    }

    /// GET on a node with a cookie jar of one cookie.
    static func get(_ port: Int, _ path: String, cookie: inout String?) async throws -> (status: Int, body: String) {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        configuration.timeoutIntervalForRequest = 30
        let session = URLSession(configuration: configuration)
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        if let cookie { request.setValue(cookie, forHTTPHeaderField: "Cookie") }
        let (data, response) = try await session.data(for: request)
        let http = response as! HTTPURLResponse
        if let set = http.value(forHTTPHeaderField: "Set-Cookie"), let pair = set.split(separator: ";").first { cookie = String(pair) }
        return (http.statusCode, String(decoding: data, as: UTF8.self))
    }

    func stop() {
        for node in nodes { node.signal(SIGKILL) }
    }

    deinit { stop() }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Parses a JSON object.
func jsonObject(_ text: String) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw TestFailure("not a JSON object: \(text)")
    }
    return object
}
