import CohortCore
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import Synchronization

/// What the parts of the TCP transport share — settings, the sender loop, who the node is, who
/// hears of events, counters — so that the connections, the ``SenderPool`` and the ``Receiver``
/// need no reference to the transport (and none to each other's state).
final class TransportCore: Sendable {
    let settings: TransportSettings
    /// How connections are protected (plaintext or shared key).
    let security: TransportSecurity
    /// Inbound connection caps, timeouts and the inbound byte budget.
    let limits: ConnectionLimits
    /// Refused connections and frames, by reason, logged at a limited rate.
    let refusals: MalformedInputLog
    /// Inbound connection counts and the node-wide inbound byte count.
    let gate: InboundGate
    /// All outbound connections live on this loop, so a fan-out is one loop task.
    let loop: any EventLoop
    let logger: Logger
    let allocator = ByteBufferAllocator()
    private let shuttingDown = Atomic<Bool>(false)
    private let malformed = Atomic<Int>(0)
    private let malformedCounter = Counter(label: "cohort.transport.malformed_frames")
    private let asyncFailureCounter = Counter(label: "cohort.transport.async_failures")

    /// Set once by `start`: who we are and who hears of events.
    private struct Started: Sendable {
        var local: Member
        var delegate: any TransportDelegate
    }
    private let started = NIOLockedValueBox<Started?>(nil)

    /// Loop-confined: connections with unflushed writes.
    private struct FlushState: Sendable {
        var queue: [OutboundConnection] = []
        var scheduled = false
    }
    private let flushes: NIOLoopBoundBox<FlushState>

    init(settings: TransportSettings, security: TransportSecurity = .plaintext, limits: ConnectionLimits = ConnectionLimits(), loop: any EventLoop, logger: Logger) {
        self.settings = settings
        self.security = security
        self.limits = limits
        self.refusals = MalformedInputLog(logger: logger)
        self.gate = InboundGate(limits: limits)
        self.loop = loop
        self.logger = logger
        self.flushes = .makeBoxSendingValue(FlushState(), eventLoop: loop)
    }

    func start(local: Member, delegate: any TransportDelegate) {
        started.withLockedValue { $0 = Started(local: local, delegate: delegate) }
    }

    func bound(to endpoint: Endpoint) {
        started.withLockedValue { $0?.local.endpoint = endpoint }
    }

    var localMember: Member {
        guard let local = started.withLockedValue({ $0?.local }) else {
            preconditionFailure("the TCP transport is used before start(local:delegate:)")
        }
        return local
    }

    var delegate: (any TransportDelegate)? { started.withLockedValue { $0?.delegate } }

    var isShuttingDown: Bool { shuttingDown.load(ordering: .relaxed) }

    func beginShutdown() { shuttingDown.store(true, ordering: .relaxed) }

    var malformedFrames: Int { malformed.load(ordering: .relaxed) }

    func countMalformed() {
        malformed.add(1, ordering: .relaxed)
        malformedCounter.increment()
    }

    /// Why a connection or frame was refused (the `reason` dimension of
    /// `cohort.transport.refused`).
    enum Refusal: String, Sendable, CaseIterable {
        /// The peer did not prove it holds the cluster's credentials.
        case unauthenticated
        /// Too many inbound connections in all.
        case connectionsTotal
        /// Too many inbound connections from one address.
        case connectionsPerSource
        /// No hello (or key handshake) within the handshake timeout.
        case handshakeTimeout
        /// Nothing read for the idle timeout.
        case idle
        /// A frame that claims a sender, or a sender's rights, it does not have.
        case impersonation
    }

    /// Counts a refusal (metric `cohort.transport.refused`, dimension `reason`) and logs it at a
    /// limited rate.
    func refuse(_ reason: Refusal, _ message: @autoclosure () -> String) {
        Counter(label: "cohort.transport.refused", dimensions: [("reason", reason.rawValue)]).increment()
        refusals.record(reason.rawValue, message())
    }

    /// Refusals so far, by reason (for tests and tools).
    func refusedCount(_ reason: Refusal) -> Int { refusals.count(reason.rawValue) }

    /// Adds the security handler of `role` to a connection's pipeline, if the mode needs one.
    ///
    /// Shared-key mode: after the frame decoder. Mutual TLS: see ``addTLSHandler(to:role:)``,
    /// which goes first.
    func addSecurityHandler(to pipeline: ChannelPipeline.SynchronousOperations, role: SharedKeyHandler.Role) throws {
        if case .sharedKey(let keyring) = security.mode {
            try pipeline.addHandler(SharedKeyHandler(keyring: keyring, role: role, core: self))
        }
    }

    /// Adds the TLS handler of `role` (first in the pipeline) in mutual-TLS mode, with the
    /// contexts of the files as they are on disk now.
    func addTLSHandler(to pipeline: ChannelPipeline.SynchronousOperations, role: SharedKeyHandler.Role) throws {
        guard case .mutualTLS(let material) = security.mode else { return }
        let contexts = try material.contexts()
        switch role {
        case .server: try pipeline.addHandler(NIOSSLServerHandler(context: contexts.server))
        case .client: try pipeline.addHandler(try NIOSSLClientHandler(context: contexts.client, serverHostname: nil))
        }
    }

    /// In mutual-TLS mode, whether the connection's peer certificate names `member`; always
    /// true in the other modes. Loop of the channel only.
    func certificateNames(_ member: Member, on channel: any Channel) -> Bool {
        guard case .mutualTLS = security.mode else { return true }
        let certificate = try? channel.pipeline.syncOperations.nioSSL_peerCertificate()
        return TLSMaterial.certificate(certificate, names: member.name)
    }

    /// The frame cap of a connection's decoder: the configured cap plus what sealing adds.
    var decoderFrameCap: Int { settings.maxFrameSize + security.bodyOverhead }

    func reportAsyncFailure(count: Int, to member: Member, reason: String) {
        asyncFailureCounter.increment(by: count)
        delegate?.transport(asyncMessagesFailed: count, to: member, reason: reason)
    }

    /// Traffic from a member counts as a sign of life (see ``SignOfLife``).
    func reportActivity(_ member: Member) {
        delegate?.transport(sawActivityFrom: member)
    }

    /// Puts a connection with fresh writes on the flush list; one task queued behind the pending
    /// writes flushes each listed connection once. Loop only.
    func scheduleFlush(_ connection: OutboundConnection) {
        let first: Bool = flushes.withValue { state in
            state.queue.append(connection)
            if state.scheduled { return false }
            state.scheduled = true
            return true
        }
        guard first else { return }
        // Runs after every write task already queued on the loop: one flush per batch.
        loop.execute { [self] in
            let pending: [OutboundConnection] = flushes.withValue { state in
                state.scheduled = false
                defer { state.queue.removeAll(keepingCapacity: true) }
                return state.queue
            }
            for connection in pending { connection.flush() }
        }
    }
}
