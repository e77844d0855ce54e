import Cohort
import Foundation
import Testing

@Suite("Configuration")
struct ConfigurationTests {
    func write(_ json: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-config-\(UUID().uuidString).json").path
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func loadsFileThenEnvironmentOverrides() throws {
        let path = try write("""
            {"name": "a", "listen": "127.0.0.1:4100", "members": ["127.0.0.1:4101", "127.0.0.1:4102"],
             "codec": "json", "heartbeatIntervalMs": 100, "missingAfterMs": 700, "queuePolicy": "failFast",
             "maxFrameSize": 65536, "metadata": {"route": "r1"}}
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let config = try ClusterConfiguration.load(file: path, environment: ["COHORT_NAME": "from-env", "COHORT_MISSING_AFTER_MS": "900"])
        #expect(config.name == "from-env")
        #expect(config.listen == Endpoint(host: "127.0.0.1", port: 4100))
        #expect(config.members.map(\.port) == [4101, 4102])
        #expect(config.codec == "json")
        #expect(config.membership.heartbeatInterval == .milliseconds(100))
        #expect(config.membership.missingAfter == .milliseconds(900))
        #expect(config.dispatch.policy == .failFast)
        #expect(config.wire.maxFrameSize == 65536)
        #expect(config.metadata == ["route": "r1"])
    }

    @Test func unknownKeyIsNamedWithAHint() throws {
        let path = try write(#"{"heartbeatInterval": 100}"#)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: CohortError.self) { try ClusterConfiguration.load(file: path, environment: [:]) }
        #expect(error?.code == .badConfiguration)
        #expect(error?.message.contains("'heartbeatInterval'") == true)
        #expect(error?.message.contains("heartbeatIntervalMs") == true)
    }

    @Test func wrongTypesAndValuesNameTheKey() throws {
        for (json, key) in [
            (#"{"maxFrameSize": "big"}"#, "maxFrameSize"),
            (#"{"listen": "nowhere"}"#, "listen"),
            (#"{"queuePolicy": "drop"}"#, "queuePolicy"),
            (#"{"missingAfterMs": 100, "heartbeatIntervalMs": 200}"#, "missingAfterMs"),
            (#"{"interceptors": ["encrypt"]}"#, "interceptors"),
            (#"{"maxFrameSize": 10}"#, "maxFrameSize"),
        ] {
            let path = try write(json)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let error = #expect(throws: CohortError.self) { try ClusterConfiguration.load(file: path, environment: [:]) }
            #expect(error?.message.contains(key) == true, "\(json): \(error?.message ?? "")")
        }
    }

    @Test func badJSONAndMissingFileAreClear() throws {
        let path = try write("{not json")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: CohortError.self) { try ClusterConfiguration.load(file: path, environment: [:]) }
        #expect(error?.message.contains("not valid JSON") == true)
        let missing = #expect(throws: CohortError.self) { try ClusterConfiguration.load(file: "/nonexistent/cohort.json", environment: [:]) }
        #expect(missing?.message.contains("cannot read") == true)
    }

    @Test func handlersOnEventLoopIsABooleanFromFileOrEnvironment() throws {
        #expect(ClusterConfiguration().wire.handlersOnEventLoop)
        let path = try write(#"{"handlersOnEventLoop": false}"#)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try ClusterConfiguration.load(file: path, environment: [:]).wire.handlersOnEventLoop == false)
        let env = try ClusterConfiguration.load(file: path, environment: ["COHORT_HANDLERS_ON_EVENT_LOOP": "true"])
        #expect(env.wire.handlersOnEventLoop)
        let error = #expect(throws: CohortError.self) {
            try ClusterConfiguration.load(file: nil, environment: ["COHORT_HANDLERS_ON_EVENT_LOOP": "maybe"])
        }
        #expect(error?.message.contains("handlersOnEventLoop") == true && error?.message.contains("true or false") == true)
    }

    @Test func environmentNamesFollowTheKeys() {
        #expect(ClusterConfiguration.environmentName(for: "heartbeatIntervalMs") == "COHORT_HEARTBEAT_INTERVAL_MS")
        #expect(ClusterConfiguration.environmentName(for: "name") == "COHORT_NAME")
    }

    @Test func unknownPluginIdsAreClear() throws {
        var config = ClusterConfiguration(name: "x", listen: Endpoint(host: "127.0.0.1", port: 0))
        config.codec = "protobuf"
        let error = #expect(throws: CohortError.self) { try GroupChannel(configuration: config, registry: PluginRegistry()) }
        #expect(error?.code == .pluginNotFound)
        #expect(error?.message.contains("codec.binary") == true)
    }
}
