/// The option bits of a message that Cohort itself defines (bits 0–15 of ``SendOptions/flags``
/// are reserved for Cohort; bits 16–31 are free for applications and their interceptors).
///
/// The flags travel in every data frame (see docs/wire-format.md), so a receiver knows how a
/// payload was transformed by the sender's interceptors without any negotiation:
///
/// | Bit | Name | Set by | Meaning |
/// |---|---|---|---|
/// | 0 | ``ordered`` | the application | deliver in per-sender FIFO order (the `order` interceptor) |
/// | 8 | ``compressed`` | the `compression` interceptor | the payload is a compressed envelope |
/// | 9 | ``fragment`` | the `fragmentation` interceptor | the payload is one fragment of a larger message |
/// | 10 | ``sequenced`` | the `order` interceptor | the payload starts with a sequence header |
public enum MessageFlags {
    /// Asks for per-sender FIFO delivery (honoured by the `order` interceptor when configured).
    public static let ordered: UInt32 = 1 << 0
    /// The payload is compressed (``CompressionEnvelope``); every receiver understands it.
    public static let compressed: UInt32 = 1 << 8
    /// The payload is one fragment (``FragmentHeader``); the receiver needs the `fragmentation`
    /// interceptor.
    public static let fragment: UInt32 = 1 << 9
    /// The payload starts with an ``OrderHeader``; a receiver without the `order` interceptor
    /// skips it and delivers unordered.
    public static let sequenced: UInt32 = 1 << 10
    /// Bits set by interceptors to describe a transformed payload (never by applications).
    public static let transformations: UInt32 = compressed | fragment | sequenced
}

extension SendOptions {
    /// Whether the message asks for per-sender FIFO delivery (``MessageFlags/ordered``).
    public var ordered: Bool {
        get { flags & MessageFlags.ordered != 0 }
        set { if newValue { flags |= MessageFlags.ordered } else { flags &= ~MessageFlags.ordered } }
    }
}
