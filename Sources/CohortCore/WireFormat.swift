/// Cohort's TCP frame format, version 1. See docs/wire-format.md.
///
/// ```
/// offset size
///  0      4   magic "COHT"
///  4      1   protocol version (1)
///  5      1   frame kind
///  6      1   codec id (data frames; 0 otherwise)
///  7      1   guarantee (data frames: 0 async, 1 receipt, 2 processed)
///  8      4   body length, big-endian, ≤ the configured frame cap
/// 12      n   body
/// ```
import NIOCore

public enum WireFormat {
    /// "COHT".
    public static let magic: UInt32 = 0x434F_4854
    /// The protocol version this build writes and reads.
    public static let version: UInt8 = 1
    /// Bytes before the body.
    public static let headerSize = 12

    /// What a frame carries.
    public enum Kind: UInt8, Sendable, CustomStringConvertible {
        /// Client → server: the client's member record.
        case hello = 1
        /// Server → client: the server's member record.
        case helloReply = 2
        /// A message: seq u64, type u32, flags u32, payload.
        case data = 3
        /// Cumulative receipt: every data frame with seq ≤ body u64 arrived.
        case received = 4
        /// The data frame with seq = body u64 was processed.
        case processed = 5
        /// The data frame with seq failed: seq u64, reason u8 (1 handler threw, 2 rejected), text.
        case failed = 6
        /// Sign of life; empty body.
        case heartbeat = 7
        /// The sender leaves the cluster; empty body.
        case leave = 8
        /// The peer refuses the connection: text; the connection is closed after it.
        case error = 9
        /// A probe: like hello but does not register the connection.
        case probe = 10
        /// Shared-key mode, client → server, first frame of a connection: u8 scheme (1),
        /// u16 key id, 32-byte client nonce. See docs/wire-format.md §6.
        case authHello = 11
        /// Shared-key mode, server → client: u16 key id, 32-byte server nonce, 32-byte server proof.
        case authChallenge = 12
        /// Shared-key mode, client → server: 32-byte client proof. Every later frame is sealed.
        case authProof = 13

        public var description: String { "\(self.rawValue)" }
    }

    /// A parsed frame header plus body.
    public struct Frame: Sendable {
        public var kind: Kind
        public var codec: UInt8
        public var guarantee: UInt8
        public var body: ByteBuffer

        public init(kind: Kind, codec: UInt8 = 0, guarantee: UInt8 = 0, body: ByteBuffer) {
            self.kind = kind
            self.codec = codec
            self.guarantee = guarantee
            self.body = body
        }
    }

    /// Writes a frame header for a body of `length` bytes.
    @inlinable
    public static func writeHeader(kind: Kind, codec: UInt8 = 0, guarantee: UInt8 = 0, length: Int, into buffer: inout ByteBuffer) {
        buffer.writeInteger(magic)
        buffer.writeInteger(version)
        buffer.writeInteger(kind.rawValue)
        buffer.writeInteger(codec)
        buffer.writeInteger(guarantee)
        buffer.writeInteger(UInt32(truncatingIfNeeded: length))
    }

