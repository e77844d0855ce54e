@testable import CohortCLI
import Testing

/// The fault-injection harness's checker, fed hand-written histories (no processes).
@Suite("chaos checker")
struct ChaosCheckerTests {
    static let scenario = ChaosScenario(mode: .sync, balancer: .roundRobin, nemesis: .kill)

    /// A 200 answer with `count` for `client`'s request number `sequence`, at second `at`.
    static func ack(_ client: Int, _ sequence: Int, count: Int, at: Double, session: String = "s", node: String = "node1") -> ChaosHistory.Request {
        ChaosHistory.Request(client: client, sequence: sequence, start: at, end: at + 0.01, status: 200, count: count, node: node,
                             session: "\(session)\(client)", target: "balancer")
    }

    static func failure(_ client: Int, _ sequence: Int, at: Double, error: String = "connection reset") -> ChaosHistory.Request {
        ChaosHistory.Request(client: client, sequence: sequence, start: at, end: at + 0.01, error: error, target: "balancer")
    }

    static func reads(_ client: Int, count: Int, session: String = "s") -> [ChaosHistory.FinalRead] {
        ["node1", "node2", "node3"].map { .init(client: client, node: $0, count: count, session: "\(session)\(client)") }
    }

    /// Two clients, five increments each, a kill at 3 s with one failed request, restart healed.
    static func clean() -> ChaosHistory {
        var history = ChaosHistory(scenario: scenario, network: "loopback", clients: 2)
        for client in 0..<2 {
            history.requests += (0..<3).map { ack(client, $0, count: $0 + 1, at: Double($0)) }
            history.requests.append(failure(client, 3, at: 3.1))
            // The failed request was applied: the next answer skips a number, which is allowed.
            history.requests += [ack(client, 4, count: 5, at: 4), ack(client, 5, count: 6, at: 5)]
            history.finalReads += reads(client, count: 6)
        }
        history.events = [
            .init(kind: .fault, what: "kill -9 node2", node: "node2", at: 3),
            .init(kind: .heal, what: "restart node2", node: "node2", at: 11),
        ]
        history.convergences = [.init(heal: "restart node2", healedAt: 11.5, convergedAt: 13)]
        return history
    }

    @Test func aCleanHistoryPasses() {
        let report = ChaosChecker().check(Self.clean())
        #expect(report.verdict == .pass, "\(report.findings)")
        #expect(report.acknowledged == 10)
        #expect(report.errors == 2)
        #expect(report.errorsOutsideWindow == 0)
        #expect(report.lost == 0 && report.appliedTwice == 0 && report.resets == 0)
        #expect(report.convergence == 1.5)
        #expect(report.violations == 0)
    }

    @Test func aCountThatGoesBackIsALostWrite() {
        var history = Self.clean()
        // Client 0's last answer says 4 where 5 came before: the increment acknowledged with 5 is
        // gone (4 was the failed request's, never acknowledged).
        history.requests[5] = Self.ack(0, 5, count: 4, at: 5)
        history.finalReads = Self.reads(0, count: 4) + Self.reads(1, count: 6)
        let report = ChaosChecker().check(history)
        #expect(report.verdict == .fail)
        #expect(report.lost == 1)
        #expect(report.appliedTwice == 0 && report.resets == 0)
    }

    @Test func aFinalCountBelowAnAcknowledgedOneIsALostWrite() {
        var history = Self.clean()
        // One node ends with 5 although 6 was acknowledged (an update that never reached it).
        history.finalReads[1] = .init(client: 0, node: "node2", count: 5, session: "s0")
        let report = ChaosChecker().check(history)
        #expect(report.verdict == .fail)
        #expect(report.lost == 1)
        // A node that does not know the session at all has lost every acknowledged increment (5).
        history.finalReads[1] = .init(client: 0, node: "node2", count: 0, session: "")
        #expect(ChaosChecker().check(history).lost == 5)
    }

    @Test func aJumpLargerThanTheFailuresInBetweenIsADuplicate() {
        var history = Self.clean()
        // Client 1: 1, 2, 3, (1 failure), 5, then 8 with no failure in between: two applied twice.
        history.requests[11] = Self.ack(1, 5, count: 8, at: 5)
        history.finalReads = Self.reads(0, count: 6) + Self.reads(1, count: 8)
        let report = ChaosChecker().check(history)
        #expect(report.verdict == .fail)
        #expect(report.appliedTwice == 2)
        #expect(report.lost == 0 && report.resets == 0)
    }

