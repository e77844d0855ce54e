import Foundation

extension ClusterConfiguration {
    /// The keys a configuration file may hold, with the environment variable that overrides each.
    ///
    /// Environment names are `COHORT_` plus the key in upper snake case (`heartbeatIntervalMs` →
    /// `COHORT_HEARTBEAT_INTERVAL_MS`).
    public static let keys: [String] = [
        "name", "listen", "members", "domain", "metadata", "transport", "codec", "discovery",
        "discoverySettings", "transportSettings", "plugins", "maxFrameSize", "connectTimeoutMs", "handlersOnEventLoop",
        "heartbeatIntervalMs", "missingAfterMs", "retryIntervalMs", "handshakeTimeoutMs",
        "probeTimeoutMs", "reprobeIntervalMs", "confirmations", "suspectTimeoutMs",
        "queueLimit", "queuePolicy", "interceptors", "sendTimeoutMs", "minimumMembers",
        "fragmentSize", "maxMessageSize", "fragmentExpireMs", "compressionAlgorithm", "compressionMinSize",
        "compressionLevel", "maxDecompressedSize", "orderGapTimeoutMs", "orderMaxHeld", "interceptorSettings",
        "clusterKeys", "insecure", "tlsCertificateFile", "tlsKeyFile", "tlsCaFile",
    ]

    /// The environment variable for a key.
    public static func environmentName(for key: String) -> String {
        var result = "COHORT_"
        for character in key {
            if character.isUppercase { result.append("_") }
            result.append(contentsOf: character.uppercased())
        }
        return result
    }