    /// Parses one frame from the front of `buffer` if it is complete.
    ///
    /// - Returns: nil when more bytes are needed.
    /// - Throws: ``CohortError`` (``CohortError/Code/malformedFrame``,
    ///   ``CohortError/Code/unsupportedVersion``, ``CohortError/Code/frameTooLarge``) — the
    ///   connection must then be closed; the bytes are not a Cohort stream.
    public static func parse(from buffer: inout ByteBuffer, maxFrameSize: Int) throws -> Frame? {
        guard buffer.readableBytes >= headerSize else {
            // Reject garbage early, without waiting for 12 bytes, when the magic is already wrong.
            if buffer.readableBytes >= 4, buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) != magic {
                throw CohortError(.malformedFrame, "bytes on a Cohort connection do not start with the magic 'COHT'; is a non-Cohort client connected to the cluster port?")
            }
            return nil
        }
        let start = buffer.readerIndex
        guard buffer.getInteger(at: start, as: UInt32.self) == magic else {
            throw CohortError(.malformedFrame, "bytes on a Cohort connection do not start with the magic 'COHT'; is a non-Cohort client connected to the cluster port?")
        }
        let version = buffer.getInteger(at: start + 4, as: UInt8.self)!
        guard version == WireFormat.version else {
            throw CohortError(.unsupportedVersion, "peer speaks Cohort wire protocol version \(version), this node speaks \(WireFormat.version); run the same Cohort release on every member")
        }
        let rawKind = buffer.getInteger(at: start + 5, as: UInt8.self)!
        guard let kind = Kind(rawValue: rawKind) else {
            throw CohortError(.malformedFrame, "unknown frame kind \(rawKind)")
        }
        let codec = buffer.getInteger(at: start + 6, as: UInt8.self)!
        let guarantee = buffer.getInteger(at: start + 7, as: UInt8.self)!
        let length = Int(buffer.getInteger(at: start + 8, as: UInt32.self)!)
        guard length <= maxFrameSize else {
            throw CohortError(.frameTooLarge, "peer announced a frame of \(length) bytes, above the cap of \(maxFrameSize) bytes; raise maxFrameSize (COHORT_MAX_FRAME_SIZE) on every member if such messages are intended")
        }
        guard buffer.readableBytes >= headerSize + length else { return nil }
        buffer.moveReaderIndex(forwardBy: headerSize)
        let body = buffer.readSlice(length: length)!
        return Frame(kind: kind, codec: codec, guarantee: guarantee, body: body)
    }

    // MARK: - member records (hello, probe)

    /// Writes a member record (format version 1).
    public static func writeMember(_ member: Member, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(1))
        buffer.writeInteger(member.id.high)
        buffer.writeInteger(member.id.low)
        buffer.writeInteger(member.startTime)
        buffer.writeInteger(UInt16(truncatingIfNeeded: member.endpoint.port))
        writeString(member.endpoint.host, into: &buffer)
        writeString(member.name, into: &buffer)
        writeString(member.domain, into: &buffer)
        buffer.writeInteger(UInt16(truncatingIfNeeded: member.metadata.count))
        for key in member.metadata.keys.sorted() {
            writeString(key, into: &buffer)
            writeString(member.metadata[key]!, into: &buffer)
        }
    }

    /// The largest member record a node reads: a peer's record is kept in the view of every
    /// node that admits it, so it may not be as large as a frame.
    public static let maxMemberRecordSize = 65_535
    /// The most metadata entries a member record may carry.
    public static let maxMetadataEntries = 256

    /// Reads a member record.
    ///
    /// Reads at most ``maxMemberRecordSize`` bytes; a record that is longer, carries more than
    /// ``maxMetadataEntries`` metadata entries or the same key twice is refused. On failure the
    /// reader index does not move.
    ///
    /// - Throws: ``CohortError/Code/malformedFrame`` when the record is truncated, too large or
    ///   inconsistent, ``CohortError/Code/unsupportedVersion`` when it is of an unknown format.
    public static func readMember(from buffer: inout ByteBuffer) throws -> Member {
        var record = buffer.getSlice(at: buffer.readerIndex, length: min(buffer.readableBytes, maxMemberRecordSize)) ?? ByteBuffer()
        let member: Member
        do {
            member = try readMemberRecord(from: &record)
        } catch let error as CohortError where error.code == .malformedFrame && buffer.readableBytes > maxMemberRecordSize {
            throw CohortError(.malformedFrame, "a member record does not end within \(maxMemberRecordSize) bytes; keep the member metadata small", cause: error)
        }
        buffer.moveReaderIndex(forwardBy: record.readerIndex)
        return member
    }

    private static func readMemberRecord(from buffer: inout ByteBuffer) throws -> Member {
        guard let format = buffer.readInteger(as: UInt8.self) else { throw truncated("member record") }
        guard format == 1 else {
            throw CohortError(.unsupportedVersion, "member record format \(format) is not supported (this node reads format 1); run the same Cohort release on every member")
        }
        guard let high = buffer.readInteger(as: UInt64.self),
              let low = buffer.readInteger(as: UInt64.self),
              let startTime = buffer.readInteger(as: Int64.self),
              let port = buffer.readInteger(as: UInt16.self)
        else { throw truncated("member record") }
        let host = try readString(from: &buffer)
        let name = try readString(from: &buffer)
        let domain = try readString(from: &buffer)
        guard let count = buffer.readInteger(as: UInt16.self) else { throw truncated("member record") }
        guard count <= maxMetadataEntries else {
            throw CohortError(.malformedFrame, "a member record announces \(count) metadata entries, more than the \(maxMetadataEntries) a node reads; keep the member metadata small")
        }
        var metadata: [String: String] = [:]
        for _ in 0..<count {
            let key = try readString(from: &buffer)
            let value = try readString(from: &buffer)
            guard metadata.updateValue(value, forKey: key) == nil else {
                throw CohortError(.malformedFrame, "a member record carries the metadata key '\(key.prefix(64))' twice")
            }
        }
        return Member(id: MemberID(high: high, low: low), name: name, endpoint: Endpoint(host: host, port: Int(port)), domain: domain, metadata: metadata, startTime: startTime)
    }

    /// Writes a UTF-8 string with a u16 length.
    public static func writeString(_ string: String, into buffer: inout ByteBuffer) {
        let utf8 = string.utf8
        let count = min(utf8.count, Int(UInt16.max))
        buffer.writeInteger(UInt16(count))
        if count == utf8.count {
            buffer.writeString(string)
        } else {
            buffer.writeBytes(utf8.prefix(count))
        }
    }

    /// Reads a u16-length UTF-8 string.
    public static func readString(from buffer: inout ByteBuffer) throws -> String {
        guard let length = buffer.readInteger(as: UInt16.self), let string = buffer.readString(length: Int(length)) else {
            throw truncated("string")
        }
        return string
    }

    static func truncated(_ what: String) -> CohortError {
        CohortError(.malformedFrame, "truncated \(what) in a frame")
    }
}
