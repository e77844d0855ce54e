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
    /// Whole milliseconds (truncated).
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
