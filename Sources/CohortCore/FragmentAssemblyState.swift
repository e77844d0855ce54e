import NIOCore

/// The header in front of every fragment's bytes (`fragmentation` interceptor, flag
/// ``MessageFlags/fragment``).
///
/// ```
/// offset size
///  0      1   format (1)
///  1      8   message id, big-endian (unique per sender incarnation)
///  9      4   fragment index, from 0
/// 13      4   fragment count
/// 17      8   length of the whole message in bytes
/// 25      n   this fragment's bytes
/// ```
public struct FragmentHeader: Sendable, Equatable {
    /// Bytes before the fragment's own bytes.
    public static let size = 25
    /// The only format this build writes and reads.
    public static let format: UInt8 = 1

    /// Which message of the sender the fragment belongs to.
    public var messageID: UInt64
    /// The fragment's place, from 0.
    public var index: UInt32
    /// How many fragments the message has.
    public var count: UInt32
    /// The whole message's length.
    public var totalLength: UInt64

    public init(messageID: UInt64, index: UInt32, count: UInt32, totalLength: UInt64) {
        self.messageID = messageID
        self.index = index
        self.count = count
        self.totalLength = totalLength
    }

    /// Writes the header.
    public func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(Self.format)
        buffer.writeInteger(messageID)
        buffer.writeInteger(index)
        buffer.writeInteger(count)
        buffer.writeInteger(totalLength)
    }

    /// Reads a header from the front of `buffer`; on failure the reader index does not move.
    ///
    /// - Throws: ``CohortError/Code/malformedFrame`` for a truncated header, an unknown format, or
    ///   an index that is not below the count.
    public static func read(from buffer: inout ByteBuffer) throws -> FragmentHeader {
        var copy = buffer
        guard let format = copy.readInteger(as: UInt8.self),
              let id = copy.readInteger(as: UInt64.self),
              let index = copy.readInteger(as: UInt32.self),
              let count = copy.readInteger(as: UInt32.self),
              let total = copy.readInteger(as: UInt64.self)
        else { throw CohortError(.malformedFrame, "truncated fragment header (\(buffer.readableBytes) bytes, \(size) needed)") }
        guard format == Self.format else {
            throw CohortError(.unsupportedVersion, "fragment header format \(format) is not supported (this node reads format \(Self.format)); run the same Cohort release on every member")
        }
        guard count >= 1, index < count else {
            throw CohortError(.malformedFrame, "fragment \(index) of \(count) is out of range")
        }
        buffer = copy
        return FragmentHeader(messageID: id, index: index, count: count, totalLength: total)
    }
}

/// Reassembly of fragmented messages, per sender (the receiving half of Tribes'
/// FragmentationInterceptor), as a pure state machine: the `Fragmentation` stage feeds it
/// fragments and clock ticks and carries out what it returns.
///
/// Memory is bounded three ways, all checked **before** a fragment is kept: the announced
/// length of a message (``Settings/maxMessageSize``), the bytes held for one sender
/// (``Settings/maxPendingBytesPerSender``) and for the whole node (``Settings/maxPendingBytes``).
/// Nothing is reserved from a length read off the wire: fragments are kept as they arrived and
/// joined once the bytes actually received add up. A sender's fragments of one message arrive
/// in order (they travel one after another on one connection); a fragment out of order means
/// one was lost with a broken connection, so the set is dropped and counted. Sets that stop
/// growing are expired after ``Settings/expireAfter`` on the injected clock.
public struct FragmentAssemblyState: Sendable {
    /// Bounds.
    public struct Settings: Sendable, Equatable {
        /// The largest whole message accepted.
        public var maxMessageSize: Int
        /// The most bytes of incomplete messages held for one sender.
        public var maxPendingBytesPerSender: Int
        /// The most bytes of incomplete messages held for all senders together.
        public var maxPendingBytes: Int
        /// The most incomplete messages held for one sender.
        public var maxPendingMessagesPerSender: Int
        /// An incomplete message that received nothing for this long is dropped.
        public var expireAfter: Duration

        public init(
            maxMessageSize: Int = 128 * 1024 * 1024,
            maxPendingBytesPerSender: Int = 256 * 1024 * 1024,
            maxPendingBytes: Int = 512 * 1024 * 1024,
            maxPendingMessagesPerSender: Int = 64,
            expireAfter: Duration = .seconds(60)
        ) {
            self.maxMessageSize = maxMessageSize
            self.maxPendingBytesPerSender = maxPendingBytesPerSender
            self.maxPendingBytes = maxPendingBytes
            self.maxPendingMessagesPerSender = maxPendingMessagesPerSender
            self.expireAfter = expireAfter
        }
    }

    /// What to do with a fragment.
    public enum Action: Sendable {
        /// Keep waiting for the rest (acknowledge the fragment as received).
        case hold
        /// The message is whole: its bytes.
        case complete(ByteBuffer)
        /// The fragment (and the set it belongs to) is refused; the error says why.
        case refuse(CohortError)
    }

    struct Key: Hashable {
        var sender: MemberID
        var message: UInt64
    }

    struct Pending {
        var parts: [ByteBuffer]
        var bytes: Int
        var count: UInt32
        var total: UInt64
        var lastActivity: ContinuousClock.Instant
    }

    public let settings: Settings
    private var pending: [Key: Pending] = [:]
    private var bytesBySender: [MemberID: Int] = [:]
    private var setsBySender: [MemberID: Int] = [:]
    /// Bytes held now, all senders together.
    public private(set) var pendingBytes = 0
    /// Messages reassembled.
    public private(set) var completed = 0
    /// Incomplete messages dropped because they stopped growing.
    public private(set) var expired = 0
    /// Fragments refused (bounds, order, inconsistent headers).
    public private(set) var refused = 0

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// Incomplete messages held now.
    public var pendingMessages: Int { pending.count }

