import Foundation

/// The soak's load: clients that write to their sessions at a fixed total rate (paced, not as fast
/// as possible), rotating over the nodes, each request checked as it comes back by the chaos
/// checker's per-session rules.
final class SoakLoad: @unchecked Sendable {
    /// What the load saw.
    struct Outcome: Sendable {
        var sessions: [ChaosChecker.SessionCheck] = []
        var cookies: [String?] = []
        /// Request latencies in seconds, by minute of the soak.
        var latencyByMinute: [[Double]] = []
        var acknowledged = 0
        var failed = 0
        /// Failed requests by error text.
        var errors: [String: Int] = [:]
        var findings: [String] = []
    }

    let targets: [ChaosClient.Target]
    let clients: Int
    let rate: Double
    private let lock = NSLock()
    private var acknowledged = 0
    private var failed = 0

    init(targets: [ChaosClient.Target], clients: Int, rate: Double) {
        self.targets = targets
        self.clients = clients
        self.rate = rate
    }

    func progress() -> (acknowledged: Int, failed: Int) { lock.withLock { (acknowledged, failed) } }

    /// Closed-loop clients (no pause) at 2, 4, 8, 16, 32 concurrent sessions, every step run
    /// (one noisy step does not end the ramp); the best acknowledged writes per second.
    static func ramp(targets: [ChaosClient.Target], stepSeconds: Double) async -> Double {
        var best = 0.0
        for concurrency in [2, 4, 8, 16, 32] {
            let stop = ChaosStopFlag()
            let clock = ChaosClock()
            let connections = (0..<concurrency).map { _ in ChaosHTTP(connectTimeout: 2, failFast: true) }
            let acks = await withTaskGroup(of: Int.self) { group in
                for client in 0..<concurrency {
                    let worker = ChaosClient(id: client, targets: targets, http: connections[client], timeout: 10, pause: 0)
                    group.addTask { await worker.run(clock: clock, stop: stop).requests.filter(\.acknowledged).count }
                }
                try? await Task.sleep(for: .milliseconds(Int(stepSeconds * 1000)))
                stop.stop()
                return await group.reduce(0, +)
            }
            let elapsed = clock.now()
            for connection in connections { await connection.shutdown() }
            let rate = Double(acks) / max(elapsed, 0.001)
            Console.line("soak: ramp \(concurrency) clients: \(Int(rate)) writes/s")
            best = max(best, rate)
        }
        return best
    }

    func run(seconds: Double, clock: ChaosClock) async -> Outcome {
        let interval = Double(clients) / rate
        let results = await withTaskGroup(of: (Int, ChaosChecker.SessionCheck, String?, [[Double]], [String: Int], [String]).self) { group in
            for client in 0..<clients {
                group.addTask {
                    await self.client(client, interval: interval, seconds: seconds, clock: clock)
                }
            }
            var all: [(Int, ChaosChecker.SessionCheck, String?, [[Double]], [String: Int], [String])] = []
            for await result in group { all.append(result) }
            return all.sorted { $0.0 < $1.0 }
        }
        var outcome = Outcome()
        for (_, check, cookie, latencies, errors, findings) in results {
            outcome.sessions.append(check)
            outcome.cookies.append(cookie)
            for (minute, values) in latencies.enumerated() {
                while outcome.latencyByMinute.count <= minute { outcome.latencyByMinute.append([]) }
                outcome.latencyByMinute[minute] += values
            }
            outcome.errors.merge(errors, uniquingKeysWith: +)
            outcome.findings += findings.prefix(10)
        }
        (outcome.acknowledged, outcome.failed) = progress()
        return outcome
    }

    private func client(_ id: Int, interval: Double, seconds: Double, clock: ChaosClock)
        async -> (Int, ChaosChecker.SessionCheck, String?, [[Double]], [String: Int], [String])
    {
        let http = ChaosHTTP(connectTimeout: 2, failFast: true)
        var check = ChaosChecker.SessionCheck(client: id)
        var cookie: String?
        var latencies: [[Double]] = []
        var errors: [String: Int] = [:]
        var findings: [String] = []
        var next = clock.now() + interval * Double(id) / Double(clients)
        var sequence = 0
        while next < seconds {
            let wait = next - clock.now()
            if wait > 0 { try? await Task.sleep(for: .milliseconds(Int(wait * 1000))) }
            let target = targets[(id + sequence) % targets.count]
            let start = clock.now()
            let answer = await http.request("POST", target.baseURL + "/counter", cookie: cookie, timeout: 10)
            let end = clock.now()
            var record = ChaosHistory.Request(client: id, sequence: sequence, start: start, end: end, status: answer.status, target: target.name)
            sequence += 1
            if let value = answer.setCookie { cookie = value.isEmpty ? nil : value }
            if answer.status == 200, answer.error == nil,
               let body = try? JSONDecoder().decode(SampleApp.CounterResponse.self, from: answer.body) {
                record.count = body.count
                record.node = body.node
                record.session = body.session
                lock.withLock { acknowledged += 1 }
            } else {
                let text = answer.error ?? "status \(answer.status ?? 0)"
                record.error = text
                errors[text, default: 0] += 1
                lock.withLock { failed += 1 }
            }
            check.on(record) { if findings.count < 20 { findings.append($0) } }
            let minute = Int(start / 60)
            while latencies.count <= minute { latencies.append([]) }
            latencies[minute].append(end - start)
            next += interval
            // Behind by more than a second (a stall): do not burst to catch up.
            if next < clock.now() - 1 { next = clock.now() }
        }
        await http.shutdown()
        return (id, check, cookie, latencies, errors, findings)
    }

    /// Every session read on every node, after the load.
    func finalReads(into outcome: inout Outcome, nodes: [ChaosClient.Target]) async {
        let http = ChaosHTTP(connectTimeout: 2, failFast: true)
        for index in outcome.sessions.indices {
            guard let cookie = outcome.cookies[index] else { continue }
            var reads: [ChaosHistory.FinalRead] = []
            for node in nodes {
                let answer = await http.get(node.baseURL + "/counter/current", cookie: cookie, timeout: 5)
                var read = ChaosHistory.FinalRead(client: index, node: node.name)
                if answer.status == 200, let body = try? JSONDecoder().decode(SampleApp.CounterResponse.self, from: answer.body) {
                    read.count = body.count
                    read.session = body.session
                } else {
                    read.error = answer.error ?? "status \(answer.status ?? 0)"
                }
                reads.append(read)
            }
            var findings = outcome.findings
            outcome.sessions[index].onFinalReads(reads) { if findings.count < 40 { findings.append($0) } }
            outcome.findings = findings
        }
        await http.shutdown()
    }
}
