/// An immutable snapshot of who is in the cluster, as seen by the local node.
///
/// Members are ordered oldest first (by start time, then id), so every node that sees the same
/// members agrees on the order (Tribes' AbsoluteOrder).
public struct MembershipView: Sendable, Equatable, CustomStringConvertible {
    /// The local member.
    public let local: Member
    /// The reachable remote members, oldest first. Excludes the local member.
    public let members: [Member]
    /// Remote members currently suspected (still in ``members``).
    public let suspected: Set<MemberID>
    /// Increases on every change.
    public let version: UInt64

    /// Creates a view.
    public init(local: Member, members: [Member], suspected: Set<MemberID> = [], version: UInt64) {
        self.local = local
        self.members = members.sorted(by: MembershipView.oldestFirst)
        self.suspected = suspected
        self.version = version
    }

    /// The ordering used by every view: older start time first, ties broken by id.
    public static func oldestFirst(_ a: Member, _ b: Member) -> Bool {
        if a.startTime != b.startTime { return a.startTime < b.startTime }
        return a.id < b.id
    }

    /// Looks a remote member up by id.
    public func member(_ id: MemberID) -> Member? { members.first { $0.id == id } }

    /// Whether the member is in the view.
    public func contains(_ id: MemberID) -> Bool { members.contains { $0.id == id } }

    /// All members including the local one, oldest first.
    public var allMembers: [Member] { (members + [local]).sorted(by: MembershipView.oldestFirst) }

    public var description: String {
        "view v\(version): \(local.name) + [\(members.map(\.name).joined(separator: ", "))]"
    }
}

/// Something that happened to the membership.
public enum MembershipEvent: Sendable, Equatable, CustomStringConvertible {
    /// A member joined (or was found alive for the first time).
    case added(Member)
    /// A member missed heartbeats or failed a send; it is being verified.
    case suspected(Member)
    /// A suspected member answered a probe and is no longer suspected.
    case recovered(Member)
    /// The failure detector declared the member dead.
    case removed(Member)
    /// The member announced a graceful leave.
    case left(Member)

    /// The member the event is about.
    public var member: Member {
        switch self {
        case .added(let m), .suspected(let m), .recovered(let m), .removed(let m), .left(let m): return m
        }
    }

    /// The event's name as the CLI prints it (`member-added` …).
    public var name: String {
        switch self {
        case .added: return "member-added"
        case .suspected: return "member-suspected"
        case .recovered: return "member-recovered"
        case .removed: return "member-removed"
        case .left: return "member-left"
        }
    }

    public var description: String { "\(name) \(member.name) \(member.endpoint)" }
}
