/// Checks a recorded history against the rules of the fault-injection harness. Pure: no I/O, no
/// clock; the same history always gives the same report.
///
/// Per session (one per client; a client's requests never overlap):
/// - **lost**: every acknowledged increment stays in the state. An acknowledged answer with count
///   `c` says the session held `c` increments after it; an increment acknowledged with count `k`
///   is lost when a later answer of the same session comes back with a count `≤ k` (the state fell
///   below it), or when a node's final read is below `k`.
/// - **applied twice**: a count above the highest acknowledged so far may exceed it by at most the
///   number of requests sent since that highest answer (each failed one may or may not have been
///   applied); more means an increment was applied twice (a retry somewhere replayed it). In a
///   history without stale answers this is "a jump between consecutive acknowledged counts larger
///   than 1 + the failed requests in between"; measuring from the highest count keeps a return
///   from a stale copy to the up-to-date one from counting as duplicates.
/// - **resets**: the session id changes, or the count falls back to 1: the user got a new, empty
///   session (every increment acknowledged before is lost as well).
/// - **errors**: a failed request must be in flight at some moment within `errorWindow` seconds
///   after a fault or heal (it may start before the fault, or time out after the window).
/// - **convergence**: after each heal, every node lists the three members, none suspected, within
///   `convergenceLimit` seconds.
/// - **final reads**: after the load, every node answers the session's count; a failed read is a
///   violation (the cluster should be whole again).
struct ChaosChecker: Sendable {
    /// Seconds after a fault or heal during which failed requests are allowed (a failed request must
    /// overlap such a window).
    var errorWindow: Double = 10
    /// Seconds after a heal within which membership must converge.
    var convergenceLimit: Double = 5
    /// Failed requests closer than this are one error window.
    var errorMergeGap: Double = 1

    static let maximumFindings = 40

    func check(_ history: ChaosHistory) -> ChaosReport {
        var report = ChaosReport(scenario: history.scenario, network: history.network)
        if let skipped = history.skipped {
            report.verdict = .skipped
            report.note = skipped
            return report
        }
        var findings: [String] = []
        func note(_ text: String) {
            if findings.count < Self.maximumFindings { findings.append(text) }
        }

        let byClient = Dictionary(grouping: history.requests, by: \.client)
        let readsByClient = Dictionary(grouping: history.finalReads, by: \.client)
        for client in byClient.keys.sorted() {
            let requests = (byClient[client] ?? []).sorted { $0.sequence < $1.sequence }
            var session = SessionCheck(client: client)
            for request in requests {
                session.on(request, note: note)
            }
            session.onFinalReads(readsByClient[client] ?? [], note: note)
            report.acknowledged += session.acknowledged
            report.lost += session.lost
            report.appliedTwice += session.appliedTwice
            report.resets += session.resets
            report.finalReadFailures += session.finalReadFailures
        }

        // Errors: inside a window after a fault or heal, and the longest stretch of them.
        let failed = history.requests.filter { !$0.acknowledged }
        report.errors = failed.count
        let eventTimes = history.events.map(\.at)
        for request in failed {
            // Inside when the request was in flight at some moment of a window [event, event + errorWindow]
            // (a request sent in the window may time out after it: the fault still caused it).
            let inside = eventTimes.contains { request.end >= $0 && request.start <= $0 + errorWindow }
            if !inside {
                report.errorsOutsideWindow += 1
                note("client \(request.client) #\(request.sequence): error at \(Self.format(request.end)) s outside every fault window (\(request.error ?? "status \(request.status ?? 0)"))")
            }
        }
        report.longestErrorWindow = Self.longestWindow(failed.map { ($0.start, $0.end) }, gap: errorMergeGap)

        // Membership convergence after each heal.
        for convergence in history.convergences {
            if let seconds = convergence.seconds {
                report.convergence = max(report.convergence ?? 0, seconds)
                if seconds > convergenceLimit {
                    report.unconverged += 1
                    note("membership converged \(Self.format(seconds)) s after '\(convergence.heal)' (limit \(Self.format(convergenceLimit)) s)")
                }
            } else {
                report.unconverged += 1
                report.convergence = .infinity
                note("membership never converged after '\(convergence.heal)'")
            }
        }

        report.findings = findings
        if let error = history.harnessError {
            report.verdict = .harnessError
            report.note = error
        } else if history.requests.isEmpty {
            report.verdict = .harnessError
            report.note = "the clients recorded no request"
        } else {
            report.verdict = report.violations == 0 ? .pass : .fail
        }
        return report
    }

    /// The longest union of overlapping intervals (merged when less than `gap` apart).
    static func longestWindow(_ intervals: [(Double, Double)], gap: Double) -> Double {
        let sorted = intervals.sorted { $0.0 < $1.0 }
        guard var current = sorted.first else { return 0 }
        var longest = current.1 - current.0
        for interval in sorted.dropFirst() {
            if interval.0 <= current.1 + gap {
                current.1 = max(current.1, interval.1)
            } else {
                current = interval
            }
            longest = max(longest, current.1 - current.0)
        }
        return longest
    }

    static func format(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "∞" }
        let tenths = (seconds * 10).rounded() / 10
        return String(tenths)
    }
}
