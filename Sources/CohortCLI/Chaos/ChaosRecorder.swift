import Foundation

/// Where the nemesis writes down its faults, heals and convergence times while the clients run.
final class ChaosRecorder: @unchecked Sendable {
    let clock: ChaosClock
    private let lock = NSLock()
    private var events: [ChaosHistory.Event] = []
    private var convergences: [ChaosHistory.Convergence] = []

    init(clock: ChaosClock) {
        self.clock = clock
    }

    /// Records a fault at the current time and prints it.
    @discardableResult
    func fault(_ what: String, node: String) -> Double {
        record(.fault, what, node: node)
    }

    /// Records a heal at the current time and prints it.
    @discardableResult
    func heal(_ what: String, node: String) -> Double {
        record(.heal, what, node: node)
    }

    func converged(_ convergence: ChaosHistory.Convergence) {
        lock.withLock { convergences.append(convergence) }
        let text = convergence.seconds.map { "membership converged \(ChaosChecker.format($0)) s after '\(convergence.heal)'" }
            ?? "membership did not converge after '\(convergence.heal)'"
        Console.line("chaos:   \(ChaosChecker.format(clock.now())) s \(text)")
    }

    func note(_ text: String) {
        Console.line("chaos:   \(ChaosChecker.format(clock.now())) s \(text)")
    }

    var recorded: (events: [ChaosHistory.Event], convergences: [ChaosHistory.Convergence]) {
        lock.withLock { (events, convergences) }
    }

    private func record(_ kind: ChaosHistory.Event.Kind, _ what: String, node: String) -> Double {
        let at = clock.now()
        lock.withLock { events.append(.init(kind: kind, what: what, node: node, at: at)) }
        Console.line("chaos:   \(ChaosChecker.format(at)) s \(kind.rawValue): \(what)")
        return at
    }
}
