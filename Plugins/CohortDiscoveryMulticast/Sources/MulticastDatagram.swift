import CohortCore
import NIOCore

/// The datagram multicast discovery sends: a versioned header, then a member record.
///
/// ```
/// offset size
///  0      4   magic "COHD" (Cohort discovery)
///  4      1   format version (1)
///  5      1   kind: 1 alive (heartbeat), 2 leave
///  6      2   record length n, big-endian
///  8      n   member record (WireFormat.writeMember: id, start time, port, host, name, domain,
///             metadata — with its own record format byte)
/// ```
///
/// With cluster keys (shared-key mode) the datagram is format version 2 and carries a MAC:
///
/// ```
///  8+n    2   key id
/// 10+n    8   sender's wall-clock time, ms since 1970 (i64)
/// 18+n   32   HMAC-SHA256 of every byte before it, under a key derived from the cluster key
/// ```
///
/// A node with keys reads only version 2 datagrams whose MAC is valid under one of its keys and
/// whose time is within the MAC window (30 s by default) of its own clock; anything else is
/// counted as unauthenticated and ignored. A node without keys reads version 1 only.
///
/// An unsigned datagram must be exactly `8 + n` bytes. Readers accept format version 1 only; a later version
/// is reported as ``DecodeError/incompatibleVersion(_:)`` and ignored, so members of a newer
/// release never poison an older one's view (they simply do not see each other over multicast).
public enum MulticastDatagram {
    /// "COHD".
    public static let magic: UInt32 = 0x434F_4844
    /// The format version this build writes and reads.
    public static let version: UInt8 = 1
    /// The format version of a datagram with a MAC.
    public static let signedVersion: UInt8 = 2
    /// Bytes after the member record of a signed datagram: key id, time, MAC.
    public static let trailerSize = 2 + 8 + 32
    /// Bytes before the member record.
    public static let headerSize = 8
    /// The largest UDP payload over IPv4.
    public static let maximumSize = 65_507

    /// What a datagram announces.
    public enum Kind: UInt8, Sendable, Equatable {
        /// A heartbeat: the member is alive at the advertised address.
        case alive = 1
        /// The member leaves gracefully.
        case leave = 2
    }

    /// A decoded datagram.
    public struct Decoded: Sendable, Equatable {
        /// What it announces.
        public var kind: Kind
        /// The member it is about (its sender).
        public var member: Member

        /// Creates a decoded datagram.
        public init(kind: Kind, member: Member) {
            self.kind = kind
            self.member = member
        }
    }

    /// Why a datagram was not understood.
    public enum DecodeError: Error, Sendable, Equatable, CustomStringConvertible {
        /// Not a Cohort discovery datagram, or a truncated or inconsistent one.
        case malformed(String)
        /// A Cohort discovery datagram of a format version (header or member record) this build
        /// does not read.
        case incompatibleVersion(UInt8)
        /// A datagram without a valid MAC under this node's keys, or outside the time window.
        case unauthenticated(String)

        public var description: String {
            switch self {
            case .unauthenticated(let why): return "unauthenticated discovery datagram: \(why)"
            case .malformed(let why): return "malformed discovery datagram: \(why)"
            case .incompatibleVersion(let v): return "discovery datagram of format version \(v) (this node reads \(MulticastDatagram.version))"
            }
        }
    }

    /// Encodes a datagram.
    ///
    /// - Throws: ``CohortCore/CohortError/Code/badConfiguration`` when the member record (with
    ///   its metadata) does not fit in one UDP datagram.
    public static func encode(_ kind: Kind, member: Member, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        try encodeUnsigned(kind, member: member, allocator: allocator, version: version, spare: 0)
    }

    /// The header and member record, with `spare` bytes of capacity for a trailer.
    static func encodeUnsigned(_ kind: Kind, member: Member, allocator: ByteBufferAllocator, version: UInt8, spare: Int) throws -> ByteBuffer {
        var record = allocator.buffer(capacity: 128)
        WireFormat.writeMember(member, into: &record)
        let total = headerSize + record.readableBytes + spare
        guard total <= maximumSize, record.readableBytes <= Int(UInt16.max) else {
            throw CohortError(.badConfiguration, "the member record of \(member.name) takes \(record.readableBytes) bytes, too large for one multicast datagram (\(maximumSize) bytes); keep the member metadata small")
        }
        var buffer = allocator.buffer(capacity: total)
        buffer.writeInteger(magic)
        buffer.writeInteger(version)
        buffer.writeInteger(kind.rawValue)
        buffer.writeInteger(UInt16(record.readableBytes))
        buffer.writeBuffer(&record)
        return buffer
    }

    /// Decodes a datagram; never traps on any input.
    public static func decode(_ datagram: ByteBuffer) throws(DecodeError) -> Decoded {
        try decode(datagram, expecting: version)
    }

    /// Decodes a datagram (without its trailer) of format `expected`.
    static func decode(_ datagram: ByteBuffer, expecting expected: UInt8) throws(DecodeError) -> Decoded {
        var buffer = datagram
        guard buffer.readableBytes >= headerSize else {
            throw .malformed("\(buffer.readableBytes) bytes, shorter than the \(headerSize)-byte header")
        }
        guard buffer.readInteger(as: UInt32.self) == magic else { throw .malformed("wrong magic") }
        let format = buffer.readInteger(as: UInt8.self)!
        guard format == expected else { throw .incompatibleVersion(format) }
        let rawKind = buffer.readInteger(as: UInt8.self)!
        guard let kind = Kind(rawValue: rawKind) else { throw .malformed("unknown kind \(rawKind)") }
        let length = Int(buffer.readInteger(as: UInt16.self)!)
        guard buffer.readableBytes == length else {
            throw .malformed("record length \(length) but \(buffer.readableBytes) bytes follow the header")
        }
        let member: Member
        do {
            member = try WireFormat.readMember(from: &buffer)
        } catch let error as CohortError where error.code == .unsupportedVersion {
            let recordFormat = datagram.getInteger(at: datagram.readerIndex + headerSize, as: UInt8.self) ?? 0
            throw .incompatibleVersion(recordFormat)
        } catch {
            throw .malformed("bad member record: \(error)")
        }
        guard buffer.readableBytes == 0 else { throw .malformed("\(buffer.readableBytes) bytes after the member record") }
        guard !member.endpoint.host.isEmpty, (1...65535).contains(member.endpoint.port) else {
            throw .malformed("member \(member.name) advertises no usable address (\(member.endpoint))")
        }
        return Decoded(kind: kind, member: member)
    }
}
