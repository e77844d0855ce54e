import CohortCore
import NIOCore

/// The receiver (Tribes' `NioReceiver`): an actor that owns the accepted connections — which
/// member said hello on which connection, which of them are paused for their byte or message
/// budget — and tells the node when it lost the last connection from a member.
///
/// ```
///  accepted connections, on their loops ──.accepted / .closed / .paused / .resumed──▶ ┌──────────┐
///  MembershipService (via the transport) ──.forget────────────────────────────────▶ │ Receiver │──▶ lostConnection
///                                                                                    └──────────┘    (TransportDelegate)
/// ```
///
/// The frames themselves never reach it: each connection's NIO handlers decode them on the
/// connection's event loop and hand data to the connection's ``InboundProcessor``, which calls the
/// node in order. The actor only hears of a connection when it is accepted, paused, resumed or
/// closed.
actor Receiver {
    /// What the receiver reacts to.
    enum Message: Sendable {
        /// A peer said hello on an accepted connection.
        case accepted(any Channel, Member)
        /// An accepted connection closed; `left` when its peer said goodbye first.
        case closed(any Channel, Member?, left: Bool)
        /// A connection stopped reading: its waiting messages exceed the budget.
        case paused(any Channel)
        /// A paused connection reads again.
        case resumed(any Channel)
        /// The member left the view: close its connections.
        case forget(Member)
    }

    enum Envelope: Sendable {
        case message(Message)
        case barrier(CheckedContinuation<Void, Never>)
    }

    struct Inbound {
        var channel: any Channel
        var member: Member
        var paused = false
    }

    /// How much may wait in one connection's queue before it stops reading (backpressure).
    struct Budget: Sendable, Equatable {
        /// Waiting messages above which the connection stops reading.
        var highWater: Int = 4096
        /// Waiting messages below which it reads again.
        var lowWater: Int = 512
        /// Waiting bytes (payloads) above which the connection stops reading; it reads again
        /// below a quarter of this.
        var bytes: Int

        init(maxFrameSize: Int) {
            // At least four of the largest frames, at least 64 MiB.
            let four = maxFrameSize.multipliedReportingOverflow(by: 4)
            bytes = max(64 * 1024 * 1024, four.overflow ? Int.max : four.partialValue)
        }

        init(highWater: Int, lowWater: Int, bytes: Int) {
            self.highWater = highWater
            self.lowWater = lowWater
            self.bytes = bytes
        }
    }

    nonisolated let budget: Budget
    private var inbound: [ObjectIdentifier: Inbound] = [:]
    private let core: TransportCore
    nonisolated private let mailbox: AsyncStream<Envelope>
    nonisolated private let input: AsyncStream<Envelope>.Continuation

    init(core: TransportCore, budget: Budget) {
        self.core = core
        self.budget = budget
        (self.mailbox, self.input) = AsyncStream.makeStream(of: Envelope.self)
    }

    /// Hands a message to the receiver (never waits).
    nonisolated func send(_ message: Message) {
        input.yield(.message(message))
    }

    /// Waits until every message sent before this call has been handled.
    func settle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if case .terminated = input.yield(.barrier(continuation)) { continuation.resume() }
        }
    }

    /// Handles messages until ``finish()``.
    func run() async {
        for await envelope in mailbox {
            switch envelope {
            case .barrier(let continuation): continuation.resume()
            case .message(let message): handle(message)
            }
        }
    }

    /// Ends ``run()`` once the messages sent so far are handled.
    nonisolated func finish() {
        input.finish()
    }

    /// Accepted connections that said hello, by member.
    var members: [MemberID: Int] {
        inbound.values.reduce(into: [:]) { $0[$1.member.id, default: 0] += 1 }
    }

    /// Connections currently paused for their budget.
    var pausedConnections: Int { inbound.values.filter(\.paused).count }

    /// Every accepted connection, emptying the registry (shutdown).
    func removeAll() -> [any Channel] {
        defer { inbound.removeAll() }
        return inbound.values.map(\.channel)
    }

    private func handle(_ message: Message) {
        switch message {
        case .accepted(let channel, let member):
            inbound[ObjectIdentifier(channel)] = Inbound(channel: channel, member: member)
        case .closed(let channel, let member, let left):
            let removed = inbound.removeValue(forKey: ObjectIdentifier(channel))
            // Two connections from one member may briefly exist while both sides connect at
            // once; only losing the last one is news.
            guard let member, removed != nil, !left, !core.isShuttingDown,
                  !inbound.values.contains(where: { $0.member.id == member.id })
            else { return }
            core.delegate?.transport(lostConnectionTo: member, reason: "connection from \(member.name) closed")
        case .paused(let channel):
            inbound[ObjectIdentifier(channel)]?.paused = true
        case .resumed(let channel):
            inbound[ObjectIdentifier(channel)]?.paused = false
        case .forget(let member):
            for (key, entry) in inbound where entry.member.id == member.id {
                inbound.removeValue(forKey: key)
                entry.channel.close(promise: nil)
            }
        }
    }
}
