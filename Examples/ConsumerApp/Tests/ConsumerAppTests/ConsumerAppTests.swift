import AsyncHTTPClient
import Cohort
import CohortHummingbird
import ConsumerAppKit
import Hummingbird
import Logging
import ServiceLifecycle
import Testing

/// Two replicas of the app on loopback: a session written through one node's HTTP server is read
/// through the other's.
@Suite("Consumer app", .timeLimit(.minutes(2)))
struct ConsumerAppTests {
    /// A replica running in a task, with its HTTP port.
    struct Running {
        let replica: Replica
        let group: ServiceGroup
        let task: Task<Void, any Error>
        let httpPort: Int

        /// Stops the replica the way SIGTERM would: the HTTP server, then the node.
        func stop() async {
            await group.triggerGracefulShutdown()
            _ = await task.result
        }
    }

    private func start(_ name: String, members: [Endpoint]) async throws -> Running {
        var cluster = ClusterConfiguration(name: name, listen: Endpoint(host: "127.0.0.1", port: 0))
        cluster.members = members
        var logger = Logger(label: name)
        logger.logLevel = .warning
        let (ports, portInput) = AsyncStream.makeStream(of: Int.self)
        let replica = try Replica(cluster: cluster, http: .hostname("127.0.0.1", port: 0), logger: logger) { port in
            portInput.yield(port)
            portInput.finish()
        }
        let group = ServiceGroup(configuration: .init(services: [replica.application], logger: logger))
        let task = Task { try await group.run() }
        var port = 0
        for await bound in ports { port = bound }
        return Running(replica: replica, group: group, task: task, httpPort: port)
    }

    private func get(_ port: Int, cookie: String?) async throws -> (body: String, setCookie: String?) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/visits")
        if let cookie { request.headers.add(name: "cookie", value: cookie) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(20))
        let body = try await response.body.collect(upTo: 1 << 16)
        #expect(response.status == .ok, "GET /visits on port \(port): \(response.status)")
        return (String(buffer: body), response.headers.first(name: "set-cookie"))
    }

    @Test func aSessionWrittenThroughOneNodeIsReadThroughTheOther() async throws {
        let first = try await start("consumer1", members: [])
        let firstEndpoint = try await first.replica.node.channel.waitUntilRunning()
        let joined = first.replica.node.channel.membershipEvents()
        let second = try await start("consumer2", members: [firstEndpoint])
        // Both nodes see each other and finished their state transfer.
        for await event in joined {
            if case .added = event { break }
        }
        try await first.replica.node.sessions.waitUntilReady()
        try await second.replica.node.sessions.waitUntilReady()

        let one = try await get(first.httpPort, cookie: nil)
        #expect(one.body == "1")
        let cookie = try #require(one.setCookie?.split(separator: ";").first.map(String.init), "no session cookie from the first node")
        #expect(cookie.hasPrefix("SESSION_ID="))

        // The other node reads the session the first one wrote, and writes it on.
        let two = try await get(second.httpPort, cookie: cookie)
        #expect(two.body == "2", "the second node did not see the session written through the first")
        let three = try await get(first.httpPort, cookie: cookie)
        #expect(three.body == "3", "the first node did not see the write made through the second")

        await second.stop()
        await first.stop()
    }
}
