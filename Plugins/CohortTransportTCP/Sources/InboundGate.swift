import CohortCore
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// The door of the listener: counts inbound connections in all and per source address and
/// refuses those above ``ConnectionLimits``, and keeps the node-wide count of payload bytes
/// waiting in inbound queues. Read and written from every accepted connection's event loop.
final class InboundGate: Sendable {
    private struct Counts {
        var total = 0
        var perSource: [String: Int] = [:]
    }

    private let counts = NIOLockedValueBox(Counts())
    private let waitingBytes = Atomic<Int>(0)
    let limits: ConnectionLimits

    init(limits: ConnectionLimits) {
        self.limits = limits
    }

    /// Admits a new inbound connection, or says why not. An admitted connection is released
    /// when it closes.
    func admit(_ channel: any Channel) -> TransportCore.Refusal? {
        let source = channel.remoteAddress?.ipAddress ?? "unknown"
        let refusal: TransportCore.Refusal? = counts.withLockedValue { counts in
            if counts.total >= limits.maxInboundConnections { return .connectionsTotal }
            if counts.perSource[source, default: 0] >= limits.maxInboundConnectionsPerSource { return .connectionsPerSource }
            counts.total += 1
            counts.perSource[source, default: 0] += 1
            return nil
        }
        if refusal == nil {
            channel.closeFuture.whenComplete { [self] _ in
                counts.withLockedValue { counts in
                    counts.total -= 1
                    let left = counts.perSource[source, default: 1] - 1
                    counts.perSource[source] = left > 0 ? left : nil
                }
            }
        }
        return refusal
    }

    /// Open inbound connections (for tests and tools).
    var openConnections: Int { counts.withLockedValue { $0.total } }

    /// Adds waiting payload bytes; returns the new node-wide total.
    func addWaiting(_ bytes: Int) -> Int {
        waitingBytes.add(bytes, ordering: .relaxed).newValue
    }

    /// Removes payload bytes that left a queue.
    func removeWaiting(_ bytes: Int) {
        waitingBytes.subtract(bytes, ordering: .relaxed)
    }

    /// Payload bytes waiting in every inbound queue.
    var waiting: Int { waitingBytes.load(ordering: .relaxed) }

    /// Whether the node-wide budget is exceeded.
    var overBudget: Bool { waiting > limits.inboundBytes }
}

/// The frame cap of a connection's decoder, which grows once the peer is admitted: before its
/// hello (and key handshake) a peer may send nothing longer than a member record, so a stranger
/// cannot make the node buffer a frame-cap's worth of bytes per connection.
final class FrameCap {
    var value: Int

    init(_ value: Int) {
        self.value = value
    }

    /// The cap before a peer is admitted: a hello with the largest member record.
    static let beforeHello = WireFormat.headerSize + WireFormat.maxMemberRecordSize + 64
}
