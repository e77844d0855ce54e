import Cohort
import CohortTestKit
import Logging
import Metrics
import MetricsTestKit
import NIOConcurrencyHelpers
import Testing

/// The failure detector's metrics (suspicions, recoveries, removals, probes by outcome, probe
/// round trip), labelled with the node's name, read back from MetricsTestKit's `TestMetrics`.
@Suite("FailureDetector metrics", .timeLimit(.minutes(1)))
struct FailureDetectorMetricsTests {
    let member = Member(name: "b", endpoint: Endpoint(host: "127.0.0.1", port: 2), startTime: 1)
    let node = [("node", "fd-metrics-a")]

    /// Runs a detector whose probes take `probeTime` on the manual clock and answer `answers`
    /// in turn (the last one repeats), publishing into `events`.
    func withDetector(
        probeTime: Duration,
        answers: [FailureDetectorState.ProbeResult],
        _ body: (FailureDetector, AsyncStream<MembershipEvent>, TestMetrics, ManualClock) async throws -> Void
    ) async throws {
        let clock = ManualClock()
        let metrics = TestMetrics()
        let detector = FailureDetector(settings: .init(reprobeInterval: .milliseconds(200), confirmations: 2), clock: clock, metricsFactory: metrics)
        let (events, eventInput) = AsyncStream.makeStream(of: MembershipEvent.self)
        let answered = NIOLockedValueBox(0)
        let context = InterceptorContext(
            probe: { _, _ in
                let index = answered.withLockedValue { count in
                    defer { count += 1 }
                    return count
                }
                clock.advance(by: probeTime)  // the probe's round trip, on the detector's clock
                return answers[min(index, answers.count - 1)]
            },
            publish: { eventInput.yield($0) },
            forget: { _ in },
            local: Member(name: "fd-metrics-a", endpoint: Endpoint(host: "127.0.0.1", port: 1), startTime: 0),
            now: { clock.now },
            sleep: { try await clock.sleep(for: $0) },
            logger: Logger(label: "test")
        )
        let running = Task { try await detector.run(context: context) }
        try await body(detector, events, metrics, clock)
        running.cancel()
        _ = try? await running.value
    }

    @Test func aSuspicionThatRecoversCountsOneSuspicionOneRecoveryAndOneAnsweredProbe() async throws {
        try await withDetector(probeTime: .milliseconds(40), answers: [.alive]) { detector, stream, metrics, _ in
            var events = stream.makeAsyncIterator()
            detector.send(.joined(member))
            detector.send(.missing(member, reason: "silent"))
            #expect(await events.next() == .suspected(member))
            #expect(await events.next() == .recovered(member))
            await detector.settle()
            #expect(try metrics.expectCounter("cohort.failure_detector.suspicions", node).totalValue == 1)
            #expect(try metrics.expectCounter("cohort.failure_detector.recoveries", node).totalValue == 1)
            #expect(try metrics.expectCounter("cohort.failure_detector.removals", node).totalValue == 0)
            #expect(try metrics.expectCounter("cohort.failure_detector.probes", node + [("outcome", "alive")]).totalValue == 1)
            #expect(try metrics.expectCounter("cohort.failure_detector.probes", node + [("outcome", "timed_out")]).totalValue == 0)
            let roundTrip = try metrics.expectTimer("cohort.failure_detector.probe_round_trip", node)
            #expect(roundTrip.values == [40_000_000], "the probe took 40 ms on the clock")
        }
    }

    @Test func timedOutProbesThenARemovalAreCountedByOutcome() async throws {
        try await withDetector(probeTime: .milliseconds(500), answers: [.timedOut]) { detector, stream, metrics, clock in
            var events = stream.makeAsyncIterator()
            detector.send(.joined(member))
            detector.send(.missing(member, reason: "silent"))
            #expect(await events.next() == .suspected(member))
            // The first probe timed out; the second, after the re-probe interval on the clock,
            // confirms the removal.
            #expect(await eventually(timeout: .seconds(10), poll: .milliseconds(1)) { await detector.failedProbes(of: member.id) == 1 })
            clock.advance(by: .milliseconds(200))
            detector.send(.tick)
            #expect(await events.next() == .removed(member))
            await detector.settle()
            #expect(try metrics.expectCounter("cohort.failure_detector.suspicions", node).totalValue == 1)
            #expect(try metrics.expectCounter("cohort.failure_detector.removals", node).totalValue == 1)
            #expect(try metrics.expectCounter("cohort.failure_detector.recoveries", node).totalValue == 0)
            #expect(try metrics.expectCounter("cohort.failure_detector.probes", node + [("outcome", "timed_out")]).totalValue == 2)
            let roundTrip = try metrics.expectTimer("cohort.failure_detector.probe_round_trip", node)
            #expect(roundTrip.values.count == 2)
        }
    }

    @Test func aRefusedProbeRemovesAtOnce() async throws {
        try await withDetector(probeTime: .milliseconds(1), answers: [.refused]) { detector, stream, metrics, _ in
            var events = stream.makeAsyncIterator()
            detector.send(.joined(member))
            detector.send(.sendFailed(member, reason: "reset"))
            #expect(await events.next() == .suspected(member))
            #expect(await events.next() == .removed(member))
            await detector.settle()
            let refused = try metrics.expectCounter("cohort.failure_detector.probes", node + [("outcome", "refused")])
            #expect(refused.totalValue == 1)
            #expect(try metrics.expectCounter("cohort.failure_detector.removals", node).totalValue == 1)
        }
    }
}
