import Cohort
import CohortSessions
import CohortTestKit
import Metrics
import NIOConcurrencyHelpers
import Testing

/// Counts and swift-metrics instruments of a manager.
@Suite("Session metrics", .timeLimit(.minutes(2)))
struct MetricsTests {
    /// A metrics factory that keeps every value, by label.
    final class Recorder: MetricsFactory, @unchecked Sendable {
        let values = NIOLockedValueBox<[String: [Int64]]>([:])

        final class Handler: CounterHandler, RecorderHandler, TimerHandler, @unchecked Sendable {
            let label: String
            let sink: Recorder
            init(_ label: String, _ sink: Recorder) {
                self.label = label
                self.sink = sink
            }
            func increment(by amount: Int64) { sink.values.withLockedValue { $0[label, default: []].append(amount) } }
            func reset() {}
            func record(_ value: Int64) { sink.values.withLockedValue { $0[label, default: []].append(value) } }
            func record(_ value: Double) { record(Int64(value)) }
            func recordNanoseconds(_ duration: Int64) { record(duration) }
        }

        func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { Handler(label, self) }
        func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler { Handler(label, self) }
        func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { Handler(label, self) }
        func destroyCounter(_ handler: any CounterHandler) {}
        func destroyRecorder(_ handler: any RecorderHandler) {}
        func destroyTimer(_ handler: any TimerHandler) {}

        func total(_ label: String) -> Int64 { values.withLockedValue { $0[label, default: []].reduce(0, +) } }
        func last(_ label: String) -> Int64? { values.withLockedValue { $0[label]?.last } }
        func count(_ label: String) -> Int { values.withLockedValue { $0[label]?.count ?? 0 } }
    }

    @Test func managersPublishCountsAndTimings() async throws {
        let recorders = [Recorder(), Recorder()]
        try await SessionTestCluster.with(.delta, nodes: 2, configure: { i, c in
            c.metricsFactory = recorders[i]
            c.maxInactiveInterval = .seconds(60)
        }) { cluster in
            let a = recorders[0]
            let b = recorders[1]
            let id = try await cluster[0].createSession { try $0.setAttribute("blob", String(repeating: "x", count: 1000)) }.id
            try await cluster[1].withSession(id) { try $0.setAttribute("more", 1) }
            #expect(a.total("cohort.sessions.created") == 1)
            #expect(b.total("cohort.sessions.created") == 0, "a replicated session is not created on this node")
            #expect(a.last("cohort.sessions.active") == 1)
            #expect(b.last("cohort.sessions.active") == 1)
            #expect(a.total("cohort.sessions.replicated_bytes") > 1000)
            #expect(a.count("cohort.sessions.replication_latency") == 1)
            #expect(b.count("cohort.sessions.transfer_time") == 1)
            #expect(cluster[0].statistics.replicatedBytes == Int(a.total("cohort.sessions.replicated_bytes")))
            try await cluster.advance(by: .seconds(61))
            #expect(a.total("cohort.sessions.expired") == 1)
            #expect(b.total("cohort.sessions.expired") == 1)
            #expect(a.last("cohort.sessions.active") == 0)
            #expect(b.last("cohort.sessions.active") == 0)
        }
    }
}
