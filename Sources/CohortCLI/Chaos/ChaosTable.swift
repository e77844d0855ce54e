import Foundation

/// The results table `cohort chaos` prints (plain text, and Markdown for docs).
enum ChaosTable {
    static let headers = [
        "scenario", "mode", "balancer", "nemesis", "acked", "lost", "twice", "resets",
        "errors", "late err", "longest err", "converged", "verdict",
    ]

    static func row(_ report: ChaosReport) -> [String] {
        let skippedOrError = report.verdict == .skipped || report.verdict == .harnessError
        func count(_ n: Int) -> String { skippedOrError ? "–" : String(n) }
        let convergence: String
        if skippedOrError {
            convergence = "–"
        } else if let seconds = report.convergence {
            convergence = seconds.isFinite ? "\(ChaosChecker.format(seconds)) s" : "never"
        } else {
            convergence = "n/a"
        }
        return [
            report.scenario.name, report.scenario.mode.rawValue, report.scenario.balancer.rawValue,
            report.scenario.nemesis.rawValue, count(report.acknowledged), count(report.lost),
            count(report.appliedTwice), count(report.resets), count(report.errors),
            count(report.errorsOutsideWindow),
            skippedOrError ? "–" : "\(ChaosChecker.format(report.longestErrorWindow)) s",
            convergence, report.verdict.rawValue,
        ]
    }

    /// Fixed-width columns, one line per scenario, then the notes of skipped or failed runs.
    static func text(_ reports: [ChaosReport]) -> String {
        let rows = [headers] + reports.map(row)
        let widths = headers.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        var lines = rows.map { cells in
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        for report in reports {
            if let note = report.note { lines.append("\(report.scenario.name): \(report.verdict.rawValue.lowercased()): \(note)") }
        }
        return lines.joined(separator: "\n")
    }

    /// A Markdown table (for docs/guarantees.md).
    static func markdown(_ reports: [ChaosReport]) -> String {
        var lines = ["| " + headers.joined(separator: " | ") + " |", "|" + headers.map { _ in "---" }.joined(separator: "|") + "|"]
        for report in reports {
            lines.append("| " + row(report).joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }
}
