import CohortCore

/// Registers ``TCPTransport`` as `transport.tcp`.
///
/// Settings read from ``PluginSettings/values``: `clusterKeys` (``ClusterKey`` list in text
/// form: shared-key mode), `tlsCertificateFile`, `tlsKeyFile`, `tlsCAFile` (mutual TLS), `maxInboundConnections`, `maxInboundConnectionsPerSource`,
/// `inboundHandshakeTimeoutMs`, `inboundIdleTimeoutMs`, `inboundBytes` (``ConnectionLimits``).
public struct TCPTransportPlugin: PluginFactory {
    public init() {}
    public var id: String { "transport.tcp" }
    public var kind: PluginKind { .transport }
    public var version: String { "1.1.0" }
    public var summary: String { "TCP on SwiftNIO: length-prefixed frames, shared-buffer fan-out, receipt/processed acks, shared-key AES-GCM" }
    public func makeTransport(settings: PluginSettings) throws -> any Transport {
        var security = TransportSecurity.plaintext
        if let text = settings["clusterKeys"], !text.isEmpty {
            security = try .sharedKey(ClusterKey.parseList(text))
        } else if let certificate = settings["tlsCertificateFile"], let key = settings["tlsKeyFile"], let ca = settings["tlsCAFile"] {
            security = try .mutualTLS(TLSFiles(certificate: certificate, privateKey: key, trustRoots: ca))
        }
        return TCPTransport(settings: settings.transport, logger: settings.logger, security: security, limits: try Self.limits(settings))
    }

    static func limits(_ settings: PluginSettings) throws -> ConnectionLimits {
        var limits = ConnectionLimits()
        func int(_ key: String) throws -> Int? {
            guard let text = settings[key] else { return nil }
            guard let value = Int(text), value > 0 else {
                throw CohortError(.badConfiguration, "transport setting '\(key)' must be a positive integer, got '\(text)'")
            }
            return value
        }
        if let v = try int("maxInboundConnections") { limits.maxInboundConnections = v }
        if let v = try int("maxInboundConnectionsPerSource") { limits.maxInboundConnectionsPerSource = v }
        if let v = try int("inboundHandshakeTimeoutMs") { limits.handshakeTimeout = .milliseconds(v) }
        if let v = try int("inboundIdleTimeoutMs") { limits.idleTimeout = .milliseconds(v) }
        if let v = try int("inboundBytes") { limits.inboundBytes = v }
        return limits
    }
}
