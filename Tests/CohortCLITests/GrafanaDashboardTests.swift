import CohortTestKit
import Foundation
import Testing

/// docs/deploy/grafana-dashboard.json queries only metrics that `cohort serve` exposes on
/// /metrics, and docs/metrics.md lists every Cohort metric it exposes.
@Suite("Grafana dashboard and metric names", .timeLimit(.minutes(3)))
struct GrafanaDashboardTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The metric families of a Prometheus text exposition: name → type.
    static func families(_ exposition: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in exposition.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            if parts.count >= 4 { result[String(parts[2])] = String(parts[3]) }
        }
        return result
    }

    /// Every `cohort_…` name in the dashboard's queries.
    static func queriedMetrics() throws -> Set<String> {
        let data = try Data(contentsOf: repository.appendingPathComponent("docs/deploy/grafana-dashboard.json"))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var expressions: [String] = []
        for panel in dashboard["panels"] as? [[String: Any]] ?? [] {
            for target in panel["targets"] as? [[String: Any]] ?? [] {
                if let expr = target["expr"] as? String { expressions.append(expr) }
            }
        }
        for variable in (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? [] {
            if let query = variable["query"] as? String { expressions.append(query) }
        }
        #expect(expressions.count >= 10)
        let pattern = try NSRegularExpression(pattern: "cohort_[a-z0-9_]+")
        var names = Set<String>()
        for expression in expressions {
            for match in pattern.matches(in: expression, range: NSRange(expression.startIndex..., in: expression)) {
                names.insert(String(expression[Range(match.range, in: expression)!]))
            }
        }
        return names
    }

    @Test(.enabled(if: NodeProcessTests.binary != nil, "the cohort executable is not built next to the tests (run swift build first)"))
    func everyQueriedMetricIsOneTheNodesExpose() async throws {
        let pair = try await ServePair(exe: try #require(NodeProcessTests.binary), prefix: "met")
        defer { pair.stop() }
        var cookie: String?
        _ = try await ServePair.get(pair.httpPorts[0], "/counter", cookie: &cookie)
        _ = try await ServePair.get(pair.httpPorts[1], "/counter", cookie: &cookie)
        let metrics = try await ServePair.get(pair.httpPorts[0], "/metrics", cookie: &cookie)
        #expect(metrics.status == 200)
        let exposed = Self.families(metrics.body)
        #expect(exposed.keys.contains("cohort_sessions_active"), "\(metrics.body)")

        let queried = try Self.queriedMetrics()
        #expect(!queried.isEmpty)
        for name in queried.sorted() {
            var known = exposed[name] != nil
            for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
                known = known || exposed[String(name.dropLast(suffix.count))] == "histogram"
            }
            #expect(known, "the dashboard queries \(name), which /metrics does not expose")
        }

        // docs/metrics.md names every Cohort metric family a serving node exposes.
        let guide = try String(contentsOf: Self.repository.appendingPathComponent("docs/metrics.md"), encoding: .utf8)
        for name in exposed.keys.sorted() where name.hasPrefix("cohort_") {
            #expect(guide.contains("`\(name)`"), "docs/metrics.md does not list \(name)")
        }
    }

    @Test func theDashboardIsGrafanaJSONWithADataSourceVariable() throws {
        let data = try Data(contentsOf: Self.repository.appendingPathComponent("docs/deploy/grafana-dashboard.json"))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(dashboard["uid"] as? String == "cohort-cluster")
        #expect(dashboard["schemaVersion"] as? Int != nil)
        let variables = (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        #expect(variables.contains { $0["type"] as? String == "datasource" && $0["query"] as? String == "prometheus" })
        var ids = Set<Int>()
        for panel in dashboard["panels"] as? [[String: Any]] ?? [] {
            let id = try #require(panel["id"] as? Int)
            #expect(ids.insert(id).inserted, "panel id \(id) twice")
            #expect(panel["gridPos"] is [String: Any])
            #expect(!(panel["targets"] as? [[String: Any]] ?? []).isEmpty, "\(panel["title"] ?? "?") has no query")
        }
    }
}
