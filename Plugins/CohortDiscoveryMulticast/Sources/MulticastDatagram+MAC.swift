import CohortCore
import Crypto
import Foundation
import NIOCore

/// Signed datagrams (format version 2): the MAC of shared-key mode. A file of its own, so that
/// the fuzz package, which links `MulticastDatagram.swift` alone, needs no cryptography library.
extension MulticastDatagram {
    /// Encodes a datagram, signed when `signing` is a key.
    ///
    /// - Parameters:
    ///   - signing: the cluster key to sign with (shared-key mode), or nil for an unsigned datagram.
    ///   - time: the sender's wall-clock time in ms since 1970 (signed datagrams only).
    /// - Throws: ``CohortCore/CohortError/Code/badConfiguration`` when the member record does not
    ///   fit in one UDP datagram.
    public static func encode(_ kind: Kind, member: Member, allocator: ByteBufferAllocator = ByteBufferAllocator(), signing: ClusterKey?, time: Int64) throws -> ByteBuffer {
        guard let signing else { return try encode(kind, member: member, allocator: allocator) }
        var buffer = try encodeUnsigned(kind, member: member, allocator: allocator, version: signedVersion, spare: trailerSize)
        buffer.writeInteger(signing.id)
        buffer.writeInteger(time)
        let mac = buffer.withUnsafeReadableBytes { HMAC<SHA256>.authenticationCode(for: $0, using: macKey(signing)) }
        buffer.writeBytes(mac)
        return buffer
    }

    /// Decodes a datagram; with `keys`, only a signed one whose MAC is valid under one of them and
    /// whose time is within `window` of `now`. Never traps on any input.
    ///
    /// - Parameters:
    ///   - keys: the cluster keys; empty reads unsigned datagrams as ``decode(_:)`` does.
    ///   - now: this node's wall-clock time, ms since 1970.
    ///   - window: how far the datagram's time may be from `now`, either way.
    public static func decode(_ datagram: ByteBuffer, keys: [ClusterKey], now: Int64, window: Duration = .seconds(30)) throws(DecodeError) -> Decoded {
        guard !keys.isEmpty else { return try decode(datagram) }
        guard datagram.readableBytes >= 5, datagram.getInteger(at: datagram.readerIndex, as: UInt32.self) == magic else {
            throw .malformed("wrong magic")
        }
        guard datagram.getInteger(at: datagram.readerIndex + 4, as: UInt8.self) == signedVersion else {
            throw .unauthenticated("no MAC (this node has cluster keys and reads signed datagrams only)")
        }
        return try decode(try verify(datagram, keys: keys, now: now, window: window), expecting: signedVersion)
    }

    /// The MAC key of a cluster key: derived, so the cluster key itself serves one purpose.
    static func macKey(_ key: ClusterKey) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: key.secret), salt: [UInt8](), info: Array("cohort multicast datagram mac \(key.id)".utf8), outputByteCount: 32)
    }

    /// Checks a signed datagram's MAC and time and returns it without its trailer.
    static func verify(_ datagram: ByteBuffer, keys: [ClusterKey], now: Int64, window: Duration) throws(DecodeError) -> ByteBuffer {
        let size = datagram.readableBytes
        guard size >= headerSize + trailerSize else { throw .malformed("\(size) bytes, too short for a signed datagram") }
        let start = datagram.readerIndex
        let signedLength = size - 32
        let keyID = datagram.getInteger(at: start + size - trailerSize, as: UInt16.self)!
        let time = datagram.getInteger(at: start + size - trailerSize + 2, as: Int64.self)!
        guard let key = keys.first(where: { $0.id == keyID }) else {
            throw .unauthenticated("signed with cluster key \(keyID), which this node does not hold")
        }
        let mac = datagram.getBytes(at: start + signedLength, length: 32)!
        let valid = datagram.getSlice(at: start, length: signedLength)!.withUnsafeReadableBytes {
            HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: $0, using: macKey(key))
        }
        guard valid else { throw .unauthenticated("wrong MAC") }
        let windowMs = window.components.seconds.multipliedReportingOverflow(by: 1000).partialValue
        let skew = now.subtractingReportingOverflow(time)
        guard !skew.overflow, skew.partialValue.magnitude <= UInt64(max(0, windowMs)) else {
            throw .unauthenticated("sent at \(time) ms, outside the \(window) window of this node's clock (\(now) ms); replayed, or the clocks differ")
        }
        return datagram.getSlice(at: start, length: size - trailerSize)!
    }
}
