import Cohort
import Foundation

/// A version stamp: a logical counter plus the node that wrote it.
///
/// Every change is stamped with `counter = (highest counter the writer has seen for the key) + 1`
/// and the writer's ``origin``. Stamps are totally ordered (counter first, then origin), so every
/// node that sees the same two changes keeps the same one: the higher stamp wins, a duplicate
/// or late change loses and changes nothing.
public struct Stamp: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    /// The logical counter; the session or entry ``version`` is the highest counter applied.
    public var counter: UInt64
    /// Identifies the writer (derived from its ``MemberID``); breaks ties between writers.
    public var origin: UInt64

    /// Creates a stamp.
    public init(counter: UInt64, origin: UInt64) {
        self.counter = counter
        self.origin = origin
    }

    /// The stamp that loses against every other.
    public static let zero = Stamp(counter: 0, origin: 0)

    /// The highest counter a stamp may carry. A counter grows by one per change of a key, so
    /// only a forged stamp comes near it: a stamp received with a higher counter is refused
    /// (``CohortError/Code/codecFailure``), and counting up stops here instead of overflowing.
    public static let maxCounter = UInt64(Int64.max)

    /// The stamp of a change made after one with counter `seen`: one more, saturating at
    /// ``maxCounter``.
    public static func after(_ seen: UInt64, origin: UInt64) -> Stamp {
        Stamp(counter: seen >= maxCounter ? maxCounter : seen + 1, origin: origin)
    }

    /// A stamp read from another node: refused when its counter is above ``maxCounter``.
    static func received(counter: UInt64, origin: UInt64) throws -> Stamp {
        guard counter <= maxCounter else {
            throw CohortError(.codecFailure, "a stamp's counter \(counter) is above the highest a change can have (\(maxCounter)); the sender is broken or hostile")
        }
        return Stamp(counter: counter, origin: origin)
    }

    private enum CodingKeys: String, CodingKey { case counter, origin }

    /// Decodes a stamp, refusing a counter above ``maxCounter``.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self = try Stamp.received(counter: c.decode(UInt64.self, forKey: .counter), origin: c.decode(UInt64.self, forKey: .origin))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(counter, forKey: .counter)
        try c.encode(origin, forKey: .origin)
    }

    /// The origin value used by a member.
    public static func origin(of member: MemberID) -> UInt64 {
        let mixed = member.high ^ (member.low &* 0x9E37_79B9_7F4A_7C15)
        return mixed == 0 ? 1 : mixed
    }

    public static func < (lhs: Stamp, rhs: Stamp) -> Bool {
        (lhs.counter, lhs.origin) < (rhs.counter, rhs.origin)
    }

    public var description: String { "v\(counter)@\(String(origin, radix: 16).prefix(6))" }
}

/// Milliseconds since 1970 as the cluster agrees on them: session timestamps (creation, last
/// access, absolute expiry) travel in this unit, because monotonic instants mean nothing on
/// another host.
public typealias WallMillis = Int64

/// Checks of times and durations read from another node.
enum ReceivedTime {
    /// The largest magnitude of a wall time a node accepts: 2⁵³ ms, some 285,000 years either
    /// side of 1970. Every such time is exact as a `Double` (a `Date`), and adding any duration to
    /// it saturates instead of overflowing.
    static let maxWallMillis: WallMillis = 1 << 53

    /// A wall time read from another node, refused when it is beyond ``maxWallMillis``.
    static func wall(_ value: WallMillis, _ what: @autoclosure () -> String) throws -> WallMillis {
        guard value.magnitude <= UInt64(maxWallMillis) else {
            throw CohortError(.codecFailure, "\(what()) of \(value) ms since 1970 is not a time (more than \(maxWallMillis) ms away); the sender is broken or hostile")
        }
        return value
    }

    /// An optional wall time read from another node.
    static func optionalWall(_ value: WallMillis?, _ what: @autoclosure () -> String) throws -> WallMillis? {
        guard let value else { return nil }
        return try wall(value, what())
    }
}

extension Int64 {
    /// `self + other`, clamped to the range of `Int64` instead of trapping.
    func addingSaturated(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        guard overflow else { return sum }
        return other > 0 ? .max : .min
    }
}

/// Wall-clock milliseconds from an injected ``CohortClock`` (its `wallTime`).
///
/// Every timestamp a store writes or compares (creation, last access, absolute expiry,
/// tombstone age) comes from here, so a `ManualClock` drives expiry in tests and nodes that
/// share one agree exactly. Nodes on different hosts agree to within their wall clocks' skew
/// (keep NTP on).
public struct WallClock: Sendable {
    /// The clock that moves time.
    public let clock: any CohortClock

    /// Creates a wall clock over a clock.
    public init(clock: any CohortClock) {
        self.clock = clock
    }

    /// The current wall time in milliseconds.
    public var now: WallMillis { clock.wallTime.milliseconds }

    /// The current wall time as a `Date`.
    public var date: Date { Date(wallMillis: now) }
}

extension Duration {
    /// Whole milliseconds (truncated), clamped to the range of `Int64` (a duration made from a
    /// received number of milliseconds converts back without trapping).
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds > 0 ? .max : .min }
        return whole.addingSaturated(attoseconds / 1_000_000_000_000_000)
    }
}