    @Test func aStaleAnswerThenTheUpToDateCopyIsALossNotADuplicate() {
        var history = ChaosHistory(scenario: Self.scenario, network: "loopback", clients: 1)
        // 1…5 on node1, then node2 (behind) answers 3, then node1 again 6.
        history.requests = (0..<5).map { Self.ack(0, $0, count: $0 + 1, at: Double($0)) }
        history.requests.append(Self.ack(0, 5, count: 3, at: 5, node: "node2"))
        history.requests.append(Self.ack(0, 6, count: 6, at: 6))
        history.finalReads = Self.reads(0, count: 6)
        let report = ChaosChecker().check(history)
        #expect(report.lost == 3) // 3, 4 and 5 were missing from the copy that answered 3
        #expect(report.appliedTwice == 0)
        // A jump above the highest count by more than the requests since it is still a duplicate.
        history.requests[6] = Self.ack(0, 6, count: 8, at: 6)
        history.finalReads = Self.reads(0, count: 8)
        #expect(ChaosChecker().check(history).appliedTwice == 1) // 5 → 8 with two requests since 5
    }

    @Test func aCountBackToOneOrANewSessionIsAReset() {
        var history = Self.clean()
        // Client 0 is answered 1 in the same session: a reset, and its five increments are lost.
        history.requests[5] = Self.ack(0, 5, count: 1, at: 5)
        history.finalReads = Self.reads(0, count: 1) + Self.reads(1, count: 6)
        var report = ChaosChecker().check(history)
        #expect(report.resets == 1)
        #expect(report.lost == 4) // 1, 2, 3 and 5 acknowledged before (the failed one was never acknowledged)
        #expect(report.verdict == .fail)

        // A new session id counts as a reset too, whatever the count.
        history = Self.clean()
        history.requests[5] = Self.ack(0, 5, count: 1, at: 5, session: "fresh")
        history.finalReads = Self.reads(0, count: 1, session: "fresh") + Self.reads(1, count: 6)
        report = ChaosChecker().check(history)
        #expect(report.resets == 1)
        #expect(report.lost == 4)
    }

    @Test func errorsOutsideTheWindowAfterAFaultAreViolations() {
        var history = Self.clean()
        // A failure at 30 s: more than 10 s after the heal at 11 s.
        history.requests.append(Self.failure(0, 6, at: 30))
        history.requests.append(Self.ack(0, 7, count: 7, at: 31))
        history.finalReads = Self.reads(0, count: 7) + Self.reads(1, count: 6)
        let report = ChaosChecker().check(history)
        #expect(report.errorsOutsideWindow == 1)
        #expect(report.verdict == .fail)
        // A wider window lets it pass.
        #expect(ChaosChecker(errorWindow: 20).check(history).verdict == .pass)
        // A request sent inside the window that times out after it is the fault's doing.
        history.requests[history.requests.count - 2] = ChaosHistory.Request(
            client: 0, sequence: 6, start: 20, end: 30, error: "timeout", target: "balancer")
        #expect(ChaosChecker().check(history).errorsOutsideWindow == 0)
        #expect(ChaosChecker().check(history).longestErrorWindow == 10)
    }

    @Test func slowOrMissingConvergenceIsAViolation() {
        var history = Self.clean()
        history.convergences = [.init(heal: "restart node2", healedAt: 11.5, convergedAt: 18)]
        var report = ChaosChecker().check(history)
        #expect(report.unconverged == 1 && report.verdict == .fail)
        history.convergences = [.init(heal: "restart node2", healedAt: 11.5, convergedAt: nil)]
        report = ChaosChecker().check(history)
        #expect(report.unconverged == 1 && report.convergence == .infinity)
    }

    @Test func aFailedFinalReadIsAViolation() {
        var history = Self.clean()
        history.finalReads[2] = .init(client: 0, node: "node3", error: "connection refused")
        let report = ChaosChecker().check(history)
        #expect(report.finalReadFailures == 1)
        #expect(report.verdict == .fail)
    }

    @Test func skippedAndBrokenRunsAreNotPasses() {
        var history = Self.clean()
        history.skipped = "no namespaces"
        #expect(ChaosChecker().check(history).verdict == .skipped)
        history = Self.clean()
        history.harnessError = "node2 did not start"
        #expect(ChaosChecker().check(history).verdict == .harnessError)
        history = ChaosHistory(scenario: Self.scenario, network: "loopback", clients: 2)
        #expect(ChaosChecker().check(history).verdict == .harnessError)
    }

    @Test func theLongestErrorWindowMergesCloseFailures() {
        let windows: [(Double, Double)] = [(1, 2), (2.5, 3), (3.2, 6), (10, 10.5)]
        #expect(ChaosChecker.longestWindow(windows, gap: 1) == 5)
        #expect(ChaosChecker.longestWindow([], gap: 1) == 0)
    }

    @Test func scenarioNamesRoundTripAndTheMatrixIsComplete() {
        #expect(ChaosScenario.all.count == 32)
        #expect(ChaosScenario.core.count == 16)
        for scenario in ChaosScenario.all {
            #expect(ChaosScenario(name: scenario.name) == scenario)
        }
        #expect(ChaosScenario(name: "sync-roundrobin") == nil)
        #expect(ChaosScenario(name: "eventual-roundrobin-kill") == nil)
    }
}
