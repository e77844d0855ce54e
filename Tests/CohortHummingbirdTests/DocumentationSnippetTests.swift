import Cohort
import CohortCodecBinary
import CohortDiscoveryStatic
import CohortHummingbird
import CohortSessions
import CohortTestKit
import Foundation
import Hummingbird
import HummingbirdAuth
import Logging
import ServiceLifecycle
import Testing

// The code blocks of the documents, verbatim: each region between `snippet: NAME begin` and
// `snippet: NAME end` is the block that follows the comment naming this file in the document.
// `snippetsAreTheDocumentsCode` fails when the two differ; the other tests compile and run them.

// snippet: README.md begin
import Cohort
import ServiceLifecycle   // ServiceGroup; list swift-service-lifecycle in your Package.swift
import UnixSignals        // .sigterm, from the same package

struct Greeting: ClusterMessage {
    static let messageType = MessageType(2001)   // stable id on the wire; ≥ 1024 for applications
    var text: String
}

/// One node: greets the others once it sees them all, and leaves once each has greeted it.
func runNode(name: String, listen: String, members: [String]) async throws {
    let channel = try GroupChannel(configuration: ClusterConfiguration(
        name: name,
        listen: try Endpoint(parsing: listen),
        members: try members.map { try Endpoint(parsing: $0) }
    ))
    let greetings = try channel.messages(of: Greeting.self)
    let events = channel.membershipEvents()
    let group = ServiceGroup(services: [channel], gracefulShutdownSignals: [.sigterm], logger: channel.logger)
    async let running: Void = group.run()

    var seen = Set<MemberID>()
    for await event in events {
        print(event)                      // member-added node2 …
        if case .added(let member) = event { seen.insert(member.id) }
        if seen.count == members.count { break }
    }
    let report = try await channel.send(Greeting(text: "hello from \(name)"), options: .processed)
    print(report)                         // "sent to 2/2 members" — or which member failed and why
    var heard = 0
    for await (greeting, sender) in greetings {
        print("\(sender.name) says \(greeting.text)")
        heard += 1
        if heard == members.count { break }
    }
    await group.triggerGracefulShutdown()
    try await running
}

// node1 of three; node2 and node3 run the same with their own address first.
// try await runNode(name: "node1", listen: "127.0.0.1:4001", members: ["127.0.0.1:4002", "127.0.0.1:4003"])
// snippet: README.md end

// snippet: docs/hummingbird.md begin
import CohortHummingbird
import Hummingbird
import HummingbirdAuth

struct Visits: Codable, Sendable {                                  // what the app keeps in a session
    var count: Int
}
typealias AppContext = BasicSessionRequestContext<Visits, String>   // hummingbird-auth's context

func makeRouter(node: ClusterNode) -> Router<AppContext> {
    let router = Router(context: AppContext.self)
    router.add(middleware: SessionMiddleware(storage: ClusterPersistDriver(manager: node.sessions)))
    router.get("/visits") { _, context -> String in
        var visits = context.sessions.session ?? Visits(count: 0)
        visits.count += 1
        if context.sessions.session == nil {
            context.sessions.createSession(visits)
        } else {
            _ = context.sessions.updateSession(visits)
        }
        return "\(visits.count)"
    }
    return router
}
// snippet: docs/hummingbird.md end

// snippet: Sources/CohortHummingbird/Docs.docc/GettingStarted.md begin
import CohortHummingbird
import Hummingbird

func makeVisitsRouter(node: ClusterNode) -> Router<ClusterRequestContext> {
    let router = Router(context: ClusterRequestContext.self)
    node.addAdminRoutes(to: router)                        // /cluster/*, /alive, /ready
    let web = router.group()
        .add(middleware: ClusterSessionMiddleware(manager: node.sessions, ready: { node.isReady }))
    web.get("/visits") { _, context -> String in
        let visits = try context.clusterSession.update(node.sessions) { session in
            let visits = (try session.attribute("visits", as: Int.self) ?? 0) + 1
            try session.setAttribute("visits", visits)
            return visits
        }
        return "\(visits)"                                 // replicated before this answer leaves
    }
    return router
}
// snippet: Sources/CohortHummingbird/Docs.docc/GettingStarted.md end

