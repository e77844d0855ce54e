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
            POST /counter (or GET /counter) increments a counter in your session and answers JSON \
            {"count": N, "node": NAME, "session": ID}; GET /counter/current reads it; GET / is a \
            live page. Admin endpoints: /cluster/members, /cluster/sessions, /cluster/status, \
            /alive, /ready, /metrics, and POST /cluster/leave on a loopback HTTP address or with \
            --allow-leave (the commands `cohort members|sessions|status|leave --admin HOST:PORT` \
            use them).
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
    @Option(help: "Write concern: all (every current member; the default), majority, or a number of replicas.") var writeConcern: String = "all"
    @Option(help: "Milliseconds a write waits for its concern (default: the send timeout).") var writeTimeout: Int?
    @Option(help: "Split-brain policy: allow, deny-writes (a minority side refuses writes), deny-all.") var whenSplit: String = "allow"
    @Option(help: "The number of nodes the cluster is configured with (for --when-split).") var clusterSize: Int?
    @Option(help: "Milliseconds a read waits for a session held on another node, per holder (backup manager).") var fetchTimeout: Int = 5000
    @Option(help: "Seconds between anti-entropy rounds (digest exchange with one member); 0 turns the periodic rounds off.") var antiEntropy: Int = 30
    @Option(help: ArgumentHelp("JSON configuration file (COHORT_* environment variables override it).", valueName: "FILE")) var config: String?
    @OptionGroup var pluginOptions: PluginOptions
    @OptionGroup var securityOptions: SecurityOptions
    @Option(help: "Host of --admin-port (default 127.0.0.1; POST /cluster/leave is served there only on a loopback host or with --allow-leave).") var adminHost: String = "127.0.0.1"
    @Option(help: ArgumentHelp("File holding a bearer token the admin endpoints require (or COHORT_ADMIN_TOKEN).", valueName: "FILE")) var adminTokenFile: String?
    @Flag(help: "Clients reach this node over TLS (a TLS-terminating proxy): session cookies get the Secure flag (or COHORT_BEHIND_TLS=true).") var behindTls = false
    @Flag(help: "Log debug information to standard error.") var verbose = false
    @Flag(help: "Accept POST /cluster/leave (`cohort leave`) on a non-loopback HTTP address: only where the port is not reachable by users.")
    var allowLeave = false
    @Option(help: ArgumentHelp("Also serve the admin routes, POST /cluster/leave included, on --admin-host:PORT (127.0.0.1 by default; for a Kubernetes preStop hook: cohort leave --admin 127.0.0.1:PORT).", valueName: "PORT"))
    var adminPort: Int?

    /// Whether `POST /cluster/leave` is mounted: always on a loopback HTTP address.
    var leaveAllowed: Bool {
        allowLeave || httpHost == "localhost" || httpHost == "::1" || httpHost.hasPrefix("127.")
    }

    func validate() throws {
        guard ClusterNode.ManagerKind(rawValue: manager) != nil else { throw ValidationError("--manager must be delta or backup, got '\(manager)'") }
        guard ["sync", "async"].contains(mode) else { throw ValidationError("--mode must be sync or async, got '\(mode)'") }
        guard (1...65535).contains(httpPort) else { throw ValidationError("--http-port must be 1…65535") }
        if let adminPort {
            guard (1...65535).contains(adminPort), adminPort != httpPort else { throw ValidationError("--admin-port must be 1…65535 and not --http-port") }
        }
        guard WriteConcern(name: writeConcern) != nil else { throw ValidationError("--write-concern must be all, majority or a number, got '\(writeConcern)'") }
        guard SplitBrainPolicy(name: whenSplit) != nil else { throw ValidationError("--when-split must be allow, deny-writes or deny-all, got '\(whenSplit)'") }
        if let clusterSize, clusterSize < 1 { throw ValidationError("--cluster-size must be at least 1") }
        if let writeTimeout, writeTimeout < 1 { throw ValidationError("--write-timeout must be at least 1 ms") }
        guard fetchTimeout >= 1 else { throw ValidationError("--fetch-timeout must be at least 1 ms") }
        guard antiEntropy >= 0 else { throw ValidationError("--anti-entropy must be 0 or more seconds") }
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
            // The route this node binds sessions to, so that other nodes can tell whether a
            // cookie's route is still in the cluster (ClusterSessionMiddleware).
            let boundRoute = route ?? name
            if !boundRoute.isEmpty { base.metadata["route"] = boundRoute }
            try securityOptions.apply(to: &base)
            let configuration = try ClusterConfiguration.load(file: config, base: base)
            let registry = PluginRegistry()
            try pluginOptions.load(into: registry)
            var sessions = SessionManagerConfiguration(name: "demo", mode: mode == "sync" ? .synchronous : .asynchronous)
            sessions.maxInactiveInterval = .seconds(1800)
            sessions.writeConcern = WriteConcern(name: writeConcern, timeout: writeTimeout.map { .milliseconds($0) })
            sessions.whenSplit = SplitBrainPolicy(name: whenSplit) ?? .allowReadsAndWrites
            sessions.clusterSize = clusterSize
            sessions.fetchTimeout = .milliseconds(fetchTimeout)
            sessions.antiEntropyInterval = antiEntropy > 0 ? .seconds(antiEntropy) : nil
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
        node.addAdminRoutes(to: router, prometheus: prometheus, allowLeave: leaveAllowed, bearerToken: adminToken)
        let sessionRoutes = router.group()
            .add(middleware: ClusterSessionMiddleware(manager: node.sessions, route: route ?? name, secureCookie: secureCookie, ready: { node.isReady }))
        SampleApp.addRoutes(to: sessionRoutes, node: node)
        var services: [any Service] = [node, ServeAnnouncer(node: node)]
        if let adminPort {
            // On loopback (the default host) only whoever can run a command in the pod (a
            // preStop hook) may make it leave; on another host only with --allow-leave.
            let adminRouter = Router(context: ClusterRequestContext.self)
            let adminIsLoopback = adminHost == "localhost" || adminHost == "::1" || adminHost.hasPrefix("127.")
            node.addAdminRoutes(to: adminRouter, prometheus: prometheus, allowLeave: adminIsLoopback || allowLeave, bearerToken: adminToken)
            services.append(Application(
                router: adminRouter,
                configuration: .init(address: .hostname(adminHost, port: adminPort), serverName: "cohort-\(name)-admin"),
                onServerRunning: { _ in Console.line("admin \(name) http://\(adminHost):\(adminPort)") },
                logger: Logger(label: "cohort.admin")
            ))
        }
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
