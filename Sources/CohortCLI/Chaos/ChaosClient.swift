import Foundation

/// Seconds on a monotonic clock since the run started, shared by clients and nemesis.
struct ChaosClock: Sendable {
    let origin = ContinuousClock.now

    func now() -> Double {
        let elapsed = ContinuousClock.now - origin
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}

/// Set once to stop the clients.
final class ChaosStopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    var isStopped: Bool { lock.withLock { stopped } }
    func stop() { lock.withLock { stopped = true } }
}

/// One user: increments the counter in its session (`POST /counter`) again and again over one
/// keep-alive connection (per host), keeping the session cookie as a browser would, and records
/// every request. Requests are never retried by the client.
struct ChaosClient: Sendable {
    struct Target: Sendable {
        /// `balancer` or the node's name.
        var name: String
        var baseURL: String
    }

    let id: Int
    /// One target (the balancer), or every node (no balancer: the client rotates over them).
    let targets: [Target]
    let http: ChaosHTTP
    /// Seconds a request may take.
    let timeout: Double
    /// Seconds between a client's requests.
    let pause: Double
    /// The increment's method: `POST` (default) or `GET`.
    var method = "POST"
    /// A node that failed at the transport level is skipped for this long (direct mode).
    let avoidFailedNode: Double = 1

    /// Runs until `stop`; returns the requests and the session cookie it ended with.
    func run(clock: ChaosClock, stop: ChaosStopFlag) async -> (requests: [ChaosHistory.Request], cookie: String?) {
        var cookie: String?
        var requests: [ChaosHistory.Request] = []
        var avoidUntil = [Double](repeating: -1, count: targets.count)
        var turn = id
        var sequence = 0
        while !stop.isStopped && !Task.isCancelled {
            // Rotate over the targets, skipping recently failed ones while another is left.
            let now = clock.now()
            var index = turn % targets.count
            for step in 0..<targets.count where avoidUntil[(turn + step) % targets.count] <= now {
                index = (turn + step) % targets.count
                break
            }
            turn = index + 1
            let target = targets[index]
            let start = clock.now()
            let answer = await http.request(method, target.baseURL + "/counter", cookie: cookie, timeout: timeout)
            var record = ChaosHistory.Request(client: id, sequence: sequence, start: start, end: clock.now(), target: target.name)
            sequence += 1
            record.status = answer.status
            if let value = answer.setCookie { cookie = value.isEmpty ? nil : value }
            if let error = answer.error {
                record.error = error
                avoidUntil[index] = record.end + avoidFailedNode
            } else if answer.status == 200 {
                if let body = try? JSONDecoder().decode(SampleApp.CounterResponse.self, from: answer.body) {
                    record.count = body.count
                    record.node = body.node
                    record.session = body.session
                } else {
                    record.error = "unreadable body: \(String(decoding: answer.body.prefix(120), as: UTF8.self))"
                }
            } else {
                record.error = "status \(answer.status ?? 0): \(String(decoding: answer.body.prefix(120), as: UTF8.self))"
            }
            requests.append(record)
            if pause > 0 { try? await Task.sleep(for: .milliseconds(Int(pause * 1000))) }
        }
        return (requests, cookie)
    }
}
