import NIOCore

/// The header the `order` interceptor puts in front of an ordered message's payload (flag
/// ``MessageFlags/sequenced``): one sequence number per destination, so that one buffer serves
/// every member of a send.
///
/// ```
/// offset size
///  0      1   format (1)
///  1      2   entries n, big-endian
///  3   24·n   per entry: member id (16 bytes: high, low) and sequence number (u64)
/// ```
public enum OrderHeader {
    /// The only format this build writes and reads.
    public static let format: UInt8 = 1
    /// The most entries a header may hold.
    public static let maxEntries = Int(UInt16.max)

    /// The bytes a header with `entries` entries takes.
    public static func size(entries: Int) -> Int { 3 + 24 * entries }

    /// Writes a header.
    public static func write(_ entries: [(member: MemberID, seq: UInt64)], into buffer: inout ByteBuffer) {
        buffer.writeInteger(format)
        buffer.writeInteger(UInt16(truncatingIfNeeded: entries.count))
        for entry in entries.prefix(maxEntries) {
            buffer.writeInteger(entry.member.high)
            buffer.writeInteger(entry.member.low)
            buffer.writeInteger(entry.seq)
        }
    }

    /// Reads a header, leaving `buffer` at the payload.
    ///
    /// - Returns: the sequence number for `member`, or nil when the header has none for it.
    /// - Throws: ``CohortError/Code/malformedFrame`` when the header is truncated or of an
    ///   unknown format (the count is checked against the bytes left before anything is read).
    public static func read(from buffer: inout ByteBuffer, for member: MemberID) throws -> UInt64? {
        var copy = buffer
        guard let format = copy.readInteger(as: UInt8.self), let count = copy.readInteger(as: UInt16.self) else {
            throw CohortError(.malformedFrame, "truncated order header")
        }
        guard format == Self.format else {
            throw CohortError(.unsupportedVersion, "order header format \(format) is not supported (this node reads format \(Self.format)); run the same Cohort release on every member")
        }
        guard Int(count) * 24 <= copy.readableBytes else {
            throw CohortError(.malformedFrame, "an order header announces \(count) entries, more than the \(copy.readableBytes) bytes left hold")
        }
        var found: UInt64?
        for _ in 0..<Int(count) {
            let high = copy.readInteger(as: UInt64.self)!
            let low = copy.readInteger(as: UInt64.self)!
            let seq = copy.readInteger(as: UInt64.self)!
            if found == nil, high == member.high, low == member.low { found = seq }
        }
        buffer = copy
        return found
    }
}

/// Tunables of ``OrderState`` and the `order` interceptor.
public struct OrderSettings: Sendable, Equatable {
    /// How long a gap may hold later messages before it is reported and skipped.
    public var gapTimeout: Duration
    /// The most messages held behind a gap per sender; one more skips the gap at once.
    public var maxHeldPerSender: Int

    public init(gapTimeout: Duration = .seconds(3), maxHeldPerSender: Int = 1024) {
        self.gapTimeout = gapTimeout
        self.maxHeldPerSender = maxHeldPerSender
    }
}

/// Per-sender FIFO delivery (the receiving half of Tribes' OrderInterceptor) as a pure state
/// machine, generic over what it holds (the `Order` stage holds waiting deliveries; tests hold
/// numbers).
///
/// Each sender incarnation numbers its ordered messages to this node 1, 2, 3…; a new incarnation
/// has a new ``MemberID`` and so starts again at 1. One message per sender is handed out at a
/// time (``Action/deliver(_:)``); the next is handed out when ``onDelivered(from:now:)`` says the
/// previous one is done. A message ahead of a gap is held — at most
/// ``Settings/maxHeldPerSender`` per sender — and a gap that is not filled within
/// ``Settings/gapTimeout`` (on the injected clock, through ``onTick(now:)``) is reported
/// (``Action/gap(sender:missing:)``) and skipped: the held messages go on, never waited for
/// forever. A message of a skipped range that arrives after all is handed out at once, out of
/// order (``Action/late(_:)``): losing it would be worse.
public struct OrderState<Item: Sendable>: Sendable {
    /// Tunables (the same for every `Item`).
    public typealias Settings = OrderSettings

