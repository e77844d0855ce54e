/// What one node accepts from the network before any peer is admitted: caps on inbound
/// connections, how long a connection may take to say hello and may stay silent, and how many
/// payload bytes may wait in all inbound queues together. Each refusal is counted in
/// `cohort.transport.refused` (dimension `reason`).
public struct ConnectionLimits: Sendable, Equatable {
    /// The most inbound connections open at once (members, probes and strangers alike).
    public var maxInboundConnections: Int
    /// The most inbound connections open at once from one source address.
    public var maxInboundConnectionsPerSource: Int
    /// How long an inbound connection may take to finish its hello (and key handshake).
    public var handshakeTimeout: Duration
    /// How long an inbound connection may stay without a frame before it is closed. Members
    /// send a heartbeat every `heartbeatInterval` (250 ms), so only dead or idle strangers' connections
    /// reach it.
    public var idleTimeout: Duration
    /// Payload bytes that may wait in every inbound queue together; above it, a connection that
    /// adds to its queue stops reading until its queue is empty (backpressure to its sender).
    public var inboundBytes: Int

    /// Creates limits (defaults: 1,024 connections, 64 per source, 10 s handshake, 60 s idle,
    /// 256 MiB waiting).
    public init(
        maxInboundConnections: Int = 1024,
        maxInboundConnectionsPerSource: Int = 64,
        handshakeTimeout: Duration = .seconds(10),
        idleTimeout: Duration = .seconds(60),
        inboundBytes: Int = 256 * 1024 * 1024
    ) {
        self.maxInboundConnections = maxInboundConnections
        self.maxInboundConnectionsPerSource = maxInboundConnectionsPerSource
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
        self.inboundBytes = inboundBytes
    }
}
