import ArgumentParser
import Cohort
import CohortHummingbird
import CohortSessions
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run one node of the sample session app: an HTTP server whose sessions are replicated across the cluster.",
        discussion: """
            GET /counter increments a counter in your session and answers JSON \
            {"count": N, "node": NAME, "session": ID}; GET / is a live page. Admin endpoints: \
            /cluster/members, /cluster/sessions, /alive, /ready, /metrics.
            """
    )

    @Option(help: "The node's name.") var name: String = "node1"
    @Option(help: "HTTP port (on 127.0.0.1 unless --http-host).") var httpPort: Int = 8081
    @Option(help: "HTTP host.") var httpHost: String = "127.0.0.1"
    @Option(help: ArgumentHelp("Cluster address to listen on.", valueName: "HOST:PORT")) var listen: String = "127.0.0.1:4001"
    @Option(help: ArgumentHelp("Comma-separated cluster addresses of the other members.", valueName: "HOST:PORT,...")) var members: String = ""
    @Option(help: "Codec: binary or json.") var codec: String = "binary"
    @Option(help: "Session manager: delta (every node holds every session) or backup (primary + backup).") var manager: String = "delta"
    @Option(help: "Replication: sync (the response waits for the replicas; the default) or async.") var mode: String = "sync"
    @Option(help: "Route for sticky balancers (appended to the session cookie); empty disables route binding.") var route: String?
    @Option(help: "Seconds a graceful stop may take (hand-off, leave).") var grace: Int = 10
    @Option(help: ArgumentHelp("JSON configuration file (COHORT_* environment variables override it).", valueName: "FILE")) var config: String?
    @OptionGroup var pluginOptions: PluginOptions
    @OptionGroup var securityOptions: SecurityOptions
    @Option(help: "Serve /cluster/members, /cluster/sessions and /metrics on this port of their own (not on --http-port); /alive and /ready stay on both.") var adminPort: Int?
    @Option(help: "Host of --admin-port.") var adminHost: String = "127.0.0.1"
    @Option(help: ArgumentHelp("File holding a bearer token the admin endpoints require (or COHORT_ADMIN_TOKEN).", valueName: "FILE")) var adminTokenFile: String?
    @Flag(help: "Clients reach this node over TLS (a TLS-terminating proxy): session cookies get the Secure flag (or COHORT_BEHIND_TLS=true).") var behindTls = false
    @Flag(help: "Log debug information to standard error.") var verbose = false

    func validate() throws {
        guard ClusterNode.ManagerKind(rawValue: manager) != nil else { throw ValidationError("--manager must be delta or backup, got '\(manager)'") }
        guard ["sync", "async"].contains(mode) else { throw ValidationError("--mode must be sync or async, got '\(mode)'") }
        guard (1...65535).contains(httpPort) else { throw ValidationError("--http-port must be 1…65535") }
        do { _ = try Endpoint(parsing: listen) } catch let error as CohortError { throw ValidationError("--listen: \(error.message)") }
        for m in members.split(separator: ",") {
            do { _ = try Endpoint(parsing: String(m)) } catch let error as CohortError { throw ValidationError("--members: \(error.message)") }
        }
    }

    func run() async throws {
        let level: Logger.Level = verbose ? .debug : .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let prometheus = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: prometheus))

        let node: ClusterNode
        do {
            var base = ClusterConfiguration(name: name)
            base.listen = try Endpoint(parsing: listen)
            base.members = try members.split(separator: ",").map { try Endpoint(parsing: String($0)) }
            base.codec = codec
            base.metadata["http"] = "\(httpHost):\(httpPort)"
            try securityOptions.apply(to: &base)
            let configuration = try ClusterConfiguration.load(file: config, base: base)
            let registry = PluginRegistry()
            try pluginOptions.load(into: registry)
            var sessions = SessionManagerConfiguration(name: "demo", mode: mode == "sync" ? .synchronous : .asynchronous)
            sessions.maxInactiveInterval = .seconds(1800)
            node = try ClusterNode(
                configuration: configuration,
                manager: ClusterNode.ManagerKind(rawValue: manager) ?? .delta,
                sessions: sessions,
                gracePeriod: .seconds(grace),
                registry: registry
            )
        } catch let error as CohortError {
            Console.error("error: \(error.message)")
            throw ExitCode(2)
        }

        let environment = ProcessInfo.processInfo.environment
        var adminToken = environment["COHORT_ADMIN_TOKEN"]
        if let adminTokenFile {
            guard let data = FileManager.default.contents(atPath: adminTokenFile) else {
                Console.error("error: cannot read the admin token file '\(adminTokenFile)'; check the path and permissions")
                throw ExitCode(2)
            }
            adminToken = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let secureCookie = behindTls || environment["COHORT_BEHIND_TLS"].flatMap { Bool(settingText: $0) } == true
        let router = Router(context: ClusterRequestContext.self)
        node.addHealthRoutes(to: router)
        var services: [any Service] = [node]
        if let adminPort {
            // The admin endpoints on an address of their own (for example loopback only, or a
            // port only the monitoring network reaches).
            let adminRouter = Router(context: ClusterRequestContext.self)
            node.addHealthRoutes(to: adminRouter)
            node.addClusterRoutes(to: adminRouter, prometheus: prometheus, bearerToken: adminToken)
            services.append(Application(router: adminRouter, configuration: .init(address: .hostname(adminHost, port: adminPort), serverName: "cohort-\(name)-admin")))
        } else {
            node.addClusterRoutes(to: router, prometheus: prometheus, bearerToken: adminToken)
        }
        let sessionRoutes = router.group()
            .add(middleware: ClusterSessionMiddleware(manager: node.sessions, route: route ?? name, secureCookie: secureCookie, ready: { node.isReady }))
        SampleApp.addRoutes(to: sessionRoutes, node: node)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(httpHost, port: httpPort), serverName: "cohort-\(name)"),
            services: services,
            onServerRunning: { _ in
                Console.line("serving \(name) http://\(httpHost):\(httpPort) cluster \(node.channel.localMember.endpoint) pid \(ProcessInfo.processInfo.processIdentifier)")
            },
            logger: {
                var logger = Logger(label: "cohort.http")
                logger.logLevel = level
                return logger
            }()
        )
        do {
            try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        } catch let error as CohortError {
            Console.error("error: \(error.message)")
            throw ExitCode(1)
        }
        Console.line("stopped \(name)")
    }
}
