import CohortCore

/// Registers ``TCPTransport`` as `transport.tcp`.
public struct TCPTransportPlugin: PluginFactory {
    public init() {}
    public var id: String { "transport.tcp" }
    public var kind: PluginKind { .transport }
    public var version: String { "1.0.0" }
    public var summary: String { "TCP on SwiftNIO: length-prefixed frames, shared-buffer fan-out, receipt/processed acks" }
    public func makeTransport(settings: PluginSettings) throws -> any Transport {
        TCPTransport(settings: settings.transport, logger: settings.logger)
    }
}
