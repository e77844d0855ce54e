import CohortCore
import Metrics

/// The failure detector's swift-metrics instruments, labelled with the node's name (`node`):
///
/// | label | type | what |
/// |---|---|---|
/// | `cohort.failure_detector.suspicions` | counter | members that became suspects |
/// | `cohort.failure_detector.recoveries` | counter | suspects that answered (or rejoined) |
/// | `cohort.failure_detector.removals` | counter | suspects declared dead and removed |
/// | `cohort.failure_detector.probes` | counter, `outcome` (`alive`, `refused`, `timed_out`) | probes by outcome |
/// | `cohort.failure_detector.probe_round_trip` | timer | how long each probe took, on the detector's clock |
///
/// Built when the detector starts (it learns the node's name from its context then).
struct FailureDetectorMetrics: Sendable {
    let suspicions: Counter
    let recoveries: Counter
    let removals: Counter
    let probesAlive: Counter
    let probesRefused: Counter
    let probesTimedOut: Counter
    let probeRoundTrip: Timer

    init(node: String, factory: (any MetricsFactory)?) {
        let factory = factory ?? MetricsSystem.factory
        let node = ("node", node)
        suspicions = Counter(label: "cohort.failure_detector.suspicions", dimensions: [node], factory: factory)
        recoveries = Counter(label: "cohort.failure_detector.recoveries", dimensions: [node], factory: factory)
        removals = Counter(label: "cohort.failure_detector.removals", dimensions: [node], factory: factory)
        probesAlive = Counter(label: "cohort.failure_detector.probes", dimensions: [node, ("outcome", "alive")], factory: factory)
        probesRefused = Counter(label: "cohort.failure_detector.probes", dimensions: [node, ("outcome", "refused")], factory: factory)
        probesTimedOut = Counter(label: "cohort.failure_detector.probes", dimensions: [node, ("outcome", "timed_out")], factory: factory)
        probeRoundTrip = Timer(label: "cohort.failure_detector.probe_round_trip", dimensions: [node], factory: factory)
    }

    /// Counts what the state decided.
    func record(_ actions: [FailureDetectorState.Action]) {
        for action in actions {
            switch action {
            case .publishSuspected: suspicions.increment()
            case .publishRecovered: recoveries.increment()
            case .publishRemoved: removals.increment()
            case .probe: break
            }
        }
    }

    /// Counts a finished probe and records its round trip.
    func probed(_ result: FailureDetectorState.ProbeResult, took elapsed: Duration) {
        switch result {
        case .alive: probesAlive.increment()
        case .refused: probesRefused.increment()
        case .timedOut: probesTimedOut.increment()
        }
        probeRoundTrip.record(duration: elapsed)
    }
}