@Suite("Code in the documents", .timeLimit(.minutes(2)))
struct DocumentationSnippetTests {
    /// The package's root, from this file's place in it.
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The Swift block that follows the comment naming this test file in a document.
    static func documentBlock(_ document: String) throws -> [Substring] {
        let text = try String(contentsOf: packageRoot.appendingPathComponent(document), encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let mention = lines.firstIndex(where: { $0.contains("DocumentationSnippetTests.swift") }),
            let start = lines[mention...].firstIndex(where: { $0 == "```swift" }),
            let end = lines[(start + 1)...].firstIndex(where: { $0 == "```" })
        else { throw CohortError(.notFound, "\(document) has no Swift block after a comment naming DocumentationSnippetTests.swift") }
        return Array(lines[(start + 1)..<end])
    }

    /// This file's region of a snippet.
    static func testRegion(_ document: String) throws -> [Substring] {
        let text = try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let begin = lines.firstIndex(of: "// snippet: \(document) begin"[...]),
            let end = lines.firstIndex(of: "// snippet: \(document) end"[...])
        else { throw CohortError(.notFound, "no snippet region for \(document) in DocumentationSnippetTests.swift") }
        return Array(lines[(begin + 1)..<end])
    }

    @Test(arguments: ["README.md", "docs/hummingbird.md", "Sources/CohortHummingbird/Docs.docc/GettingStarted.md"])
    func snippetsAreTheDocumentsCode(_ document: String) throws {
        let inDocument = try Self.documentBlock(document)
        let inTest = try Self.testRegion(document)
        #expect(!inDocument.isEmpty)
        for (line, (documented, tested)) in zip(inDocument, inTest).enumerated() where documented != tested {
            Issue.record("\(document), line \(line + 1) of the block differs:\n  document: \(documented)\n  test:     \(tested)")
            return
        }
        #expect(inDocument.count == inTest.count, "\(document): \(inDocument.count) lines in the document, \(inTest.count) in the test")
    }

    /// The quick start, three times on loopback: every node sees the others, greets them, hears
    /// their greetings and leaves.
    @Test func readmeQuickStartRunsAsThreeNodes() async throws {
        let addresses = try ChildProcess.freeLoopbackPorts(3).map { "127.0.0.1:\($0)" }
        try await withDeadline(.seconds(90), "three quick-start nodes to greet each other and leave") {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (i, address) in addresses.enumerated() {
                    group.addTask { try await runNode(name: "node\(i + 1)", listen: address, members: addresses.filter { $0 != address }) }
                }
                try await group.waitForAll()
            }
        }
    }

