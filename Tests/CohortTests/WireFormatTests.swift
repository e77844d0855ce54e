import CohortCore
import NIOCore
import Testing

@Suite("WireFormat")
struct WireFormatTests {
    func frame(kind: WireFormat.Kind = .heartbeat, body: [UInt8] = []) -> ByteBuffer {
        var buffer = ByteBuffer()
        WireFormat.writeHeader(kind: kind, length: body.count, into: &buffer)
        buffer.writeBytes(body)
        return buffer
    }

    @Test func parsesACompleteFrameAndWaitsForAPartialOne() throws {
        var full = frame(kind: .received, body: [0, 0, 0, 0, 0, 0, 0, 7])
        var partial = full.getSlice(at: 0, length: 15)!
        #expect(try WireFormat.parse(from: &partial, maxFrameSize: 1024) == nil)
        let parsed = try #require(try WireFormat.parse(from: &full, maxFrameSize: 1024))
        #expect(parsed.kind == .received)
        #expect(parsed.body.readableBytes == 8)
        #expect(full.readableBytes == 0)
    }

    @Test func rejectsGarbageEarly() {
        var garbage = ByteBuffer(string: "GET / HTTP/1.1\r\n")
        #expect(throws: CohortError(.malformedFrame, "")) { try WireFormat.parse(from: &garbage, maxFrameSize: 1024) }
        var short = ByteBuffer(string: "HTTP")
        #expect(throws: CohortError(.malformedFrame, "")) { try WireFormat.parse(from: &short, maxFrameSize: 1024) }
    }

    @Test func rejectsOversizedFrameFromTheHeaderAlone() {
        var buffer = ByteBuffer()
        WireFormat.writeHeader(kind: .data, length: 10_000, into: &buffer)
        #expect(throws: CohortError(.frameTooLarge, "")) { try WireFormat.parse(from: &buffer, maxFrameSize: 1024) }
    }

    @Test func rejectsOtherProtocolVersionsAndUnknownKinds() {
        var buffer = frame()
        buffer.setInteger(UInt8(9), at: 4)
        #expect(throws: CohortError(.unsupportedVersion, "")) { try WireFormat.parse(from: &buffer, maxFrameSize: 1024) }
        var kind = frame()
        kind.setInteger(UInt8(200), at: 5)
        #expect(throws: CohortError(.malformedFrame, "")) { try WireFormat.parse(from: &kind, maxFrameSize: 1024) }
    }

    @Test func memberRecordRoundTripsAndTruncationThrows() throws {
        let member = Member(name: "ñode-1", endpoint: Endpoint(host: "::1", port: 4001), domain: "prod", metadata: ["route": "r1", "zone": "a"], startTime: 1_700_000_000_000)
        var buffer = ByteBuffer()
        WireFormat.writeMember(member, into: &buffer)
        var copy = buffer
        let decoded = try WireFormat.readMember(from: &copy)
        #expect(decoded.id == member.id)
        #expect(decoded.name == member.name)
        #expect(decoded.endpoint == member.endpoint)
        #expect(decoded.domain == "prod")
        #expect(decoded.metadata == member.metadata)
        #expect(decoded.startTime == member.startTime)
        for cut in [0, 1, 10, buffer.readableBytes - 1] {
            var truncated = buffer.getSlice(at: 0, length: cut)!
            #expect(throws: CohortError.self) { try WireFormat.readMember(from: &truncated) }
        }
    }

    @Test func endpointsParseAndReportBadInput() throws {
        #expect(try Endpoint(parsing: "127.0.0.1:4001") == Endpoint(host: "127.0.0.1", port: 4001))
        #expect(try Endpoint(parsing: " [::1]:80 ") == Endpoint(host: "::1", port: 80))
        for bad in ["", "host", "host:", ":1", "a:b", "h:70000", "::1:80", "[::1]80"] {
            #expect(throws: CohortError(.badConfiguration, "")) { try Endpoint(parsing: bad) }
        }
    }

    @Test func registryRefusesConflictingIdsAndUnknownTypes() throws {
        struct A: ClusterMessage { static let messageType = MessageType(5000) }
        struct B: ClusterMessage { static let messageType = MessageType(5000) }
        var registry = MessageRegistry()
        try registry.register(A.self)
        try registry.register(A.self)
        #expect(throws: CohortError(.duplicate, "")) { try registry.register(B.self) }
        struct Echo: MessageCodec {
            var id: CodecID { .json }
            var name: String { "echo" }
            func encode<Value: Encodable>(_ value: Value, into buffer: inout ByteBuffer) throws {}
            func decode<Value: Decodable>(_ type: Value.Type, from buffer: inout ByteBuffer) throws -> Value { throw CohortError(.codecFailure, "x") }
        }
        var empty = ByteBuffer()
        #expect(throws: CohortError(.unknownMessageType, "")) { try registry.decode(MessageType(4242), codec: Echo(), from: &empty) }
    }
}
