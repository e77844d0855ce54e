import ArgumentParser
import Foundation

/// `cohort chaos check HISTORY.json…`: runs the checker again over recorded histories.
struct ChaosCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Check recorded histories again and print the table.")

    @Argument(help: "history.json files written by a run.") var histories: [String]
    @Option(help: "Seconds after a fault or heal in which client errors are allowed.") var errorWindow = 10.0
    @Option(help: "Seconds after a heal within which membership must converge.") var convergenceLimit = 5.0
    @Flag(help: "Print every finding.") var verbose = false

    func run() async throws {
        let checker = ChaosChecker(errorWindow: errorWindow, convergenceLimit: convergenceLimit)
        var reports: [ChaosReport] = []
        for path in histories {
            guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
            let history = try JSONDecoder().decode(ChaosHistory.self, from: data)
            let report = checker.check(history)
            reports.append(report)
            if verbose { for finding in report.findings { Console.line("\(report.scenario.name): \(finding)") } }
        }
        Console.line(ChaosTable.text(reports))
    }
}
