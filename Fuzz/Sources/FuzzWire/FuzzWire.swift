// Fuzz target `wire`: the TCP frame parser and the member record (Sources/CohortCore/WireFormat.swift).
//
// The first byte chooses: even — the rest is a byte stream of frames, parsed as a connection's
// decoder does (frame after frame until more bytes are needed or the stream is refused), with
// the body of every hello, helloReply and probe read as a member record and every data frame's
// header fields read; odd — the rest is a member record.
import CohortCore
import FuzzSupport
import NIOCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    guard let selector = bytes.first else { return 0 }
    var buffer = ByteBuffer(bytes: bytes.dropFirst())
    if selector & 1 == 0 {
        parseStream(&buffer)
    } else {
        readRecord(&buffer)
    }
    return 0
}

/// A small cap, so that the too-large path is reached too.
private let maxFrameSize = 4096

private func parseStream(_ buffer: inout ByteBuffer) {
    while true {
        let before = buffer.readerIndex
        let frame: WireFormat.Frame?
        do {
            frame = try WireFormat.parse(from: &buffer, maxFrameSize: maxFrameSize)
        } catch let error as CohortError {
            require([.malformedFrame, .unsupportedVersion, .frameTooLarge].contains(error.code), "parse threw \(error)")
            require(buffer.readerIndex == before, "a refused frame moved the reader index")
            return
        } catch {
            require(false, "parse threw a foreign error \(error)")
            return
        }
        guard var frame else {
            require(buffer.readerIndex == before, "an incomplete frame moved the reader index")
            return
        }
        require(buffer.readerIndex == before + WireFormat.headerSize + frame.body.readableBytes, "parse consumed the wrong number of bytes")
        require(frame.body.readableBytes <= maxFrameSize, "a body above the cap was accepted")
        switch frame.kind {
        case .hello, .helloReply, .probe:
            readRecord(&frame.body)
        case .data:
            _ = frame.body.readInteger(as: UInt64.self)
            _ = frame.body.readInteger(as: UInt32.self)
            _ = frame.body.readInteger(as: UInt32.self)
        case .failed, .error:
            _ = try? WireFormat.readString(from: &frame.body)
        default:
            break
        }
    }
}

private func readRecord(_ buffer: inout ByteBuffer) {
    let before = buffer.readerIndex
    let member: Member
    do {
        member = try WireFormat.readMember(from: &buffer)
    } catch let error as CohortError {
        require([.malformedFrame, .unsupportedVersion].contains(error.code), "readMember threw \(error)")
        require(buffer.readerIndex == before, "a refused record moved the reader index")
        return
    } catch {
        require(false, "readMember threw a foreign error \(error)")
        return
    }
    require(buffer.readerIndex - before <= WireFormat.maxMemberRecordSize, "a record above the size cap was accepted")
    require(member.metadata.count <= WireFormat.maxMetadataEntries, "too many metadata entries accepted")
    // What was read writes and reads back the same (strings were repaired to valid UTF-8 on the
    // way in; a repaired string can only grow, so skip those that no longer fit a string field).
    let fields = [member.endpoint.host, member.name, member.domain] + member.metadata.flatMap { [$0.key, $0.value] }
    guard fields.allSatisfy({ $0.utf8.count <= Int(UInt16.max) }) else { return }
    var again = ByteBuffer()
    WireFormat.writeMember(member, into: &again)
    guard again.readableBytes <= WireFormat.maxMemberRecordSize else { return }
    guard let copy = try? WireFormat.readMember(from: &again) else {
        require(false, "a record written from a read one does not read back")
        return
    }
    require(copy.id == member.id && copy.name == member.name && copy.endpoint == member.endpoint
        && copy.domain == member.domain && copy.metadata == member.metadata && copy.startTime == member.startTime,
        "a member record does not round-trip")
}

@_cdecl("LLVMFuzzerInitialize")
public func initializeWire(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    Seeds.writeIfAsked(wireSeeds())
    return 0
}

private func wireSeeds() -> [(name: String, bytes: [UInt8])] {
    let members = [
        Member(id: MemberID(high: 0x0123_4567_89AB_4CDE, low: 0x8123_4567_89AB_CDEF), name: "node1", endpoint: Endpoint(host: "127.0.0.1", port: 4001), startTime: 1_700_000_000_000),
        Member(id: MemberID(high: 1, low: 2), name: "node-2", endpoint: Endpoint(host: "::1", port: 65535), domain: "shop",
               metadata: ["zone": "eu-1", "route": "n2", "version": "1.0"], startTime: 0),
    ]
    var seeds: [(String, [UInt8])] = []
    for (index, member) in members.enumerated() {
        var record = ByteBuffer()
        WireFormat.writeMember(member, into: &record)
        seeds.append(("record-\(index)", [1] + Array(record.readableBytesView)))
        var stream = ByteBuffer()
        for kind in [WireFormat.Kind.hello, .helloReply, .probe] {
            WireFormat.writeHeader(kind: kind, length: record.readableBytes, into: &stream)
            stream.writeBytes(record.readableBytesView)
        }
        seeds.append(("handshake-\(index)", [0] + Array(stream.readableBytesView)))
    }
    var stream = ByteBuffer()
    var data = ByteBuffer()
    data.writeInteger(UInt64(41))
    data.writeInteger(UInt32(1))
    data.writeInteger(UInt32(0))
    data.writeBytes([0x0A, 0x01, 0x08, 0x74, 0x65, 0x78, 0x74, 0x07, 0x02, 0x68, 0x69])
    WireFormat.writeHeader(kind: .data, codec: 1, guarantee: 2, length: data.readableBytes, into: &stream)
    stream.writeBytes(data.readableBytesView)
    for kind in [WireFormat.Kind.received, .processed] {
        WireFormat.writeHeader(kind: kind, length: 8, into: &stream)
        stream.writeInteger(UInt64(41))
    }
    var failed = ByteBuffer()
    failed.writeInteger(UInt64(42))
    failed.writeInteger(UInt8(1))
    WireFormat.writeString("handler threw", into: &failed)
    WireFormat.writeHeader(kind: .failed, length: failed.readableBytes, into: &stream)
    stream.writeBytes(failed.readableBytesView)
    for kind in [WireFormat.Kind.heartbeat, .leave] { WireFormat.writeHeader(kind: kind, length: 0, into: &stream) }
    seeds.append(("data-and-acks", [0] + Array(stream.readableBytesView)))
    return seeds
}
