import Cohort
import Synchronization
import Tracing

/// The session layer's spans (swift-distributed-tracing), on the tracer of
/// ``SessionManagerConfiguration/tracer`` or, when that is nil, the process's
/// (`InstrumentationSystem.tracer`, a no-op unless the app bootstraps one — swift-otel, for
/// example):
///
/// | span | kind | attributes |
/// |---|---|---|
/// | `cohort.session.commit` | internal | `cohort.node`, `cohort.sessions.manager`, `cohort.session.new`, `cohort.session.invalidated`, `cohort.session.replicas`, `cohort.session.failures` |
/// | `cohort.session.fetch` | internal | `cohort.node`, `cohort.sessions.manager`, `cohort.session.found` |
/// | `cohort.sessions.state_transfer` | internal | `cohort.node`, `cohort.sessions.manager`, `cohort.sessions.transferred` |
///
/// A commit's replication messages are the channel's `cohort.send` spans, children of the
/// commit's span. No span carries a session id: it is a credential.
struct SessionTracing: Sendable {
    let tracer: (any Tracer)?
    let node: String
    let manager: String

    var current: any Tracer { tracer ?? InstrumentationSystem.tracer }

    /// Runs `body` in a span (a child of the caller's, if any); an error ends it with the error.
    func span<T>(_ name: String, _ body: (any Span) async throws -> T) async throws -> T {
        let span = current.startSpan(name, context: ServiceContext.current ?? .topLevel, ofKind: .internal)
        defer { span.end() }
        if span.isRecording {
            span.attributes["cohort.node"] = node
            span.attributes["cohort.sessions.manager"] = manager
        }
        do {
            return try await ServiceContext.$current.withValue(span.context) {
                try await body(span)
            }
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    /// Starts the state-transfer span (ended by ``TransferSpan/finish(transferred:)`` or
    /// ``TransferSpan/abandon()``).
    func startTransfer() -> any Span {
        let span = current.startSpan("cohort.sessions.state_transfer", context: ServiceContext.current ?? .topLevel, ofKind: .internal)
        if span.isRecording {
            span.attributes["cohort.node"] = node
            span.attributes["cohort.sessions.manager"] = manager
        }
        return span
    }
}

/// The state-transfer span while it is open: ``SessionManager/run()`` opens it, the replicator's
/// `ready` report closes it.
final class TransferSpan: Sendable {
    private let span = Mutex<(any Span)?>(nil)

    func open(_ span: any Span) {
        let previous = self.span.withLock { current in
            defer { current = span }
            return current
        }
        previous?.end()
    }

    /// The node holds its sessions: the span ends with the count received.
    func finish(transferred: Int) {
        guard let span = span.withLock({ current in defer { current = nil }; return current }) else { return }
        if span.isRecording { span.attributes["cohort.sessions.transferred"] = transferred }
        span.end()
    }

    /// The manager stopped before it was ready: the span ends as an error.
    func abandon() {
        guard let span = span.withLock({ current in defer { current = nil }; return current }) else { return }
        span.setStatus(SpanStatus(code: .error, message: "the manager stopped before its state transfer was done"))
        span.end()
    }
}
