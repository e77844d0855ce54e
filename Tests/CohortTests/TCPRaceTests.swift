import Cohort
import CohortTestKit
import CohortTransportTCP
import NIOCore
import Testing

/// Connection races of the TCP transport.
@Suite("TCP transport races", .timeLimit(.minutes(1)))
struct TCPRaceTests {
    /// A send opens a connection while a handshake opens another to the same member; whichever is
    /// ready second replaces the first. The replaced one must still deliver what it carries (it
    /// retires once acknowledged) instead of failing it: no failed send, no reported loss.
    @Test func aReplacedConnectionDeliversWhatItCarries() async throws {
        for round in 0..<12 {
            // Generous connect and hello timeouts: on a loaded machine a hello reply can take
            // more than the 1 s default; this test is about what is delivered, not how fast.
            let sender = TCPTransport(settings: TransportSettings(connectTimeout: .seconds(10)))
            let receiver = TCPTransport(settings: TransportSettings(connectTimeout: .seconds(10)))
            let senderLog = RecordingTransportDelegate()
            let receiverLog = RecordingTransportDelegate()
            _ = try await sender.start(local: TransportConformance.localMember(0), delegate: senderLog)
            var local = TransportConformance.localMember(1)
            local.endpoint = try await receiver.start(local: local, delegate: receiverLog)
            let target = local

            let message = OutboundMessage(
                type: MessageType(7),
                codec: .binary,
                payload: ByteBuffer(string: "round \(round)"),
                options: SendOptions(guarantee: .processed, timeout: .seconds(5))
            )
            async let handshake = sender.handshake(with: target.endpoint, timeout: .seconds(5))
            async let report = sender.send(message, to: [target])
            let (peer, sent) = try await (handshake, report)
            #expect(peer.id == target.id)
            #expect(sent.outcome(for: target.id) == .delivered, "round \(round): \(sent)")
            // A second message after the race goes through as well.
            let after = await sender.send(message, to: [target])
            #expect(after.outcome(for: target.id) == .delivered, "round \(round): \(after)")
            #expect(senderLog.snapshot.asyncFailures.isEmpty)
            #expect(senderLog.snapshot.lost.isEmpty, "round \(round): \(senderLog.snapshot.lost.map(\.reason))")
            await sender.shutdown()
            await receiver.shutdown()
        }
    }
}
