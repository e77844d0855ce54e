import Cohort
import NIOCore

/// A session delta as one request of the sample app makes it, for Cohort's benchmark package
/// (`Benchmarks/`), which measures the real delta encoding without the session manager around it.
///
/// Not API: reachable only through `@_spi(Benchmarks) import CohortSessions`.
@_spi(Benchmarks)
public struct SessionDeltaSample: Sendable, Equatable {
    var delta: SessionDelta

    /// A delta that sets one attribute to `attributeBytes` bytes and records the access, in a
    /// session with a 32-character id, as a request writing its session does.
    public init(attributeBytes: Int) {
        var delta = SessionDelta(sessionID: "5f0c2a9e41d84b7c9a3e6d1f2b8c7a60", stamp: Stamp(counter: 42, origin: 0x1234_5678_9abc_def0))
        delta.lastAccessedTime = 1_764_700_000_000
        var value = ByteBufferAllocator().buffer(capacity: attributeBytes)
        value.writeRepeatingByte(UInt8(ascii: "x"), count: attributeBytes)
        delta.attributes["cart"] = .some(value)
        self.delta = delta
    }

    init(delta: SessionDelta) {
        self.delta = delta
    }

    /// Appends the delta's encoding with `codec` to `buffer`, as the replicator does for every
    /// change it sends.
    public func encode(with codec: any MessageCodec, into buffer: inout ByteBuffer) throws {
        try codec.encode(delta, into: &buffer)
    }

    /// Decodes a delta from `buffer`, as a receiving replica does.
    public static func decode(with codec: any MessageCodec, from buffer: inout ByteBuffer) throws -> SessionDeltaSample {
        SessionDeltaSample(delta: try codec.decode(SessionDelta.self, from: &buffer))
    }
}
