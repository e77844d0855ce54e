import CohortCore

extension KubernetesDiscoveryConfiguration {
    /// One setting: its plugin-settings key and the environment variables that may supply it,
    /// in the order they are read. A plugin setting always wins over the environment.
    public struct Key: Sendable, Equatable {
        /// The key in the plugin settings (`discoverySettings`, `--discovery-setting KEY=VALUE`).
        public var setting: String
        /// Environment variables, first one set wins.
        public var environment: [String]
        /// What applies when nothing is set.
        public var defaultDescription: String

        /// Every key the Kubernetes discovery reads.
        ///
        /// The `OPENSHIFT_KUBE_PING_*` names are read before their fallbacks, as Tomcat does, so
        /// a deployment configured for Tomcat's `KubernetesMembershipProvider` or JGroups'
        /// `KUBE_PING` carries over unchanged.
        public static let all: [Key] = [
            Key(setting: "apiHost", environment: ["OPENSHIFT_KUBE_PING_MASTER_HOST", "KUBERNETES_SERVICE_HOST"], defaultDescription: "required"),
            Key(setting: "apiPort", environment: ["OPENSHIFT_KUBE_PING_MASTER_PORT", "KUBERNETES_SERVICE_PORT"], defaultDescription: "443"),
            Key(setting: "apiProtocol", environment: ["OPENSHIFT_KUBE_PING_MASTER_PROTOCOL", "KUBERNETES_MASTER_PROTOCOL"], defaultDescription: "https"),
            Key(setting: "apiVersion", environment: ["OPENSHIFT_KUBE_PING_API_VERSION", "KUBERNETES_API_VERSION"], defaultDescription: "v1"),
            Key(setting: "namespace", environment: ["OPENSHIFT_KUBE_PING_NAMESPACE", "KUBERNETES_NAMESPACE", "POD_NAMESPACE"], defaultDescription: "the content of namespaceFile"),
            Key(setting: "namespaceFile", environment: [], defaultDescription: KubernetesDiscoveryConfiguration.defaultNamespaceFile),
            Key(setting: "labels", environment: ["OPENSHIFT_KUBE_PING_LABELS", "KUBERNETES_LABELS"], defaultDescription: "none: every pod of the namespace"),
            Key(setting: "tokenFile", environment: ["OPENSHIFT_KUBE_PING_SA_TOKEN_FILE", "KUBERNETES_SA_TOKEN_FILE", "SA_TOKEN_FILE"], defaultDescription: KubernetesDiscoveryConfiguration.defaultTokenFile),
            Key(setting: "caFile", environment: ["OPENSHIFT_KUBE_PING_CA_CERT_FILE", "KUBERNETES_CA_CERTIFICATE_FILE"], defaultDescription: KubernetesDiscoveryConfiguration.defaultCAFile),
            Key(setting: "podName", environment: ["POD_NAME", "HOSTNAME"], defaultDescription: "none"),
            Key(setting: "podIP", environment: ["POD_IP", "MY_POD_IP"], defaultDescription: "none"),
            Key(setting: "port", environment: [], defaultDescription: "the local member's port"),
            Key(setting: "portName", environment: [], defaultDescription: "none"),
            Key(setting: "readyOnly", environment: ["KUBERNETES_USE_NOT_READY_ADDRESSES"], defaultDescription: "false (the variable is inverted: KUBERNETES_USE_NOT_READY_ADDRESSES=false means readyOnly)"),
            Key(setting: "pollIntervalMs", environment: [], defaultDescription: "5000"),
            Key(setting: "connectTimeoutMs", environment: [], defaultDescription: "2000"),
            Key(setting: "requestTimeoutMs", environment: [], defaultDescription: "5000"),
            Key(setting: "backoffInitialMs", environment: [], defaultDescription: "500"),
            Key(setting: "backoffMaxMs", environment: [], defaultDescription: "30000"),
        ]
    }

    /// The non-empty settings this plugin does not read (typos, or another plugin's settings).
    public static func unknownSettings(in settings: [String: String]) -> [String] {
        let known = Set(Key.all.map(\.setting))
        return settings.filter { !known.contains($0.key) && !$0.value.isEmpty }.keys.sorted()
    }

