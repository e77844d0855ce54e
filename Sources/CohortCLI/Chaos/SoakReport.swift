import Foundation

/// The soak's figures (written as soak.json and printed).
struct SoakReport: Codable, Sendable {
    struct Sample: Codable, Sendable {
        var at: Double
        var residentKiB: [String: Int]
    }

    struct Minute: Codable, Sendable {
        var minute: Int
        var requests: Int
        var p50Milliseconds: Double
        var p99Milliseconds: Double
    }

    /// The product's counters of lost messages and changes (Prometheus names), summed over nodes.
    static let lossCounters = [
        "cohort_send_async_failures", "cohort_transport_async_failures",
        "cohort_sessions_dropped_changes", "cohort_sessions_lost", "cohort_sessions_codec_failures",
    ]
    static let counters = lossCounters + ["cohort_messages_sent", "cohort_messages_received"]

    var maximumRate: Double
    var rate: Double
    var minutes: Double
    var samples: [Sample]
    /// Memory growth after warm-up (the first quarter), KiB per minute, by node.
    var slopeKiBPerMinute: [String: Double]
    var acknowledged: Int
    var failed: Int
    var errors: [String: Int]
    /// Acknowledged writes lost, applied twice, or reset sessions (must be 0).
    var writesLost: Int
    var lost: Int
    var appliedTwice: Int
    var resets: Int
    /// Growth of the product's loss counters during the steady load (must be 0).
    var messagesLost: Double
    var messagesSent: Double
    var messagesReceived: Double
    var latency: [Minute]
    var findings: [String]

    init(maximumRate: Double, rate: Double, minutes: Double, nodes: [String], samples: [Sample], outcome: SoakLoad.Outcome,
         metricsBefore: [String: Double], metricsAfter: [String: Double]) {
        self.maximumRate = maximumRate
        self.rate = rate
        self.minutes = minutes
        self.samples = samples
        let warm = minutes * 60 / 4
        var slopes: [String: Double] = [:]
        for node in nodes {
            let points = samples.filter { $0.at >= warm }.compactMap { sample in
                sample.residentKiB[node].map { (x: sample.at / 60, y: Double($0)) }
            }
            if let slope = SoakStatistics.slope(points) { slopes[node] = slope }
        }
        slopeKiBPerMinute = slopes
        acknowledged = outcome.acknowledged
        failed = outcome.failed
        errors = outcome.errors
        lost = outcome.sessions.map(\.lost).reduce(0, +)
        appliedTwice = outcome.sessions.map(\.appliedTwice).reduce(0, +)
        resets = outcome.sessions.map(\.resets).reduce(0, +)
        writesLost = lost + appliedTwice + resets + outcome.sessions.map(\.finalReadFailures).reduce(0, +)
        func delta(_ name: String) -> Double { (metricsAfter[name] ?? 0) - (metricsBefore[name] ?? 0) }
        messagesLost = Self.lossCounters.map(delta).reduce(0, +)
        messagesSent = delta("cohort_messages_sent")
        messagesReceived = delta("cohort_messages_received")
        latency = outcome.latencyByMinute.enumerated().map { minute, values in
            Minute(minute: minute, requests: values.count,
                   p50Milliseconds: (SoakStatistics.percentile(values, 50) ?? 0) * 1000,
                   p99Milliseconds: (SoakStatistics.percentile(values, 99) ?? 0) * 1000)
        }
        findings = outcome.findings
    }

    /// Prints the summary and returns self.
    func printed() -> SoakReport {
        Console.line("soak: latency per minute (ms):")
        for minute in latency {
            Console.line(String(format: "soak:   minute %3d  %7d requests  p50 %7.2f  p99 %7.2f", minute.minute + 1, minute.requests, minute.p50Milliseconds, minute.p99Milliseconds))
        }
        if let first = latency.first, let last = latency.last, first.p99Milliseconds > 0 {
            Console.line(String(format: "soak: latency drift: p50 %.2f → %.2f ms, p99 %.2f → %.2f ms (×%.2f)", first.p50Milliseconds, last.p50Milliseconds,
                                first.p99Milliseconds, last.p99Milliseconds, last.p99Milliseconds / first.p99Milliseconds))
        }
        for (node, slope) in slopeKiBPerMinute.sorted(by: { $0.key < $1.key }) {
            let last = samples.last?.residentKiB[node] ?? 0
            Console.line(String(format: "soak: %@ resident %.1f MiB at the end, slope after warm-up %+.1f KiB/min", node, Double(last) / 1024, slope))
        }
        Console.line("soak: \(acknowledged) writes acknowledged, \(failed) failed \(errors.isEmpty ? "" : "\(errors)")")
        Console.line("soak: writes lost \(writesLost) (lost \(lost), applied twice \(appliedTwice), resets \(resets)); messages lost \(Int(messagesLost)) (sent \(Int(messagesSent)), received \(Int(messagesReceived)))")
        for finding in findings.prefix(10) { Console.line("soak:   \(finding)") }
        return self
    }
}
