@testable import CohortCLI
import Foundation
import Testing

/// The nginx configurations the harness generates, and the soak's arithmetic.
@Suite("chaos nginx configuration and soak statistics")
struct NginxConfigurationTests {
    static let upstreams = [
        NginxConfiguration.Upstream(name: "node1", address: "10.231.0.1:8081"),
        NginxConfiguration.Upstream(name: "node2", address: "10.231.0.2:8081"),
        NginxConfiguration.Upstream(name: "node3", address: "10.231.0.3:8081"),
    ]

    static func configuration(_ balancer: ChaosScenario.Balancer) -> NginxConfiguration {
        NginxConfiguration(balancer: balancer, listen: "127.0.0.1:18080", upstreams: upstreams)
    }

    @Test func eachBalancerGetsItsRoutingRule() throws {
        let roundRobin = try #require(Self.configuration(.roundRobin).snippet)
        #expect(!roundRobin.contains("hash"))
        #expect(roundRobin.contains("server 10.231.0.2:8081"))

        let hash = try #require(Self.configuration(.stickyCookieHash).snippet)
        #expect(hash.contains("hash $cookie_COHORT_SESSION consistent;"))

        let route = try #require(Self.configuration(.stickyRoute).snippet)
        #expect(route.contains("map $cookie_COHORT_SESSION $cohort_upstream"))
        #expect(route.contains("~\\.node2$ cohort_node2;"))
        #expect(route.contains("proxy_pass http://$cohort_upstream;"))
        // Node 2's group has node 2 first and the others as backups.
        let group = try #require(route.range(of: "upstream cohort_node2 {"))
        let body = route[group.upperBound...].prefix { $0 != "}" }
        #expect(body.contains("server 10.231.0.2:8081 max_fails"))
        #expect(body.contains("server 10.231.0.1:8081 backup;"))
        #expect(body.contains("server 10.231.0.3:8081 backup;"))

        #expect(Self.configuration(.none).snippet == nil)

        // nginx's retry on the next node stays its default unless turned off.
        #expect(!roundRobin.contains("proxy_next_upstream"))
        var noRetry = Self.configuration(.roundRobin)
        noRetry.retryNextUpstream = false
        #expect(noRetry.snippet?.contains("        proxy_next_upstream off;") == true)
    }

    static var nginx: String? { ChaosBalancer.nginxPath() }

    /// nginx itself accepts every generated file (skipped where nginx is not installed).
    @Test(.enabled(if: nginx != nil, "nginx is not installed (scripts/bootstrap installs it)"))
    func nginxAcceptsTheGeneratedFiles() throws {
        let nginx = try #require(Self.nginx)
        for balancer in [ChaosScenario.Balancer.roundRobin, .stickyCookieHash, .stickyRoute] {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-nginx-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let text = try #require(Self.configuration(balancer).file(directory: directory, asRoot: getuid() == 0))
            try text.write(toFile: "\(directory)/nginx.conf", atomically: true, encoding: .utf8)
            let result = ChaosProcess.run(nginx, ["-t", "-q", "-p", directory, "-c", "\(directory)/nginx.conf"])
            #expect(result.status == 0, "\(balancer): \(result.output)")
        }
    }

    @Test func percentilesAndSlope() {
        let values = (1...100).map(Double.init)
        #expect(SoakStatistics.percentile(values, 50) == 50)
        #expect(SoakStatistics.percentile(values, 99) == 99)
        #expect(SoakStatistics.percentile([], 50) == nil)
        // 2 KiB per minute of growth plus noise that cancels out.
        var points: [(x: Double, y: Double)] = []
        for i in 0..<10 {
            let noise: Double = i % 2 == 0 ? 1 : -1
            points.append((x: Double(i), y: 1000 + 2 * Double(i) + noise))
        }
        let slope = SoakStatistics.slope(points) ?? .nan
        #expect(abs(slope - 2) < 0.3)
        #expect(SoakStatistics.slope([(x: 1, y: 1)]) == nil)
    }

    @Test func residentMemoryAndMetricsAreParsed() {
        let status = "Name:\tcohort\nVmPeak:\t  900 kB\nVmRSS:\t   51234 kB\nThreads:\t9\n"
        #expect(SoakStatistics.residentKiB(status: status) == 51234)
        #expect(SoakStatistics.residentKiB(status: "Name: x\n") == nil)
        let metrics = """
            # TYPE cohort_sessions_lost counter
            cohort_sessions_lost{manager="demo"} 2
            cohort_sessions_lost{manager="other"} 3
            cohort_sessions_lost_not_this 100
            cohort_sessions_lostx 100
            cohort_messages_sent 7
            """
        #expect(SoakStatistics.metricSum(metrics, name: "cohort_sessions_lost") == 5)
        #expect(SoakStatistics.metricSum(metrics, name: "cohort_messages_sent") == 7)
    }
}