    /// A fragment arrived from `sender`.
    public mutating func onFragment(_ header: FragmentHeader, body: ByteBuffer, from sender: MemberID, now: ContinuousClock.Instant) -> Action {
        let key = Key(sender: sender, message: header.messageID)
        let size = body.readableBytes
        func refuse(_ why: String, dropping: Bool = true) -> Action {
            if dropping { drop(key) }
            refused += 1
            return .refuse(CohortError(.incompleteMessage, why))
        }
        guard header.totalLength <= UInt64(settings.maxMessageSize) else {
            return refuse("a fragmented message announces \(header.totalLength) bytes, above this node's maxMessageSize of \(settings.maxMessageSize); raise fragmentation's maxMessageSize on every member if such messages are intended")
        }
        guard size > 0 || header.totalLength == 0 else { return refuse("an empty fragment of a non-empty message") }
        if var entry = pending[key] {
            guard header.count == entry.count, header.totalLength == entry.total else {
                return refuse("fragment \(header.index) of message \(header.messageID) disagrees with the earlier fragments on count or length")
            }
            guard header.index == UInt32(entry.parts.count) else {
                return refuse("fragment \(header.index) of message \(header.messageID) arrived after fragment \(entry.parts.count - 1): fragments in between were lost (a connection broke); the message is dropped")
            }
            guard UInt64(entry.bytes) + UInt64(size) <= entry.total else {
                return refuse("fragments of message \(header.messageID) carry more bytes than its announced \(entry.total)")
            }
            guard let held = bytesBySender[sender], held + size <= settings.maxPendingBytesPerSender,
                  pendingBytes + size <= settings.maxPendingBytes
            else {
                return refuse("incomplete messages from this sender would hold more than this node's bounds (\(settings.maxPendingBytesPerSender) bytes per sender, \(settings.maxPendingBytes) in all)")
            }
            entry.parts.append(body)
            entry.bytes += size
            entry.lastActivity = now
            bytesBySender[sender] = held + size
            pendingBytes += size
            if entry.parts.count == Int(entry.count) {
                guard UInt64(entry.bytes) == entry.total else {
                    pending[key] = entry
                    return refuse("the fragments of message \(header.messageID) add up to \(entry.bytes) bytes, not the announced \(entry.total)")
                }
                pending[key] = entry
                drop(key)
                completed += 1
                return .complete(Self.join(entry.parts, bytes: entry.bytes))
            }
            pending[key] = entry
            return .hold
        }
        guard header.index == 0 else {
            return refuse("fragment \(header.index) of message \(header.messageID) arrived without the fragments before it (lost with a broken connection, or expired); the message is dropped", dropping: false)
        }
        guard UInt64(size) <= header.totalLength else {
            return refuse("the first fragment of message \(header.messageID) is larger than the announced \(header.totalLength) bytes", dropping: false)
        }
        if header.count == 1 {
            guard UInt64(size) == header.totalLength else {
                return refuse("a single fragment of \(size) bytes announces \(header.totalLength)", dropping: false)
            }
            completed += 1
            return .complete(body)
        }
        let held = bytesBySender[sender] ?? 0
        guard held + size <= settings.maxPendingBytesPerSender, pendingBytes + size <= settings.maxPendingBytes,
              (setsBySender[sender] ?? 0) < settings.maxPendingMessagesPerSender
        else {
            return refuse("incomplete messages from this sender would hold more than this node's bounds (\(settings.maxPendingBytesPerSender) bytes or \(settings.maxPendingMessagesPerSender) messages per sender, \(settings.maxPendingBytes) bytes in all)", dropping: false)
        }
        pending[key] = Pending(parts: [body], bytes: size, count: header.count, total: header.totalLength, lastActivity: now)
        bytesBySender[sender] = held + size
        setsBySender[sender, default: 0] += 1
        pendingBytes += size
        return .hold
    }

    /// A fragment whose header could not be read: counted with the refused ones.
    public mutating func onMalformed() {
        refused += 1
    }

    /// Drops incomplete messages that received nothing for ``Settings/expireAfter``.
    ///
    /// - Returns: how many were dropped.
    @discardableResult
    public mutating func onTick(now: ContinuousClock.Instant) -> Int {
        let due = pending.filter { now - $0.value.lastActivity >= settings.expireAfter }.map(\.key)
        for key in due { drop(key) }
        expired += due.count
        return due.count
    }

    /// A sender left the view: its incomplete messages can never complete.
    ///
    /// - Returns: how many were dropped.
    @discardableResult
    public mutating func onMemberGone(_ sender: MemberID) -> Int {
        let keys = pending.keys.filter { $0.sender == sender }
        for key in keys { drop(key) }
        expired += keys.count
        return keys.count
    }

    private mutating func drop(_ key: Key) {
        guard let entry = pending.removeValue(forKey: key) else { return }
        pendingBytes -= entry.bytes
        let left = (bytesBySender[key.sender] ?? entry.bytes) - entry.bytes
        bytesBySender[key.sender] = left > 0 ? left : nil
        let sets = (setsBySender[key.sender] ?? 1) - 1
        setsBySender[key.sender] = sets > 0 ? sets : nil
    }

    private static func join(_ parts: [ByteBuffer], bytes: Int) -> ByteBuffer {
        var whole = ByteBufferAllocator().buffer(capacity: bytes)
        for var part in parts { whole.writeBuffer(&part) }
        return whole
    }
}
