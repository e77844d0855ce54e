import ArgumentParser

/// `cohort chaos`: the fault-injection harness (see docs/guarantees.md).
struct ChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "Fault-injection harness: real nodes behind nginx, clients, nemeses, and a checker over the history.",
        subcommands: [ChaosRunCommand.self, ChaosListCommand.self, ChaosCheckCommand.self, SoakCommand.self],
        defaultSubcommand: ChaosRunCommand.self
    )
}

/// `cohort chaos list`: the scenario names.
struct ChaosListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the scenarios (--ci: the CI subset).")

    @Flag(help: "Only the CI subset.") var ci = false

    func run() async throws {
        for scenario in ci ? ChaosScenario.ci : ChaosScenario.all { Console.line(scenario.name) }
    }
}
