import Cohort
import Foundation
import NIOConcurrencyHelpers

/// A conformance suite for ``CohortCore/DiscoveryProvider`` implementations, for plugin authors.
///
/// It needs no test framework: call it from any test and let it throw.
/// ```swift
/// @Test func conforms() async throws {
///     let local = TransportConformance.localMember(0)
///     try await DiscoveryConformance.run(name: "dns", DNSDiscovery(name: "cache.local"), local: local)
/// }
/// ```
/// Set the provider up so it has something to report (a file with addresses, a fake API). The
/// suite checks that
/// - ``CohortCore/DiscoveryProvider/run(local:report:)`` reports at least one event within
///   `firstEventWithin`, and keeps running (it must not return on its own before it is cancelled);
/// - no event proposes the local member itself (its endpoint as a candidate, or `.alive` with its
///   id);
/// - `run` returns (normally or by throwing) within `stopWithin` after its task is cancelled;
/// - ``CohortCore/DiscoveryProvider/leave(local:)`` returns within `stopWithin`.
///
/// Pass `expect` to check the content of the events as well.
public enum DiscoveryConformance {
    /// Runs every check.
    ///
    /// - Parameters:
    ///   - name: the provider's name, for failure messages.
    ///   - provider: the provider under test, ready to report something.
    ///   - local: the member the provider runs for.
    ///   - firstEventWithin: how long the first event may take (generous by default: the check is
    ///     that something comes, on a machine that may be busy).
    ///   - stopWithin: how long `run` may take to return after cancellation, and `leave` to return.
    ///   - expect: optional check of the events seen when the first one arrived; return a
    ///     description of what is wrong, or nil.
    /// - Returns: the events reported before cancellation.
    /// - Throws: ``PluginConformanceFailure`` naming the first check that failed.
    @discardableResult
    public static func run(
        name: String,
        _ provider: any DiscoveryProvider,
        local: Member,
        firstEventWithin: Duration = .seconds(30),
        stopWithin: Duration = .seconds(10),
        expect: (([DiscoveryEvent]) -> String?)? = nil
    ) async throws -> [DiscoveryEvent] {
        func failure(_ check: String, _ detail: String) -> PluginConformanceFailure {
            PluginConformanceFailure(kind: .discovery, plugin: name, check: check, detail: detail)
        }
        let events = NIOLockedValueBox<[DiscoveryEvent]>([])
        let ended = NIOLockedValueBox<(done: Bool, error: (any Error)?)>((false, nil))
        let task = Task {
            do {
                try await provider.run(local: local) { event in events.withLockedValue { $0.append(event) } }
                ended.withLockedValue { $0 = (true, nil) }
            } catch {
                ended.withLockedValue { $0 = (true, error) }
            }
        }
        defer { task.cancel() }

        let first = await eventually(timeout: firstEventWithin) {
            !events.withLockedValue(\.isEmpty) || ended.withLockedValue(\.done)
        }
        let (endedEarly, earlyError) = ended.withLockedValue { ($0.done, $0.error) }
        if endedEarly {
            let how = earlyError.map { "threw \($0)" } ?? "returned"
            throw failure("run keeps running", "run(local:report:) \(how) before it was cancelled")
        }
        guard first else {
            throw failure("first event", "run(local:report:) reported nothing within \(firstEventWithin)")
        }
        let seen = events.withLockedValue { $0 }
        for event in seen {
            switch event {
            case .candidates(let endpoints) where endpoints.contains(local.endpoint):
                throw failure("no self-proposal", "a candidates event lists the local member's own address \(local.endpoint): \(endpoints)")
            case .alive(let member) where member.id == local.id:
                throw failure("no self-proposal", "an alive event names the local member itself")
            default:
                break
            }
        }
        if let expect, let problem = expect(seen) {
            throw failure("event content", problem)
        }

        task.cancel()
        let stopped = await eventually(timeout: stopWithin) { ended.withLockedValue(\.done) }
        guard stopped else {
            throw failure("stops when cancelled", "run(local:report:) was still running \(stopWithin) after its task was cancelled")
        }

        let left = await raceDeadline(stopWithin) { await provider.leave(local: local) }
        if case .timedOut = left {
            throw failure("leave returns", "leave(local:) did not return within \(stopWithin)")
        }
        return events.withLockedValue { $0 }
    }
}
