/// What the checker concluded about one scenario run.
struct ChaosReport: Codable, Sendable, Equatable {
    enum Verdict: String, Codable, Sendable {
        /// Every rule held.
        case pass = "PASS"
        /// At least one rule was broken (see the counts and ``ChaosReport/findings``).
        case fail = "FAIL"
        /// The scenario could not run here (for example a partition without network namespaces).
        case skipped = "SKIP"
        /// The harness itself failed (a node that never started, nginx that did not run…).
        case harnessError = "ERROR"
    }

    var scenario: ChaosScenario
    var network: String
    /// Increments answered 200 with a count.
    var acknowledged: Int = 0
    /// Acknowledged increments missing later: undercut by a later answer of the same session, or
    /// above a node's final count.
    var lost: Int = 0
    /// Increments applied more often than requested (a count jumped further than the failed
    /// requests in between explain).
    var appliedTwice: Int = 0
    /// Sessions that started over: a new session id, or the count back to 1.
    var resets: Int = 0
    /// Requests that failed (non-200 status, transport error, timeout, bad body).
    var errors: Int = 0
    /// Failed requests that overlapped no error window (after a fault or a heal).
    var errorsOutsideWindow: Int = 0
    /// The longest stretch of time covered by failing requests (merged when less than 1 s apart).
    var longestErrorWindow: Double = 0
    /// The slowest membership convergence after a heal, in seconds; nil when there was no heal.
    var convergence: Double?
    /// Heals after which membership did not converge within the limit.
    var unconverged: Int = 0
    /// Final reads that failed (node down or unreachable at the end).
    var finalReadFailures: Int = 0
    var verdict: Verdict = .pass
    /// Why the scenario was skipped or errored.
    var note: String?
    /// The first findings, in words (at most ``ChaosChecker/maximumFindings``).
    var findings: [String] = []

    /// Broken rules, counted: what makes the verdict FAIL.
    var violations: Int {
        lost + appliedTwice + resets + errorsOutsideWindow + unconverged + finalReadFailures
    }
}