    /// Resolves a configuration: plugin settings first, then environment variables, then
    /// defaults (see ``Key/all``).
    ///
    /// - Parameters:
    ///   - settings: the plugin settings.
    ///   - environment: the process environment.
    ///   - readFile: reads a small text file (the namespace file); nil when it cannot be read.
    /// Settings keys it does not know are ignored; ``unknownSettings(in:)`` lists them.
    ///
    /// - Throws: ``CohortError/Code/badConfiguration`` for a malformed number or flag, a missing
    ///   API host (not running in a pod) or a namespace that cannot be found.
    public init(settings: [String: String], environment: [String: String], readFile: (String) -> String?) throws {
        func value(_ setting: String) -> String? {
            if let text = settings[setting]?.trimmedForSettings, !text.isEmpty { return text }
            for name in Key.all.first(where: { $0.setting == setting })?.environment ?? [] {
                if let text = environment[name]?.trimmedForSettings, !text.isEmpty { return text }
            }
            return nil
        }
        func number(_ setting: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let text = value(setting) else { return nil }
            guard let number = Int(text), range.contains(number) else {
                throw CohortError(.badConfiguration, "discovery.kubernetes setting '\(setting)' must be an integer in \(range.lowerBound)…\(range.upperBound), got '\(text)'")
            }
            return number
        }
        func flag(_ setting: String, _ text: String) throws -> Bool {
            guard let flag = Bool(settingText: text) else {
                throw CohortError(.badConfiguration, "discovery.kubernetes setting '\(setting)' must be true or false, got '\(text)'")
            }
            return flag
        }

        guard let host = value("apiHost") else {
            throw CohortError(
                .badConfiguration,
                "discovery.kubernetes does not know where the API server is: KUBERNETES_SERVICE_HOST is not set (it is in every pod); outside a cluster set the 'apiHost' and 'apiPort' settings"
            )
        }
        let namespaceFile = value("namespaceFile") ?? Self.defaultNamespaceFile
        let namespace = value("namespace") ?? readFile(namespaceFile).map { $0.trimmedForSettings }.flatMap { $0.isEmpty ? nil : $0 }
        guard let namespace else {
            throw CohortError(
                .badConfiguration,
                "discovery.kubernetes does not know which namespace to list: set POD_NAMESPACE (downward API, metadata.namespace), KUBERNETES_NAMESPACE or the 'namespace' setting; \(namespaceFile) could not be read"
            )
        }
        var readyOnly = false
        if let text = settings["readyOnly"]?.trimmedForSettings, !text.isEmpty {
            readyOnly = try flag("readyOnly", text)
        } else if let text = environment["KUBERNETES_USE_NOT_READY_ADDRESSES"]?.trimmedForSettings, !text.isEmpty {
            readyOnly = try !flag("KUBERNETES_USE_NOT_READY_ADDRESSES", text)
        }
        let defaults = PollSchedule()
        let schedule = PollSchedule(
            interval: try number("pollIntervalMs", 1...86_400_000).map { .milliseconds($0) } ?? defaults.interval,
            initialBackoff: try number("backoffInitialMs", 1...86_400_000).map { .milliseconds($0) } ?? defaults.initialBackoff,
            maximumBackoff: try number("backoffMaxMs", 1...86_400_000).map { .milliseconds($0) } ?? defaults.maximumBackoff
        )
        self.init(
            apiProtocol: (value("apiProtocol") ?? "https").lowercased(),
            apiHost: host,
            apiPort: try number("apiPort", 1...65535) ?? 443,
            apiVersion: value("apiVersion") ?? "v1",
            namespace: namespace,
            labelSelector: value("labels"),
            tokenFile: value("tokenFile") ?? Self.defaultTokenFile,
            caFile: value("caFile") ?? Self.defaultCAFile,
            podName: value("podName"),
            podIP: value("podIP"),
            port: try number("port", 1...65535),
            portName: value("portName"),
            readyOnly: readyOnly,
            schedule: schedule,
            connectTimeout: .milliseconds(try number("connectTimeoutMs", 1...600_000) ?? 2000),
            requestTimeout: .milliseconds(try number("requestTimeoutMs", 1...600_000) ?? 5000)
        )
        try validate()
    }
}

extension String {
    /// The text without leading and trailing white space.
    var trimmedForSettings: String {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace { text = text.dropFirst() }
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        return String(text)
    }
}
