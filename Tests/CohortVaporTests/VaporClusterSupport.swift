#if Vapor
import Cohort
import CohortCodecBinary
import CohortDiscoveryStatic
import CohortSessions
import CohortTestKit
import CohortVapor
import Foundation
import Logging
import NIOCore
import NIOConcurrencyHelpers
import Vapor
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

/// A user for Vapor's session authentication (`req.session.authenticate`).
struct User: SessionAuthenticatable {
    var name: String
    var sessionID: String { name }
}

/// N in-process nodes, each a ClusterNode run by a Vapor application (``ClusterNodeLifecycle``)
/// with ``CohortSessionDriver`` behind Vapor's `SessionsMiddleware`, serving counter routes on
/// 127.0.0.1 (ports picked by the kernel). The nodes talk over an in-memory network; the session
/// managers share one ``ManualClock`` (settle times, expiry and the grace period move only when a
/// test advances it); the HTTP side is real sockets and Vapor's real server.
final class VaporCluster: @unchecked Sendable {
    struct Node {
        var node: ClusterNode
        var app: Application
        var port: Int
        var counter: CountingInterceptor
    }
    private let lock = NSLock()
    private var _nodes: [Node] = []
    private var apps: [Application] = []
    var nodes: [Node] { lock.withLock { _nodes } }
    let network = InMemoryNetwork()
    let clock = ManualClock()
    var driverConfiguration = CohortSessionDriver.Configuration()

    static func start(count: Int, driver: CohortSessionDriver.Configuration = .init()) async throws -> VaporCluster {
        let cluster = VaporCluster()
        cluster.driverConfiguration = driver
        do {
            for i in 0..<count { try await cluster.add(index: i) }
            for node in cluster.nodes {
                try await withDeadline(.seconds(60), "\(node.node.channel.localMember.name) to see the others") {
                    try await node.node.channel.waitForMembers(cluster.nodes.count - 1)
                }
            }
        } catch {
            await cluster.stop()
            throw error
        }
        return cluster
    }

    /// Builds a node's application (not booted).
    func makeApplication(index i: Int, settle: Duration = .zero, waitUntilReady: Bool = true) async throws -> (Application, ClusterNode, CountingInterceptor) {
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

        let app = try await Application.make(.testing, logger: quiet)
        lock.withLock { apps.append(app) }
        app.http.server.configuration.hostname = "127.0.0.1"
        app.http.server.configuration.port = 0
        app.lifecycle.use(ClusterNodeLifecycle(node: node, waitUntilReady: waitUntilReady))
        let driver = driverConfiguration
        app.sessions.use { _ in CohortSessionDriver(node: node, configuration: driver) }
        node.addAdminRoutes(to: app)
        let web = app.grouped(ClusterReadinessMiddleware(node: node), app.sessions.middleware)
        web.get("counter") { request async throws -> String in
            let count = (request.session.data["count"].flatMap(Int.init) ?? 0) + 1
            request.session.data["count"] = String(count)
            return "\(count)"
        }
        web.get("peek") { request async throws -> String in
            request.session.data["count"] ?? "0"
        }
        web.get("user") { request async throws -> String in
            request.session.data["_UserSession"] ?? "-"
        }
        web.get("logout") { request async throws -> HTTPStatus in
            request.session.destroy()
            return .ok
        }
        web.get("login") { request async throws -> String in
            request.session.authenticate(User(name: try request.query.get(String.self, at: "user")))
            return "ok"
        }
        web.get("rotate") { request async throws -> String in
            request.rotateSessionID()
            return request.session.data["count"] ?? "0"
        }
        return (app, node, counter)
    }

    /// Boots an application (starting its node) and starts its HTTP server.
    func serve(_ app: Application, _ node: ClusterNode, _ counter: CountingInterceptor) async throws -> Node {
        try await withDeadline(.seconds(60), "\(node.channel.localMember.name) to boot") { try await app.asyncBoot() }
        try await app.server.start(address: .hostname("127.0.0.1", port: 0))
        guard let port = app.http.server.shared.localAddress?.port else {
            throw CohortError(.notRunning, "the HTTP server of \(node.channel.localMember.name) has no port")
        }
        let entry = Node(node: node, app: app, port: port, counter: counter)
        lock.withLock { _nodes.append(entry) }
        return entry
    }

    @discardableResult
    func add(index i: Int, settle: Duration = .zero, waitUntilReady: Bool = true) async throws -> Node {
        let (app, node, counter) = try await makeApplication(index: i, settle: settle, waitUntilReady: waitUntilReady)
        return try await serve(app, node, counter)
    }

    subscript(i: Int) -> Node { nodes[i] }

    /// Waits until a node's session state transfer is done (bounded: a hang fails the test).
    func waitUntilReady(_ node: Node) async throws {
        try await withDeadline(.seconds(60), "\(node.node.channel.localMember.name) to be ready") { try await node.node.waitUntilReady() }
    }

    /// The node dies for the cluster (its transport stops answering); its HTTP server is no
    /// longer used by the tests and is stopped at the end.
    func kill(_ i: Int) {
        network.kill(nodes[i].node.channel.localMember.endpoint)
    }

    /// Shuts one node's application down (HTTP server, then the node's hand-off and leave).
    func shutdown(_ i: Int) async throws {
        let app = nodes[i].app
        let mine = lock.withLock { () -> Bool in
            guard let index = apps.firstIndex(where: { $0 === app }) else { return false }
            apps.remove(at: index)
            return true
        }
        if mine { try await app.asyncShutdown() }
    }

    /// Shuts every application down (HTTP server, then the node's hand-off and leave).
    func stop() async {
        for app in lock.withLock({ apps }) { try? await app.asyncShutdown() }
        lock.withLock { apps.removeAll() }
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

    func get(_ port: Int, _ path: String, method: String = "GET") async throws -> Answer {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        if let cookie { request.setValue(cookie, forHTTPHeaderField: "Cookie") }
        let (data, response) = try await session.data(for: request)
        let http = response as! HTTPURLResponse
        let setCookie = http.value(forHTTPHeaderField: "Set-Cookie")
        if let setCookie, let pair = setCookie.split(separator: ";").first {
            cookie = String(pair)
        }
        return Answer(status: http.statusCode, body: String(decoding: data, as: UTF8.self), setCookie: setCookie, retryAfter: http.value(forHTTPHeaderField: "Retry-After"))
    }

    /// The session id of the cookie.
    var sessionID: String? {
        cookie.flatMap { $0.split(separator: "=", maxSplits: 1).last.map(String.init) }
    }
}
#endif
