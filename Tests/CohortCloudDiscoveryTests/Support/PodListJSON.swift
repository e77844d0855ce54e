import Cohort
import CohortDiscoveryKubernetes
import CohortTestKit
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The recorded PodList answers in `Fixtures/` (see the README there for their origin).
enum Fixture {
    static func data(_ name: String) throws -> Data {
        guard let url = Bundle.module.resourceURL?.appendingPathComponent("Fixtures/\(name)"),
            let data = FileManager.default.contents(atPath: url.path)
        else { throw CohortError(.notFound, "no fixture \(name)") }
        return data
    }

    static func text(_ name: String) throws -> String { String(decoding: try data(name), as: UTF8.self) }

    static func podList(_ name: String) throws -> KubernetesPodList { try KubernetesPodList.decode(Array(try data(name))) }
}

/// Writes PodList JSON for tests: pods with a name, an IP, a phase, readiness, labels and
/// named container ports.
struct PodSpec: Sendable {
    var name: String
    var ip: String?
    var phase = "Running"
    var ready = true
    var labels: [String: String] = ["app": "cohort"]
    var ports: [String: Int] = [:]
    var terminating = false

    var json: [String: Any] {
        var metadata: [String: Any] = ["name": name, "namespace": "demo", "labels": labels, "uid": UUID().uuidString.lowercased()]
        if terminating { metadata["deletionTimestamp"] = "2025-01-01T00:00:00Z" }
        var status: [String: Any] = [
            "phase": phase,
            "conditions": [["type": "Ready", "status": ready ? "True" : "False"], ["type": "PodScheduled", "status": "True"]],
        ]
        if let ip { status["podIP"] = ip }
        let portList = ports.sorted { $0.key < $1.key }.map { ["name": $0.key, "containerPort": $0.value, "protocol": "TCP"] as [String: Any] }
        return [
            "metadata": metadata,
            "spec": ["containers": [["name": "cohort", "ports": portList]]],
            "status": status,
        ]
    }
}

enum PodListJSON {
    /// A PodList of some pods.
    static func list(_ pods: [PodSpec]) -> String {
        render(["kind": "PodList", "apiVersion": "v1", "metadata": ["resourceVersion": "1"], "items": pods.map(\.json)])
    }

    /// The pods of a PodList JSON whose labels match an equality selector (`a=b,c!=d`), as the
    /// API server filters them; nil selector keeps all.
    static func filter(_ json: String, selector: String?) -> String {
        guard let selector, !selector.isEmpty,
            var object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any],
            let items = object["items"] as? [[String: Any]]
        else { return json }
        let requirements = selector.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        object["items"] = items.filter { item in
            let labels = (item["metadata"] as? [String: Any])?["labels"] as? [String: String] ?? [:]
            return requirements.allSatisfy { requirement in
                if let range = requirement.range(of: "!=") {
                    return labels[String(requirement[..<range.lowerBound])] != String(requirement[range.upperBound...])
                }
                let parts = requirement.replacingOccurrences(of: "==", with: "=").split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { return labels[requirement] != nil }
                return labels[parts[0]] == parts[1]
            }
        }
        return render(object)
    }

    static func render(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

/// Events a provider reported, recorded from its run task.
final class EventRecorder: Sendable {
    private let events = NIOLockedValueBox<[DiscoveryEvent]>([])

    var all: [DiscoveryEvent] { events.withLockedValue { $0 } }

    /// The candidate lists, in order.
    var candidateLists: [[Endpoint]] {
        all.compactMap { if case .candidates(let list) = $0 { return list } else { return nil } }
    }

    var latest: [Endpoint]? { candidateLists.last }

    func record(_ event: DiscoveryEvent) { events.withLockedValue { $0.append(event) } }

    /// Waits until the latest candidate list is the expected one.
    func waitFor(_ expected: [Endpoint], timeout: Duration = .seconds(30)) async -> Bool {
        await eventually(timeout: timeout, poll: .milliseconds(10)) { self.latest == expected }
    }
}

/// Runs a provider until the body ends, recording its events.
func withRunning<T>(_ provider: any DiscoveryProvider, local: Member, _ body: (EventRecorder) async throws -> T) async throws -> T {
    let recorder = EventRecorder()
    let task = Task { try await provider.run(local: local) { recorder.record($0) } }
    defer { task.cancel() }
    let result = try await body(recorder)
    task.cancel()
    _ = await task.result
    return result
}

/// A member for discovery tests.
func localMember(_ endpoint: Endpoint = Endpoint(host: "127.0.0.1", port: 4001), name: String = "self") -> Member {
    Member(name: name, endpoint: endpoint, startTime: 0)
}

/// A logger that records into a capture.
func captured(_ capture: LogCapture) -> Logger { capture.logger("cohort.discovery.test") }
