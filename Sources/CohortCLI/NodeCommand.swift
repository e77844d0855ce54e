import ArgumentParser
import Cohort
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run one cluster node until SIGINT/SIGTERM.",
        discussion: """
            Prints one line per membership event (member-added NAME HOST:PORT, member-suspected …, \
            member-removed …, member-left …) and one line per text message received \
            (received from NAME: TEXT). Each line read on standard input is sent to all members \
            as a text message, waiting until processed, and the outcome is printed \
            (sent to 2/2 members). With minimumMembers (COHORT_MINIMUM_MEMBERS) above 1 it also prints \
            quorum-lost N/M when the node sees fewer members than that (at start too) and \
            quorum-regained N/M when it sees enough again.
            """
    )

    @Option(help: "The node's name.") var name: String?
    @Option(help: ArgumentHelp("Address to listen on.", valueName: "HOST:PORT")) var listen: String?
    @Option(help: ArgumentHelp("Comma-separated addresses of other members (static discovery).", valueName: "HOST:PORT,...")) var members: String?
    @Option(help: "Discovery plugin id (static, or a loaded plugin's).") var discovery: String?
    @Option(help: "Transport plugin id (tcp, or a loaded plugin's).") var transport: String?
    @Option(help: "Codec for sending: binary or json (or a loaded plugin's).") var codec: String?
    @Option(help: "Cluster domain.") var domain: String?
    @Option(name: .customLong("discovery-setting"), help: ArgumentHelp("A discovery plugin setting (repeatable).", valueName: "KEY=VALUE")) var discoverySettings: [String] = []
    @Option(help: ArgumentHelp("JSON configuration file (environment variables COHORT_* override it).", valueName: "FILE")) var config: String?
    @Option(help: ArgumentHelp("Send guarantee for lines read from standard input.", valueName: "async|receipt|processed")) var guarantee: String = "processed"
    @OptionGroup var pluginOptions: PluginOptions
    @OptionGroup var securityOptions: SecurityOptions
    @Flag(help: "Log debug information to standard error.") var verbose = false

    func validate() throws {
        if let listen { _ = try parse(listen, "--listen") }
        if let members { for m in members.split(separator: ",") { _ = try parse(String(m), "--members") } }
        if DeliveryGuarantee(name: guarantee) == nil {
            throw ValidationError("unknown --guarantee '\(guarantee)'; use async, receipt or processed")
        }
        for setting in discoverySettings where !setting.contains("=") {
            throw ValidationError("--discovery-setting '\(setting)' must be KEY=VALUE")
        }
    }

    private func parse(_ text: String, _ flag: String) throws -> Endpoint {
        do { return try Endpoint(parsing: text) } catch let error as CohortError {
            throw ValidationError("\(flag): \(error.message)")
        }
    }

    func makeConfiguration() throws -> ClusterConfiguration {
        var base = ClusterConfiguration()
        base.name = "node-\(ProcessInfo.processInfo.processIdentifier)"
        try securityOptions.apply(to: &base)
        var configuration = try ClusterConfiguration.load(file: config, base: base)
        if let name { configuration.name = name }
        if let listen { configuration.listen = try parse(listen, "--listen") }
        if let members { configuration.members = try members.split(separator: ",").map { try parse(String($0), "--members") } }
        if let discovery { configuration.discovery = discovery }
        if let transport { configuration.transport = transport }
        if let codec { configuration.codec = codec }
        if let domain { configuration.domain = domain }
        for setting in discoverySettings {
            let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
            configuration.discoverySettings[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        configuration.plugins += pluginOptions.plugins
        try configuration.validate()
        return configuration
    }

    func run() async throws {
        let level: Logger.Level = verbose ? .debug : .error
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let channel: GroupChannel
        do {
            let configuration = try makeConfiguration()
            let registry = PluginRegistry()
            try pluginOptions.load(into: registry)
            // Libraries named by the configuration file or COHORT_PLUGINS (the --plugin ones are loaded above).
            for plugin in configuration.plugins where !pluginOptions.plugins.contains(plugin) {
                try PluginLoader.load(plugin, into: registry)
            }
            var plain = configuration
            plain.plugins = []
            channel = try GroupChannel(configuration: plain, registry: registry)
        } catch let error as CohortError {
            Console.error("error: \(error.message)")
            throw ExitCode(2)
        }
        let sendGuarantee = DeliveryGuarantee(name: guarantee) ?? .processed

        try channel.onMessage(TextMessage.self) { message, sender in
            Console.line("received from \(sender.name): \(message.text)")
        }
        channel.onAsyncFailure { failure in Console.line("async-failure \(failure)") }
        let events = channel.membershipEvents()
        let quorum = channel.configuration.minimumMembers > 1 ? channel.quorumChanges() : nil
        let lines = StandardInputLines.start()

        let group = ServiceGroup(
            configuration: .init(services: [.init(service: channel)], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "cohort.lifecycle"))
        )
        do {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                tasks.addTask {
                    let bound = try await channel.waitUntilRunning()
                    Console.line("listening \(channel.localMember.name) \(bound) id \(channel.localMember.id)")
                    for await event in events {
                        Console.line("\(event.name) \(event.member.name) \(event.member.endpoint)")
                    }
                }
                if let quorum {
                    tasks.addTask {
                        var first = true
                        for await status in quorum {
                            // The initial status is printed only when the node starts below the minimum.
                            if first && status.inQuorum { first = false; continue }
                            first = false
                            Console.line("\(status)")
                        }
                    }
                }
                tasks.addTask {
                    _ = try await channel.waitUntilRunning()
                    for await line in lines {
                        guard !line.isEmpty else { continue }
                        do {
                            let report = try await channel.send(TextMessage(line), options: SendOptions(guarantee: sendGuarantee))
                            var text = "sent to \(report.succeeded.count)/\(report.count) members"
                            if !report.failures.isEmpty {
                                let view = channel.view
                                text += " (" + report.failures.map { f in
                                    "\(view.member(f.member)?.name ?? f.member.description): \(f.outcome)"
                                }.joined(separator: "; ") + ")"
                            }
                            Console.line(text)
                        } catch {
                            Console.line("send failed: \(error)")
                        }
                    }
                    // End of input: keep running until a signal arrives.
                    try await Task.sleep(for: .seconds(365 * 24 * 3600))
                }
                // The service group ends on SIGINT/SIGTERM (after the graceful leave).
                try await tasks.next()
                tasks.cancelAll()
            }
        } catch let error as CohortError {
            Console.error("error: \(error.message)")
            throw ExitCode(1)
        }
        Console.line("stopped \(channel.localMember.name)")
    }
}

/// Lines from standard input, read on a dedicated thread (never on the cooperative pool).
enum StandardInputLines {
    static func start() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        let thread = Thread {
            while let line = readLine(strippingNewline: true) {
                continuation.yield(line)
            }
            continuation.finish()
        }
        thread.start()
        return stream
    }
}
