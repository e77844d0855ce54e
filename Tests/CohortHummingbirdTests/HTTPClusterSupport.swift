import Cohort
import CohortCodecBinary
import CohortDiscoveryStatic
import CohortHummingbird
import CohortSessions
import CohortTestKit
import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Counts replication traffic leaving a node (every message through the chain).
final class CountingInterceptor: Interceptor, Sendable {
    let sent = NIOLockedValueBox(0)
    var name: String { "counting" }
    func send(_ message: OutboundMessage, to members: [Member], next: InterceptorNext) async -> SendReport {
        sent.withLockedValue { $0 += 1 }
        return await next.send(message, to: members)
    }
    var count: Int { sent.withLockedValue { $0 } }
}

/// N in-process nodes, each a ClusterNode + Hummingbird app on 127.0.0.1 (ports picked by the
/// kernel), running the counter routes of the demo. The nodes talk over an in-memory network; the
/// session managers share one ``ManualClock`` (settle times, expiry and the grace period move
/// only when a test advances it); the HTTP side is real sockets.
final class HTTPCluster: @unchecked Sendable {
    struct Node {
        var node: ClusterNode
        var port: Int
        var counter: CountingInterceptor
        var task: Task<Void, any Error>
        var group: ServiceGroup
    }
    private(set) var nodes: [Node] = []
    let network = InMemoryNetwork()
    let clock = ManualClock()

    static func start(count: Int, route: Bool = true, adminToken: String? = nil, secureCookie: Bool = false) async throws -> HTTPCluster {
        let cluster = HTTPCluster()
        for i in 0..<count {
            let node = try await cluster.add(index: i, route: route, adminToken: adminToken, secureCookie: secureCookie)
            try await cluster.waitUntilReady(node)
        }
        for node in cluster.nodes {
            try await node.node.channel.waitForMembers(cluster.nodes.count - 1)
        }
        return cluster
    }

    /// Waits until a node's session state transfer is done (bounded: a hang fails the test).
    func waitUntilReady(_ node: Node) async throws {
        try await withDeadline(.seconds(60), "\(node.node.channel.localMember.name) to be ready") { try await node.node.waitUntilReady() }
    }

    @discardableResult
    func add(index i: Int, settle: Duration = .zero, route: Bool = true, adminToken: String? = nil, secureCookie: Bool = false) async throws -> Node {
        let name = "node\(i + 1)"
        let configuration = ClusterConfiguration(name: name, listen: Endpoint(host: "127.0.0.1", port: 0), members: nodes.map { $0.node.channel.localMember.endpoint })
        var quiet = Logger(label: "test")
        quiet.logLevel = .error
        let counter = CountingInterceptor()
        let channel = GroupChannel(
            configuration: configuration,
            transport: network.makeTransport(),
            codec: BinaryCodec(),
            discovery: StaticDiscovery(endpoints: configuration.members, interval: .milliseconds(100)),
            logger: quiet,
            interceptors: [counter]
        )
        var sessions = SessionManagerConfiguration(name: "web")
        sessions.clock = clock
        sessions.settleTime = settle
        sessions.logger = quiet
        let manager = try DeltaSessionManager(channel: channel, configuration: sessions)
        let node = ClusterNode(channel: channel, sessions: manager, gracePeriod: .seconds(5))
        let router = Router(context: ClusterRequestContext.self)
        node.addAdminRoutes(to: router, bearerToken: adminToken)
        let routes = router.group().add(middleware: ClusterSessionMiddleware(manager: manager, route: route ? name : nil, secureCookie: secureCookie, ready: { node.isReady }))
        routes.get("/counter") { _, context -> Response in
            let count = try context.clusterSession.update(manager) { session in
                let next = (try session.attribute("count", as: Int.self) ?? 0) + 1
                try session.setAttribute("count", next)
                return next
            }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "\(count)")))
        }
        routes.get("/peek") { _, context -> Response in
            let count = try context.clusterSession.session?.attribute("count", as: Int.self) ?? 0
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "\(count)")))
        }
        // Logs a user in: the principal changes, so the middleware gives the session a new id.
        routes.get("/login") { request, context -> Response in
            let user = request.uri.queryParameters["user"].map(String.init) ?? "someone"
            context.clusterSession.update(manager) { $0.principal = user }
            return Response(status: .ok)
        }
        // Rotates the id explicitly.
        routes.get("/rotate") { _, context -> Response in
            context.clusterSession.rotateID(manager)
            return Response(status: .ok)
        }
        routes.get("/logout") { _, context -> Response in
            if var session = context.clusterSession.session {
                session.invalidate()
                context.clusterSession.session = session
            }
            return Response(status: .ok)
        }
        let (ports, portInput) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            services: [node],
            onServerRunning: { channel in
                portInput.yield(channel.localAddress?.port ?? 0)
                portInput.finish()
            },
            logger: quiet
        )
        // Stopped through graceful shutdown, never by cancelling the server task (cancellation
        // can leave a just-accepted connection's writer unfinished inside NIO).
        let group = ServiceGroup(services: [app], gracefulShutdownSignals: [], logger: quiet)
        let task = Task { try await group.run() }
        let port: Int
        do {
            port = try await withDeadline(.seconds(60), "the HTTP server of \(name) to start") {
                for await port in ports where port != 0 { return port }
                throw CohortError(.notRunning, "the HTTP server of \(name) stopped before it listened")
            }
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        let entry = Node(node: node, port: port, counter: counter, task: task, group: group)
        nodes.append(entry)
        return entry
    }

    subscript(i: Int) -> Node { nodes[i] }

    /// The node dies for the cluster (its transport stops answering); its HTTP server is no
    /// longer used by the tests and is stopped gracefully at the end.
    func kill(_ i: Int) {
        network.kill(nodes[i].node.channel.localMember.endpoint)
    }

    func stop() async {
        for node in nodes { await node.group.triggerGracefulShutdown() }
        for node in nodes { _ = try? await node.task.value }
    }
}

/// A client with one cookie jar.
final class Browser: @unchecked Sendable {
    private let lock = NSLock()
    var cookie: String? {
        get { lock.withLock { _cookie } }
        set { lock.withLock { _cookie = newValue } }
    }
    private var _cookie: String?
    private let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        configuration.timeoutIntervalForRequest = 60
        return URLSession(configuration: configuration)
    }()

    struct Answer {
        var status: Int
        var body: String
        var setCookie: String?
        var retryAfter: String?
    }

    func get(_ port: Int, _ path: String, headers: [String: String] = [:]) async throws -> Answer {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let cookie { request.setValue(cookie, forHTTPHeaderField: "Cookie") }
        let (data, response) = try await session.data(for: request)
        let http = response as! HTTPURLResponse
        let setCookie = http.value(forHTTPHeaderField: "Set-Cookie")
        if let setCookie, let pair = setCookie.split(separator: ";").first {
            cookie = String(pair)
        }
        return Answer(status: http.statusCode, body: String(decoding: data, as: UTF8.self), setCookie: setCookie, retryAfter: http.value(forHTTPHeaderField: "Retry-After"))
    }
}
