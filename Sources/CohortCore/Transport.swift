/// A message on its way out: encoded once, shared by every destination.
///
/// `payload` is a copy-on-write `ByteBuffer`; handing it to N connections copies no bytes.
import NIOCore

public struct OutboundMessage: Sendable {
    /// The type id of the encoded message.
    public var type: MessageType
    /// The codec that wrote `payload`.
    public var codec: CodecID
    /// The encoded message.
    public var payload: ByteBuffer
    /// Send options.
    public var options: SendOptions
    /// What to do when a member's queue of unacknowledged messages is full.
    public var queuePolicy: QueuePolicy
    /// The most unacknowledged messages allowed per member before `queuePolicy` applies.
    public var queueLimit: Int

    /// Creates an outbound message.
    public init(
        type: MessageType,
        codec: CodecID,
        payload: ByteBuffer,
        options: SendOptions,
        queuePolicy: QueuePolicy = .block,
        queueLimit: Int = 65_536
    ) {
        self.type = type
        self.codec = codec
        self.payload = payload
        self.options = options
        self.queuePolicy = queuePolicy
        self.queueLimit = queueLimit
    }
}

/// What a full per-member queue does to a new message (Tribes' MessageDispatch `alwaysSend`).
public enum QueuePolicy: String, Sendable, Codable, CaseIterable {
    /// Wait until the member's queue has room (or the send times out).
    case block
    /// Report ``MemberOutcome/queueFull`` for that member at once.
    case failFast
    /// Send anyway and wait for receipt, so the sender slows to the receiver's pace.
    case sendSynchronously
}

/// A message that arrived from a member, not yet decoded.
public struct InboundMessage: Sendable {
    /// The member that sent it.
    public var sender: Member
    /// The type id.
    public var type: MessageType
    /// The codec that wrote it.
    public var codec: CodecID
    /// The encoded message.
    public var payload: ByteBuffer
    /// What the sender waits for.
    public var guarantee: DeliveryGuarantee
    /// Option flags set by the sender.
    public var flags: UInt32

    public init(sender: Member, type: MessageType, codec: CodecID, payload: ByteBuffer, guarantee: DeliveryGuarantee, flags: UInt32 = 0) {
        self.sender = sender
        self.type = type
        self.codec = codec
        self.payload = payload
        self.guarantee = guarantee
        self.flags = flags
    }
}

/// The result of handling an inbound message, sent back for ``DeliveryGuarantee/processed``.
public enum DeliveryResult: Sendable, Equatable {
    /// Handled.
    case processed
    /// A handler threw; the text describes the error.
    case handlerFailed(String)
    /// The message could not be decoded or has no handler.
    case rejected(String)
}

/// Events a transport reports to the node that runs it.
///
/// Calls for one connection arrive in order; calls for different connections may be concurrent.
public protocol TransportDelegate: Sendable {
    /// A member opened a connection to this node and introduced itself.
    func transport(didAccept member: Member)
    /// A heartbeat arrived from a member (a member not known yet is admitted).
    func transport(heardFrom member: Member)
    /// Other traffic from a member (data, acknowledgements) showed it alive: it refreshes a known
    /// member's liveness, so a busy peer whose heartbeats queue behind its traffic is not
    /// suspected, but never admits a member. Transports call it at most a few times a second.
    func transport(sawActivityFrom member: Member)
    /// A data message arrived. For ``DeliveryGuarantee/processed`` the result is sent back.
    func transport(received message: InboundMessage) async -> DeliveryResult
    /// A connection to or from a member failed or closed.
    func transport(lostConnectionTo member: Member, reason: String)
    /// A member announced it is leaving.
    func transport(memberLeft member: Member)
    /// Asynchronous messages to a member were not confirmed before its connection failed.
    func transport(asyncMessagesFailed count: Int, to member: Member, reason: String)
}

extension TransportDelegate {
    /// Default: activity is ignored; liveness then rests on heartbeats alone.
    public func transport(sawActivityFrom member: Member) {}
}

/// A transport plugin: moves encoded messages between members.
///
/// The transport owns connections, framing, acknowledgements and probes. It never decodes a
/// payload. ``send(_:to:)`` is the hot path: it must not copy the payload per member, and must not
/// allocate or hop an actor per member.
public protocol Transport: AnyObject, Sendable {
    /// Starts listening and returns the address actually bound (port 0 picks a free port).
    func start(local: Member, delegate: any TransportDelegate) async throws -> Endpoint
    /// Connects to an address, exchanges member records, and returns the peer's.
    func handshake(with endpoint: Endpoint, timeout: Duration) async throws -> Member
    /// Sends one encoded message to members and reports per-member outcomes.
    func send(_ message: OutboundMessage, to members: [Member]) async -> SendReport
    /// Sends a heartbeat to members; never waits for an answer.
    func heartbeat(to members: [Member])
    /// Whether the member is alive: a fresh connection plus handshake within `timeout`.
    /// An answer from a different incarnation at the same address counts as ``FailureDetectorState/ProbeResult/refused``.
    func probe(_ member: Member, timeout: Duration) async -> FailureDetectorState.ProbeResult
    /// Tells members this node leaves, waits briefly for the words to be written, then closes.
    func leave(notifying members: [Member]) async
    /// Drops the connection to a member that left the view.
    func forget(_ member: Member)
    /// Closes everything.
    func shutdown() async
}

/// Settings every transport honours.
public struct TransportSettings: Sendable, Codable, Equatable {
    /// Frames larger than this are refused by sender and receiver.
    public var maxFrameSize: Int
    /// How long a connect may take.
    public var connectTimeout: Duration
    /// Where a connection's inbound messages are handled.
    ///
    /// `true` (the default): on the connection's event loop, as the task executor preference of
    /// the task that drains the connection — handlers, and the actors they call, run there until
    /// they hop elsewhere, so a message and its acknowledgement cost no thread switch on the
    /// receiver (about 10–20 % off a `.processed` send on loopback). Handlers must then not block
    /// or compute for long; hand such work to a task of its own. `false`: on Swift's global
    /// concurrent pool, one thread switch away from the loop each way. See docs/adr/0006.
    public var handlersOnEventLoop: Bool

    public init(maxFrameSize: Int = 16 * 1024 * 1024, connectTimeout: Duration = .milliseconds(1000), handlersOnEventLoop: Bool = true) {
        self.maxFrameSize = maxFrameSize
        self.connectTimeout = connectTimeout
        self.handlersOnEventLoop = handlersOnEventLoop
    }

    private enum CodingKeys: String, CodingKey { case maxFrameSize, connectTimeout, handlersOnEventLoop }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = TransportSettings()
        maxFrameSize = try container.decodeIfPresent(Int.self, forKey: .maxFrameSize) ?? defaults.maxFrameSize
        connectTimeout = try container.decodeIfPresent(Duration.self, forKey: .connectTimeout) ?? defaults.connectTimeout
        handlersOnEventLoop = try container.decodeIfPresent(Bool.self, forKey: .handlersOnEventLoop) ?? defaults.handlersOnEventLoop
    }
}

/// A transport that can tell how many messages are in flight to a member (its queue of
/// unacknowledged messages); the `throughput` interceptor records it as a gauge.
public protocol QueueDepthReporting: Sendable {
    /// Messages sent to the member and not yet acknowledged, or nil when there is no connection.
    func queueDepth(of member: MemberID) -> Int?
}
