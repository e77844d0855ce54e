import ArgumentParser
import Cohort
import Foundation

@main
struct CohortCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cohort",
        abstract: "Cohort: replicated state for Swift servers.",
        subcommands: [
            DemoCommand.self, ServeCommand.self, NodeCommand.self, ChannelTourCommand.self, PluginsCommand.self, ChaosCommand.self,
            MembersCommand.self, SessionsCommand.self, StatusCommand.self, LeaveCommand.self, KeyCommand.self,
        ],
        defaultSubcommand: nil
    )
}

/// Writes a line to standard output at once (stdout to a pipe is otherwise block-buffered).
enum Console {
    private static let lock = NSLock()
    static func line(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }
    static func error(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

/// Options shared by commands that load plugins.
struct PluginOptions: ParsableArguments {
    @Option(name: .customLong("plugin"), help: ArgumentHelp("Load a plugin shared library (path, file name or product name; repeatable).", valueName: "PATH"))
    var plugins: [String] = []

    func load(into registry: PluginRegistry) throws {
        BuiltInPlugins.register(into: registry)
        for plugin in plugins {
            let loaded = try PluginLoader.load(plugin, into: registry)
            for info in loaded {
                Console.error("loaded plugin \(info.id) (\(info.kind), \(info.version)) from \(info.origin)")
            }
        }
    }
}

struct PluginsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plugins", abstract: "List the plugins this host knows (built-in and loaded).")

    @OptionGroup var pluginOptions: PluginOptions

    func run() async throws {
        let registry = PluginRegistry()
        do {
            try pluginOptions.load(into: registry)
        } catch let error as CohortError {
            Console.error("error: \(error.message)")
            throw ExitCode(2)
        }
        let rows = registry.plugins
        let idWidth = max(2, rows.map(\.id.count).max() ?? 0)
        Console.line("ID".padding(toLength: idWidth, withPad: " ", startingAt: 0) + "  KIND       VERSION  ORIGIN")
        for row in rows {
            Console.line(row.id.padding(toLength: idWidth, withPad: " ", startingAt: 0) + "  "
                + row.kind.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0) + "  "
                + row.version.padding(toLength: 7, withPad: " ", startingAt: 0) + "  " + row.origin.description)
        }
    }
}
