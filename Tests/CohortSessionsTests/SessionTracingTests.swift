import Cohort
import CohortSessions
import CohortTestKit
import InMemoryTracing
import Testing
import Tracing

/// The session layer's spans: commits, fetches and the state transfer, read back from
/// swift-distributed-tracing's `InMemoryTracer` (one per node, through
/// `SessionManagerConfiguration.tracer`).
@Suite("Session spans", .timeLimit(.minutes(2)))
struct SessionTracingTests {
    @Test func commitsFetchesAndTheStateTransferAreSpansWithoutSessionIDs() async throws {
        let tracers = [InMemoryTracer(), InMemoryTracer(), InMemoryTracer()]
        try await SessionTestCluster.with(.delta, nodes: 2, configure: { i, c in c.tracer = tracers[i] }) { cluster in
            let id = try await cluster[0].createSession { try $0.setAttribute("n", 1) }.id
            try await cluster[1].withSession(id) { try $0.setAttribute("n", 2) }
            #expect(try await cluster[1].session("no-such-session") == nil)

            // node1: its creation is one commit of a new session, acknowledged by node2.
            let created = tracers[0].finishedSpans.filter { $0.operationName == "cohort.session.commit" }
            #expect(created.count == 1)
            #expect(created.first?.attributes.get("cohort.session.new") == .bool(true))
            #expect(created.first?.attributes.get("cohort.session.replicas") == .int64(1))
            #expect(created.first?.attributes.get("cohort.session.failures") == .int64(0))
            #expect(created.first?.attributes.get("cohort.node") == .string("node1"))
            #expect(created.first?.attributes.get("cohort.sessions.manager") == .string("app"))

            // node2: two fetches (one found, one not) and one commit of an existing session.
            let fetches = tracers[1].finishedSpans.filter { $0.operationName == "cohort.session.fetch" }
            #expect(fetches.map { $0.attributes.get("cohort.session.found") } == [.bool(true), .bool(false)])
            let updated = tracers[1].finishedSpans.filter { $0.operationName == "cohort.session.commit" }
            #expect(updated.count == 1)
            #expect(updated.first?.attributes.get("cohort.session.new") == .bool(false))
            #expect(updated.first?.attributes.get("cohort.session.replicas") == .int64(1))

            // A node that joins now receives the session: its transfer span says so.
            let third = try await cluster.addNode()
            try await cluster.waitUntilReady(third)
            let transfer = try #require(tracers[2].finishedSpans.first { $0.operationName == "cohort.sessions.state_transfer" })
            #expect(transfer.attributes.get("cohort.sessions.transferred") == .int64(1))
            #expect(transfer.attributes.get("cohort.node") == .string("node3"))
            #expect(transfer.status == nil)
            for tracer in tracers.prefix(2) {
                #expect(tracer.finishedSpans.filter { $0.operationName == "cohort.sessions.state_transfer" }.count == 1)
            }

            // A commit that fails ends its span with the error.
            let stale = try #require(try await cluster[0].session(id))
            try await cluster[1].invalidate(id)
            await #expect(throws: CohortError.self) { try await cluster[0].commit(stale) }
            let failed = try #require(tracers[0].finishedSpans.last { $0.operationName == "cohort.session.commit" })
            #expect(failed.status?.code == .error)
            #expect(failed.errors.count == 1)

            // No span carries the session id (a credential).
            for tracer in tracers {
                for span in tracer.finishedSpans {
                    span.attributes.forEach { key, value in
                        #expect(!"\(value)".contains(id), "\(span.operationName).\(key) holds the session id")
                    }
                }
            }
        }
    }

    @Test func aManagerThatStopsBeforeItIsReadyEndsItsTransferSpanAsAnError() async throws {
        let tracer = InMemoryTracer()
        let cluster = SessionTestCluster(kind: .delta, configure: { _, c in
            c.tracer = tracer
            c.settleTime = .seconds(3600)  // never ready on its own
        })
        try await cluster.addNode()
        try await cluster.clock.waitForSleepers(1)  // the manager runs: its settle timer is armed
        #expect(tracer.activeSpans.contains { $0.operationName == "cohort.sessions.state_transfer" })
        #expect(tracer.finishedSpans.isEmpty)
        await cluster.stop()
        let transfer = try #require(tracer.finishedSpans.first { $0.operationName == "cohort.sessions.state_transfer" })
        #expect(transfer.status?.code == .error)
    }
}
