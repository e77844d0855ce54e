import Cohort
import NIOCore

/// How a store replicates a change before the call that made it returns.
public enum ReplicationMode: String, Sendable, Equatable, CaseIterable {
    /// The call returns once every reachable member that should hold the change has applied
    /// it (`.processed` sends). A change that returned is on every copy.
    case synchronous
    /// The call returns once the change is queued for every member. A node that dies right
    /// after the call may take changes with it that no other copy received; failures are
    /// reported through the channel's asynchronous-failure handler.
    case asynchronous
}

/// The outcome of replicating one change.
public struct ReplicationReport: Sendable, CustomStringConvertible {
    /// What the channel reported per member (empty when no other member holds a copy).
    public var send: SendReport

    /// Creates a report.
    public init(send: SendReport = SendReport()) {
        self.send = send
    }

    /// Members that did not apply (or, asynchronously, queue) the change, with the reason:
    /// a codec failure or a missing store on the receiver shows up here as a remote failure.
    public var failures: [(member: MemberID, outcome: MemberOutcome)] { send.failures }
    /// Whether every member reached has the change.
    public var allSucceeded: Bool { send.allSucceeded }
    /// How many members got the change.
    public var replicas: Int { send.succeeded.count }

    public var description: String { "replicated: \(send)" }
}

/// The settings every replicator shares.
struct ReplicatorSettings: Sendable {
    var name: String
    var mode: ReplicationMode = .synchronous
    var sendTimeout: Duration?
    /// How often expiry (and start-up deadlines) are checked, on the store's clock.
    var tick: Duration = .seconds(1)
    /// Entries per state-transfer message.
    var batchSize: Int = 1000
    var settle: Duration = .milliseconds(500)
    var stallTimeout: Duration = .seconds(10)
    var tombstoneRetention: Duration = .seconds(600)
    /// Backups per key (primary/backup stores).
    var backups: Int = 1
    /// Whether a node that fetches a key on a miss becomes its owner.
    var takeOwnership: Bool = false
    /// How long a fetch from another node may take.
    var fetchTimeout: Duration = .seconds(5)
    /// How many copies a write needs before it returns; nil: every current member.
    var concern: WriteConcern?
    /// What a node in the minority of a split may do.
    var splitBrain = SplitBrainGuard(policy: .allowReadsAndWrites, clusterSize: nil)
    /// How often a node exchanges digests with one member (round-robin over the members); nil
    /// turns periodic anti-entropy off (it still runs when a member returns).
    var antiEntropyInterval: Duration? = .seconds(30)

    /// The concern in force.
    var writeConcern: WriteConcern { concern ?? .all }

    /// Options of a change's send under a concern.
    func sendOptions(_ concern: WriteConcern) -> SendOptions {
        var options = sendOptions
        if let timeout = concern.timeout { options.timeout = timeout }
        return options
    }

    var sendOptions: SendOptions {
        var options = mode == .synchronous ? SendOptions.processed : SendOptions.asynchronous
        if let sendTimeout { options.timeout = sendTimeout } else { options.timeout = .zero }
        return options
    }

    /// Options for control messages (requests, transfer batches): always acknowledged.
    var controlOptions: SendOptions {
        var options = SendOptions.processed
        options.timeout = sendTimeout ?? .zero
        return options
    }

}

/// Where a replicator reports what happened (the session managers and maps turn these into
/// listener calls and metrics). Called on the replicator's actor: keep them quick.
struct ReplicaObserver<Entry: ReplicatedEntry>: Sendable {
    var events: @Sendable ([ReplicaEvent<Entry>]) -> Void = { _ in }
    var ready: @Sendable (_ transferred: Int, _ elapsed: Duration) -> Void = { _, _ in }
    var replicated: @Sendable (_ bytes: Int, _ latency: Duration) -> Void = { _, _ in }
    var failure: @Sendable (_ kind: ReplicaFailure, _ count: Int, _ error: any Error) -> Void = { _, _, _ in }
    /// How many keys this node owns now (primary/backup stores).
    var owned: @Sendable (Int) -> Void = { _ in }
}

/// Problems a replicator reports without failing.
enum ReplicaFailure: String, Sendable {
    /// A message from another node could not be decoded.
    case codec
    /// Changes for entries this node never saw were discarded.
    case orphans
    /// A state transfer or a backup copy could not be sent.
    case transfer
    /// Keys were lost: every node holding a copy left.
    case lost
    /// A message from another member was refused (a transfer batch or a fetch reply this node
    /// did not ask that member for).
    case refused
    /// A write did not meet its write concern (the caller got an error).
    case concern
    /// Anti-entropy found the same field written on two nodes from the same version; the
    /// deterministic rule picked one (see ``ReplicatedEntry/conflicts(with:)``).
    case conflict
}

/// The jobs a replicator queued for its `run()` task and has not finished (transfers, copies,
/// location updates), so that a caller can wait until it has nothing left to send.
struct JobCount {
    private(set) var pending = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    mutating func queued() { pending += 1 }

    /// One job finished; returns the waiters to resume when none is left.
    mutating func finished() -> [CheckedContinuation<Void, Never>] {
        pending -= 1
        return pending == 0 ? drain() : []
    }

    mutating func wait(_ continuation: CheckedContinuation<Void, Never>) { waiters.append(continuation) }

    /// Every waiter (when the replicator stops).
    mutating func drain() -> [CheckedContinuation<Void, Never>] {
        defer { waiters.removeAll() }
        return waiters
    }
}

extension AllCopiesState.Settings {
    init(_ settings: ReplicatorSettings) {
        self.init(
            settle: settings.settle.milliseconds,
            stallTimeout: settings.stallTimeout.milliseconds,
            tombstoneRetention: settings.tombstoneRetention.milliseconds,
            antiEntropyInterval: settings.antiEntropyInterval?.milliseconds,
            digestBatch: settings.batchSize
        )
    }
}

extension MessageCodec {
    /// Encodes a value, or throws a ``CohortError/Code/codecFailure`` saying what it was.
    func encodeValue<Value: Encodable>(_ value: Value, what: @autoclosure () -> String) throws -> ByteBuffer {
        do {
            return try encode(value)
        } catch {
            throw CohortError(.codecFailure, "cannot encode \(what()) with the \(name) codec: \(error)", cause: error)
        }
    }

    /// Decodes a value, or throws a ``CohortError/Code/codecFailure`` saying what it was.
    func decodeValue<Value: Decodable>(_ type: Value.Type, from bytes: ByteBuffer, what: @autoclosure () -> String) throws -> Value {
        var bytes = bytes
        do {
            return try decode(type, from: &bytes)
        } catch {
            throw CohortError(.codecFailure, "cannot decode \(what()) with the \(name) codec: \(error)", cause: error)
        }
    }
}
