/// Whether a node sees enough members to act (``ClusterConfiguration/minimumMembers``).
import Logging
import Metrics
import NIOConcurrencyHelpers

public struct QuorumStatus: Sendable, Equatable, CustomStringConvertible {
    /// Whether ``members`` reaches ``minimum``.
    public var inQuorum: Bool
    /// The members in the node's view, counting the node itself.
    public var members: Int
    /// The configured minimum.
    public var minimum: Int

    /// Creates a status.
    public init(members: Int, minimum: Int) {
        self.members = members
        self.minimum = minimum
        self.inQuorum = members >= minimum
    }

    /// `quorum-lost N/M` or `quorum-regained N/M`, as `cohort node` prints a change.
    public var description: String {
        "\(inQuorum ? "quorum-regained" : "quorum-lost") \(members)/\(minimum)"
    }
}

/// Follows the view's size against the minimum and tells subscribers when it crosses it.
final class QuorumTracker: Sendable {
    struct State {
        var status: QuorumStatus
        var next = 0
        var subscribers: [Int: AsyncStream<QuorumStatus>.Continuation] = [:]
        var finished = false
    }

    let minimum: Int
    private let state: NIOLockedValueBox<State>
    private let gauge: Gauge

    init(minimum: Int, node: String, metricsFactory: any MetricsFactory) {
        self.minimum = minimum
        self.gauge = Gauge(label: "cohort.quorum", dimensions: [("node", node)], factory: metricsFactory)
        self.state = NIOLockedValueBox(State(status: QuorumStatus(members: 1, minimum: minimum)))
        gauge.record(minimum <= 1 ? 1 : 0)
    }

    var status: QuorumStatus { state.withLockedValue { $0.status } }

    /// Records the view's size (counting the local node); tells subscribers if quorum flipped.
    func update(members: Int, logger: Logger) {
        let next = QuorumStatus(members: members, minimum: minimum)
        let changed: (QuorumStatus, [AsyncStream<QuorumStatus>.Continuation])? = state.withLockedValue { state in
            let flipped = state.status.inQuorum != next.inQuorum
            state.status = next
            return flipped ? (next, Array(state.subscribers.values)) : nil
        }
        guard let (status, continuations) = changed else { return }
        gauge.record(status.inQuorum ? 1 : 0)
        if status.inQuorum {
            logger.info("\(status): \(members) members, at least \(minimum) needed")
        } else {
            logger.warning("\(status): only \(members) members seen, at least \(minimum) needed; the node is not in quorum")
        }
        for continuation in continuations { continuation.yield(status) }
    }

    func subscribe() -> AsyncStream<QuorumStatus> {
        let (stream, continuation) = AsyncStream.makeStream(of: QuorumStatus.self, bufferingPolicy: .bufferingNewest(64))
        let finished: Bool = state.withLockedValue { state in
            guard !state.finished else { return true }
            let id = state.next
            state.next += 1
            state.subscribers[id] = continuation
            continuation.yield(state.status)
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLockedValue { $0.subscribers.removeValue(forKey: id) }
            }
            return false
        }
        if finished { continuation.finish() }
        return stream
    }

    func finish() {
        let continuations = state.withLockedValue { state -> [AsyncStream<QuorumStatus>.Continuation] in
            state.finished = true
            defer { state.subscribers.removeAll() }
            return Array(state.subscribers.values)
        }
        for continuation in continuations { continuation.finish() }
    }
}

extension GroupChannel {
    /// Whether the node sees at least ``ClusterConfiguration/minimumMembers`` members, itself
    /// included. Always true with the default minimum of 1.
    ///
    /// A node that is not in quorum keeps running and keeps looking for members; what it should
    /// not do meanwhile (serve, accept writes) is the application's decision — ``quorumChanges()``
    /// tells when it changes, and `ClusterNode` reports not-ready.
    public var isInQuorum: Bool { quorumTracker.status.inQuorum }

    /// The current quorum status.
    public var quorum: QuorumStatus { quorumTracker.status }

    /// The current quorum status, then every change (each call makes a new subscription). The
    /// stream ends when the channel stops.
    public func quorumChanges() -> AsyncStream<QuorumStatus> {
        quorumTracker.subscribe()
    }
}