    /// The DocC tutorial's app on two nodes: a session built on one continues on the other.
    @Test func theDocCTutorialAppContinuesTheSessionOnTheOtherNode() async throws {
        let network = InMemoryNetwork()
        let clock = ManualClock()
        var quiet = Logger(label: "test")
        quiet.logLevel = .error
        var ports: [Int] = []
        var groups: [(group: ServiceGroup, task: Task<Void, any Error>)] = []
        var endpoints: [Endpoint] = []
        do {
            for i in 0..<2 {
                let configuration = ClusterConfiguration(name: "visits\(i + 1)", listen: Endpoint(host: "127.0.0.1", port: 0), members: endpoints)
                let channel = GroupChannel(
                    configuration: configuration, transport: network.makeTransport(), codec: BinaryCodec(),
                    discovery: StaticDiscovery(endpoints: endpoints, interval: .milliseconds(100)), logger: quiet
                )
                var sessions = SessionManagerConfiguration(name: "web")
                sessions.clock = clock
                sessions.settleTime = .zero
                sessions.logger = quiet
                let node = ClusterNode(channel: channel, sessions: try DeltaSessionManager(channel: channel, configuration: sessions))
                let (listening, listened) = AsyncStream.makeStream(of: Int.self)
                let app = Application(
                    router: makeVisitsRouter(node: node),
                    configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                    services: [node],
                    onServerRunning: { channel in
                        listened.yield(channel.localAddress?.port ?? 0)
                        listened.finish()
                    },
                    logger: quiet
                )
                let group = ServiceGroup(services: [app], gracefulShutdownSignals: [], logger: quiet)
                groups.append((group, Task { try await group.run() }))
                ports.append(try await withDeadline(.seconds(60), "visits\(i + 1)'s HTTP server") {
                    for await port in listening where port != 0 { return port }
                    throw CohortError(.notRunning, "visits\(i + 1)'s HTTP server stopped before it listened")
                })
                try await withDeadline(.seconds(60), "visits\(i + 1) to be ready") { try await node.waitUntilReady() }
                endpoints.append(try await channel.waitUntilRunning())
                try await channel.waitForMembers(i)
            }
            let browser = Browser()
            #expect(try await browser.get(ports[0], "/visits").body == "1")
            #expect(try await browser.get(ports[1], "/visits").body == "2", "the session continues on the other node")
            #expect(try await Browser().get(ports[1], "/cluster/status").body.contains("\"state\":\"serving\""))
        } catch {
            for entry in groups { await entry.group.triggerGracefulShutdown() }
            throw error
        }
        for entry in groups { await entry.group.triggerGracefulShutdown() }
        for entry in groups { _ = try? await entry.task.value }
    }

    /// hummingbird-auth's session middleware over the cluster driver: a session built through
    /// one node's HTTP server continues on the other's.
    @Test func hummingbirdAuthSessionsContinueOnTheOtherNode() async throws {
        let network = InMemoryNetwork()
        let clock = ManualClock()
        var quiet = Logger(label: "test")
        quiet.logLevel = .error
        var servers: [(group: ServiceGroup, task: Task<Void, any Error>, port: Int)] = []
        var endpoints: [Endpoint] = []
        do {
            for i in 0..<2 {
                let configuration = ClusterConfiguration(name: "web\(i + 1)", listen: Endpoint(host: "127.0.0.1", port: 0), members: endpoints)
                let channel = GroupChannel(
                    configuration: configuration, transport: network.makeTransport(), codec: BinaryCodec(),
                    discovery: StaticDiscovery(endpoints: endpoints, interval: .milliseconds(100)), logger: quiet
                )
                var sessions = SessionManagerConfiguration(name: "web")
                sessions.clock = clock
                sessions.settleTime = .zero
                sessions.logger = quiet
                let node = ClusterNode(channel: channel, sessions: try DeltaSessionManager(channel: channel, configuration: sessions))
                let (ports, portInput) = AsyncStream.makeStream(of: Int.self)
                let app = Application(
                    router: makeRouter(node: node),
                    configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                    services: [node],
                    onServerRunning: { channel in
                        portInput.yield(channel.localAddress?.port ?? 0)
                        portInput.finish()
                    },
                    logger: quiet
                )
                let group = ServiceGroup(services: [app], gracefulShutdownSignals: [], logger: quiet)
                let task = Task { try await group.run() }
                let port = try await withDeadline(.seconds(60), "web\(i + 1)'s HTTP server") {
                    for await port in ports where port != 0 { return port }
                    throw CohortError(.notRunning, "web\(i + 1)'s HTTP server stopped before it listened")
                }
                servers.append((group, task, port))
                try await withDeadline(.seconds(60), "web\(i + 1) to be ready") { try await node.waitUntilReady() }
                endpoints.append(channel.localMember.endpoint)
                try await channel.waitForMembers(i)
            }
            let browser = Browser()
            #expect(try await browser.get(servers[0].port, "/visits").body == "1")
            #expect(try await browser.get(servers[0].port, "/visits").body == "2")
            #expect(try await browser.get(servers[1].port, "/visits").body == "3", "the session continues on the other node")
        } catch {
            for server in servers { await server.group.triggerGracefulShutdown() }
            throw error
        }
        for server in servers { await server.group.triggerGracefulShutdown() }
        for server in servers { _ = try? await server.task.value }
    }
}
