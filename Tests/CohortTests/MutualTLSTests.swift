import Cohort
import CohortTestKit
import Foundation
import NIOCore
import Testing
@testable import CohortTransportTCP

/// Mutual TLS on loopback with certificates made by the test: who can join, whose name a
/// connection may use, and reloading the files when they change.
@Suite("mutual TLS", .timeLimit(.minutes(2)), .enabled(if: ClusterPKI.available, "no openssl executable to make test certificates"))
struct MutualTLSTests {
    static func member(_ name: String) -> Member {
        Member(name: name, endpoint: Endpoint(host: "127.0.0.1", port: 0), startTime: Int64(Date().timeIntervalSince1970 * 1000))
    }

    static let message = OutboundMessage(type: MessageType(7), codec: .binary, payload: ByteBuffer(string: "session 42"), options: SendOptions(guarantee: .processed, timeout: .seconds(20)))

    /// Starts a transport with `security` as member `name`.
    static func start(_ name: String, _ security: TransportSecurity, delegate: RecordingTransportDelegate = RecordingTransportDelegate()) async throws -> (TCPTransport, Member) {
        let transport = TCPTransport(security: security)
        var local = member(name)
        local.endpoint = try await transport.start(local: local, delegate: delegate)
        return (transport, local)
    }

    @Test func onlyCASignedMembersJoinAndEachOnlyUnderTheNameItsCertificateHolds() async throws {
        let pki = try ClusterPKI()
        try pki.makeCA("ca")
        try pki.makeCA("rogue")
        let a = try pki.makeMember("a", dnsName: "node-a", ca: "ca")
        let b = try pki.makeMember("b", dnsName: "node-b", ca: "ca")
        let c = try pki.makeMember("c", dnsName: "node-c", ca: "ca")
        let forged = try pki.makeMember("forged", dnsName: "node-a", ca: "rogue")

        let log = RecordingTransportDelegate()
        let (server, serverMember) = try await Self.start("node-a", try .mutualTLS(a), delegate: log)

        // A member with its own CA-signed certificate joins and is served.
        let (member, memberRecord) = try await Self.start("node-b", try .mutualTLS(b))
        #expect(try await member.handshake(with: serverMember.endpoint, timeout: .seconds(20)).id == serverMember.id)
        #expect(await member.send(Self.message, to: [serverMember]).outcome(for: serverMember.id) == .delivered)
        await member.shutdown()

        // A CA-signed member saying hello under another member's name: refused.
        let (impostor, _) = try await Self.start("node-b", try .mutualTLS(c))
        await #expect(throws: (any Error).self) { try await impostor.handshake(with: serverMember.endpoint, timeout: .seconds(20)) }
        #expect(await impostor.send(Self.message, to: [serverMember]).outcome(for: serverMember.id) != .delivered)
        await impostor.shutdown()
        #expect(server.core.refusedCount(.impersonation) >= 1)

        // A certificate from another CA, with the right name; and no certificate at all.
        for security in [try TransportSecurity.mutualTLS(forged), .plaintext] {
            let (outsider, _) = try await Self.start("node-a", security)
            await #expect(throws: (any Error).self) { try await outsider.handshake(with: serverMember.endpoint, timeout: .seconds(20)) }
            await outsider.shutdown()
        }

        // Only the real member was ever accepted, and only its message arrived.
        #expect(Set(log.snapshot.accepted.map(\.id)) == [memberRecord.id], "only the member was accepted (once per connection it opened)")
        #expect(log.snapshot.received.count == 1)
        await server.shutdown()
    }

    @Test func aServerThatAnswersUnderANameItsCertificateDoesNotHoldIsNotBelieved() async throws {
        let pki = try ClusterPKI()
        try pki.makeCA("ca")
        let a = try pki.makeMember("a", dnsName: "node-a", ca: "ca")
        let c = try pki.makeMember("c", dnsName: "node-c", ca: "ca")
        // A CA-signed node whose certificate says node-c answers as node-a.
        let (liar, liarMember) = try await Self.start("node-a", try .mutualTLS(c))
        let (client, _) = try await Self.start("node-b", try .mutualTLS(try pki.makeMember("b", dnsName: "node-b", ca: "ca")))
        await #expect(throws: (any Error).self) { try await client.handshake(with: liarMember.endpoint, timeout: .seconds(20)) }
        #expect(client.core.refusedCount(.impersonation) == 1)
        _ = a
        await client.shutdown()
        await liar.shutdown()
    }

    @Test func newConnectionsUseTheFilesAsTheyAreOnDiskNow() async throws {
        let pki = try ClusterPKI()
        try pki.makeCA("ca1")
        try pki.makeCA("ca2")
        // The server's files, at fixed paths (as a mounted Secret).
        let first = try pki.makeMember("server-1", dnsName: "node-a", ca: "ca1")
        let second = try pki.makeMember("server-2", dnsName: "node-a", ca: "ca2")
        let files = TLSFiles(certificate: pki.path("mounted.crt"), privateKey: pki.path("mounted.key"), trustRoots: pki.path("mounted-ca.crt"))
        try pki.replace(files.certificate, with: first.certificate)
        try pki.replace(files.privateKey, with: first.privateKey)
        try pki.replace(files.trustRoots, with: first.trustRoots)
        let oldMember = try pki.makeMember("old", dnsName: "node-b", ca: "ca1")
        let newMember = try pki.makeMember("new", dnsName: "node-c", ca: "ca2")

        let security = try TransportSecurity.mutualTLS(files)
        let (server, serverMember) = try await Self.start("node-a", security)
        guard case .mutualTLS(let material) = security.mode else { Issue.record("not TLS"); return }
        let loadsBefore = material.loadCount

        let (old, _) = try await Self.start("node-b", try .mutualTLS(oldMember))
        #expect(try await old.handshake(with: serverMember.endpoint, timeout: .seconds(20)).id == serverMember.id)
        let (new, _) = try await Self.start("node-c", try .mutualTLS(newMember))
        await #expect(throws: (any Error).self) { try await new.handshake(with: serverMember.endpoint, timeout: .seconds(20)) }

        // The Secret is rotated to the new CA: new connections follow, with no restart.
        try pki.replace(files.certificate, with: second.certificate)
        try pki.replace(files.privateKey, with: second.privateKey)
        try pki.replace(files.trustRoots, with: second.trustRoots)
        let (newAgain, _) = try await Self.start("node-c", try .mutualTLS(newMember))
        #expect(try await newAgain.handshake(with: serverMember.endpoint, timeout: .seconds(20)).id == serverMember.id)
        let (oldAgain, _) = try await Self.start("node-b", try .mutualTLS(oldMember))
        await #expect(throws: (any Error).self) { try await oldAgain.handshake(with: serverMember.endpoint, timeout: .seconds(20)) }
        #expect(material.loadCount == loadsBefore + 1)
        for transport in [old, new, newAgain, oldAgain, server] { await transport.shutdown() }
    }
}