    /// What the stage must do.
    public enum Action: Sendable {
        /// Hand this message to the layers above now; call ``onDelivered(from:now:)`` when done.
        case deliver(Item)
        /// Hand this message up now, out of order: its place was skipped after a gap timeout.
        /// No ``onDelivered(from:now:)`` follows.
        case late(Item)
        /// Messages `missing` from `sender` never arrived within the gap timeout; later ones
        /// went on without them.
        case gap(sender: MemberID, missing: ClosedRange<UInt64>)
    }

    struct Sender {
        var next: UInt64 = 1
        var busy = false
        var held: [UInt64: Item] = [:]
        var gapSince: ContinuousClock.Instant?
        var gone = false
    }

    public let settings: Settings
    private var senders: [MemberID: Sender] = [:]
    /// Gaps reported so far.
    public private(set) var gaps = 0
    /// Messages handed out late, after their gap was skipped.
    public private(set) var lateDeliveries = 0

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// Messages held now, all senders together.
    public var held: Int { senders.values.reduce(0) { $0 + $1.held.count } }

    /// Messages held now for one sender.
    public func held(from sender: MemberID) -> Int { senders[sender]?.held.count ?? 0 }

    /// Senders with state.
    public var senderCount: Int { senders.count }

    /// An ordered message with sequence number `seq` arrived from `sender`.
    public mutating func onMessage(_ item: Item, seq: UInt64, from sender: MemberID, now: ContinuousClock.Instant) -> [Action] {
        var state = senders[sender] ?? Sender()
        defer { senders[sender] = state }
        if seq < state.next || state.held[seq] != nil {
            lateDeliveries += 1
            return [.late(item)]
        }
        if seq == state.next, !state.busy {
            state.next += 1
            state.busy = true
            state.gapSince = nil
            return [.deliver(item)]
        }
        state.held[seq] = item
        if state.held[state.next] == nil, state.gapSince == nil { state.gapSince = now }
        if state.held.count > settings.maxHeldPerSender {
            return skipGap(&state, sender: sender, now: now)
        }
        return []
    }

    /// The message last handed out for `sender` is done: the next one, if it is here, goes.
    public mutating func onDelivered(from sender: MemberID, now: ContinuousClock.Instant) -> [Action] {
        guard var state = senders[sender] else { return [] }
        state.busy = false
        var actions: [Action] = []
        if let item = state.held.removeValue(forKey: state.next) {
            state.next += 1
            state.busy = true
            state.gapSince = nil
            actions.append(.deliver(item))
        } else if !state.held.isEmpty {
            if state.gapSince == nil { state.gapSince = now }
            if state.gone { actions = skipGap(&state, sender: sender, now: now) }
        }
        if state.gone, state.held.isEmpty, !state.busy {
            senders[sender] = nil
        } else {
            senders[sender] = state
        }
        return actions
    }

    /// Time passed: gaps older than ``Settings/gapTimeout`` are reported and skipped.
    public mutating func onTick(now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        for id in Array(senders.keys) {
            guard var state = senders[id], !state.busy, let since = state.gapSince, now - since >= settings.gapTimeout else { continue }
            actions += skipGap(&state, sender: id, now: now)
            senders[id] = state
        }
        return actions
    }

    /// A sender left the view: what it sent and is held goes up in order, gaps reported at once;
    /// then its state is forgotten (a new incarnation starts at 1 anyway).
    public mutating func onMemberGone(_ sender: MemberID, now: ContinuousClock.Instant) -> [Action] {
        guard var state = senders[sender] else { return [] }
        state.gone = true
        var actions: [Action] = []
        if !state.busy, !state.held.isEmpty { actions = skipGap(&state, sender: sender, now: now) }
        if state.held.isEmpty, !state.busy {
            senders[sender] = nil
        } else {
            senders[sender] = state
        }
        return actions
    }

    /// Reports the gap before the lowest held message and hands that message out.
    private mutating func skipGap(_ state: inout Sender, sender: MemberID, now: ContinuousClock.Instant) -> [Action] {
        guard !state.busy, let lowest = state.held.keys.min() else { return [] }
        var actions: [Action] = []
        if lowest > state.next {
            gaps += 1
            actions.append(.gap(sender: sender, missing: state.next...(lowest - 1)))
        }
        state.next = lowest + 1
        state.busy = true
        state.gapSince = nil
        actions.append(.deliver(state.held.removeValue(forKey: lowest)!))
        return actions
    }
}