    /// Loads a configuration: defaults, then the JSON file (if any), then environment overrides.
    ///
    /// - Parameters:
    ///   - file: a JSON file path, or nil.
    ///   - environment: variables to read overrides from.
    ///   - base: the starting values.
    /// - Throws: ``CohortError/Code/badConfiguration`` naming the file and key that is wrong.
    public static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment, base: ClusterConfiguration = ClusterConfiguration()) throws -> ClusterConfiguration {
        var configuration = base
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw CohortError(.badConfiguration, "cannot read configuration file '\(file)'; check the path and permissions")
            }
            let object: Any
            do {
                object = try JSONSerialization.jsonObject(with: data)
            } catch {
                throw CohortError(.badConfiguration, "configuration file '\(file)' is not valid JSON: \(error.localizedDescription)", cause: error)
            }
            guard let dictionary = object as? [String: Any] else {
                throw CohortError(.badConfiguration, "configuration file '\(file)' must hold a JSON object of settings")
            }
            for (key, value) in dictionary.sorted(by: { $0.key < $1.key }) {
                try configuration.apply(key: key, value: value, source: "file '\(file)'")
            }
        }
        for key in keys {
            if let text = environment[environmentName(for: key)] {
                try configuration.apply(key: key, value: text, source: "environment variable \(environmentName(for: key))")
            }
        }
        try configuration.validate()
        return configuration
    }

    /// Sets one key from a file value or an environment string.
    mutating func apply(key: String, value: Any, source: String) throws {
        func bad(_ expected: String) -> CohortError {
            CohortError(.badConfiguration, "configuration key '\(key)' in \(source) must be \(expected), got '\(value)'")
        }
        func string() throws -> String {
            guard let s = value as? String else { throw bad("a string") }
            return s
        }
        func int() throws -> Int {
            if let n = value as? Int { return n }
            if let s = value as? String, let n = Int(s) { return n }
            throw bad("an integer")
        }
        func bool() throws -> Bool {
            if let b = value as? Bool { return b }
            if let s = value as? String, let b = Bool(settingText: s) { return b }
            throw bad("true or false")
        }
        func millis() throws -> Duration {
            let n = try int()
            guard n >= 0 else { throw bad("a non-negative number of milliseconds") }
            return .milliseconds(n)
        }
        func list() throws -> [String] {
            if let array = value as? [String] { return array }
            if let s = value as? String { return s.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
            throw bad("a list of strings (or a comma-separated string)")
        }
        func map() throws -> [String: String] {
            if let dict = value as? [String: String] { return dict }
            if let dict = value as? [String: Any] { return dict.mapValues { "\($0)" } }
            if let s = value as? String {
                var result: [String: String] = [:]
                for pair in s.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2 else { throw bad("key=value pairs separated by commas") }
                    result[String(parts[0])] = String(parts[1])
                }
                return result
            }
            throw bad("an object of string values")
        }
        switch key {
        case "name": name = try string()
        case "listen":
            do { listen = try Endpoint(parsing: try string()) } catch let error as CohortError {
                throw CohortError(.badConfiguration, "configuration key 'listen' in \(source): \(error.message)")
            }
        case "members":
            do { members = try list().map { try Endpoint(parsing: $0) } } catch let error as CohortError {
                throw CohortError(.badConfiguration, "configuration key 'members' in \(source): \(error.message)")
            }
        case "domain": domain = try string()
        case "metadata": metadata = try map()
        case "transport": transport = try string()
        case "codec": codec = try string()
        case "discovery": discovery = try string()
        case "discoverySettings": discoverySettings.merge(try map()) { $1 }
        case "transportSettings": transportSettings = try map()
        case "plugins": plugins = try list()
        case "maxFrameSize": wire.maxFrameSize = try int()
        case "connectTimeoutMs": wire.connectTimeout = try millis()
        case "handlersOnEventLoop": wire.handlersOnEventLoop = try bool()
        case "heartbeatIntervalMs": membership.heartbeatInterval = try millis()
        case "missingAfterMs": membership.missingAfter = try millis()
        case "retryIntervalMs": membership.retryInterval = try millis()
        case "handshakeTimeoutMs": membership.handshakeTimeout = try millis()
        case "probeTimeoutMs": failureDetector.probeTimeout = try millis()
        case "reprobeIntervalMs": failureDetector.reprobeInterval = try millis()
        case "confirmations": failureDetector.confirmations = try int()
        case "suspectTimeoutMs":
            // 0 means never give up on a suspect that neither answers nor fails.
            let limit = try millis()
            failureDetector.suspectTimeout = limit == .zero ? nil : limit
        case "queueLimit": dispatch.queueLimit = try int()
        case "queuePolicy":
            guard let policy = QueuePolicy(rawValue: try string()) else {
                throw bad("one of \(QueuePolicy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            dispatch.policy = policy
        case "interceptors": interceptors = try list()
        case "sendTimeoutMs": sendTimeout = try millis()
        case "minimumMembers": minimumMembers = try int()
        case "fragmentSize": fragmentation.fragmentSize = try int()
        case "maxMessageSize": fragmentation.assembly.maxMessageSize = try int()
        case "fragmentExpireMs": fragmentation.assembly.expireAfter = try millis()
        case "compressionAlgorithm":
            guard let algorithm = Compression.Algorithm(rawValue: try string()) else {
                throw bad("one of \(Compression.Algorithm.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            compression.algorithm = algorithm
        case "compressionMinSize": compression.minSize = try int()
        case "compressionLevel": compression.level = try int()
        case "maxDecompressedSize": compression.maxDecompressedSize = try int()
        case "orderGapTimeoutMs": order.gapTimeout = try millis()
        case "orderMaxHeld": order.maxHeldPerSender = try int()
        case "interceptorSettings":
            guard let object = value as? [String: Any] else { throw bad("an object of objects: interceptor name → settings") }
            for (name, settings) in object {
                guard let dict = settings as? [String: Any] else { throw bad("an object of objects: interceptor name → settings") }
                interceptorSettings[name] = dict.mapValues { "\($0)" }
            }
        case "clusterKeys":
            do {
                clusterKeys = try ClusterKey.parseList(try list().joined(separator: ","))
            } catch let error as CohortError {
                // The message names the key's id and the problem, never the secret.
                throw CohortError(.badConfiguration, "configuration key 'clusterKeys' in \(source): \(error.message)")
            }
        case "insecure": insecure = try bool()
        case "tlsCertificateFile": tlsCertificateFile = try string()
        case "tlsKeyFile": tlsKeyFile = try string()
        case "tlsCaFile": tlsCAFile = try string()
        default:
            let close = Self.keys.filter { $0.lowercased().hasPrefix(String(key.lowercased().prefix(3))) }
            let hint = close.isEmpty ? "" : " (did you mean \(close.joined(separator: " or "))?)"
            throw CohortError(.badConfiguration, "unknown configuration key '\(key)' in \(source)\(hint); known keys: \(Self.keys.joined(separator: ", "))")
        }
    }
}
