import Cohort
import Logging
import Metrics

/// What a replicator refuses from other members, counted and logged at a limited rate.
///
/// - A message body (a change, a copy, a transfer batch) that does not decode is counted in
///   `cohort.decode_failures` (dimensions `type`: the message, `store`).
/// - A message that decodes but is refused (a transfer batch or fetch reply this node did not
///   ask that member for) is counted in `cohort.replication.refused` (dimension `store`).
///
/// Either way at most a few warnings per interval reach the log (see ``CohortCore/LogRateLimit``),
/// so a peer cannot flood it.
final class ReplicaInputLog: Sendable {
    let store: String
    private let log: MalformedInputLog

    init(store: String, logger: Logger, clock: any CohortClock) {
        self.store = store
        self.log = MalformedInputLog(logger: logger, clock: clock)
    }

    /// A message body from `sender` did not decode.
    func decodeFailed(_ type: String, from sender: Member, _ error: any Error) {
        Counter(label: "cohort.decode_failures", dimensions: [("type", type), ("store", store)]).increment()
        log.record(type, "store \(store): refused a \(type) from \(sender.name): \(error)")
    }

    /// A message was refused: `what` says which and from whom.
    func refused(_ what: String) {
        Counter(label: "cohort.replication.refused", dimensions: [("store", store)]).increment()
        log.record("refused", "store \(store): refused \(what)")
    }

    /// How many inputs of a kind were counted (message type names, or `refused`).
    func count(_ kind: String) -> Int { log.count(kind) }
}
